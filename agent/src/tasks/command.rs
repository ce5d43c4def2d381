//! The command module: a program run unless its guards say the work is done.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    exec::{self, command_line},
    fsutil::{Perms, atomic_write, read_optional},
    protocol::CommandArgs,
    tasks::systemd_unit::stamp,
};

/// Runs `argv` unless `creates` exists or `unless` exits 0. Every message and output tail
/// it reports, failures included, has the plan's secrets blanked.
pub fn apply(args: &CommandArgs, ctx: &Ctx) -> Result<Outcome> {
    match run(args, ctx) {
        Ok(o) => Ok(Outcome {
            changed: o.changed,
            message: exec::redact(&o.message, &args.redact),
            output: exec::redact(&o.output, &args.redact),
        }),
        Err(e) => Err(e.redact(&args.redact)),
    }
}

fn run(args: &CommandArgs, ctx: &Ctx) -> Result<Outcome> {
    if args.argv.is_empty() {
        return Err(Error::EmptyArgv {
            what: "command argv",
        });
    }
    if let Some(path) = &args.creates
        && std::fs::symlink_metadata(path).is_ok()
    {
        return Ok(Outcome::unchanged(format!(
            "skipped: {} exists",
            path.display()
        )));
    }
    if let Some(unless) = &args.unless {
        if unless.is_empty() {
            return Err(Error::EmptyArgv {
                what: "command unless",
            });
        }
        // The guard is a probe and runs in check mode too, or a dry run would overstate.
        if exec::run_with(unless, &args.env, None)?.success() {
            return Ok(Outcome::unchanged(format!(
                "skipped: `{}` exited 0",
                command_line(unless)
            )));
        }
    }
    let line = command_line(&args.argv);
    let mut message = format!("run `{line}`");
    let watched = match Watched::read(args, ctx)? {
        Some(w) if w.recorded.as_deref() == Some(w.now.as_str()) => {
            return Ok(Outcome::unchanged(format!(
                "skipped: {} unchanged since its last run",
                w.listing
            )));
        }
        Some(w) => {
            message.push_str(&match w.recorded {
                Some(_) => format!(" ({} changed since its last run)", w.listing),
                None => format!(" (no record of a run with {})", w.listing),
            });
            Some(w)
        }
        None => None,
    };
    if ctx.check_mode {
        return Ok(Outcome {
            changed: true,
            message,
            output: String::new(),
        });
    }
    let ran = exec::run_with(&args.argv, &args.env, None)?
        .redacted(&args.redact)
        .ok_or("")?;
    if let Some(w) = watched {
        // Taken after the run: a command may rewrite what it watches (a generated file).
        let after = stamp(&[], &args.watch)?;
        atomic_write(&w.path, format!("{after}\n").as_bytes(), Perms::mode(0o644))?;
    }
    Ok(Outcome {
        changed: true,
        message,
        output: ran.tail(),
    })
}

/// A watching command's stamp: where it is kept, what it says, and what the files hash to now.
struct Watched {
    path: PathBuf,
    recorded: Option<String>,
    now: String,
    listing: String,
}

impl Watched {
    /// None for a command that watches nothing. The stamp is keyed by the command line and
    /// the watched paths, so another command watching the same files keeps its own record.
    fn read(args: &CommandArgs, ctx: &Ctx) -> Result<Option<Watched>> {
        if args.watch.is_empty() {
            return Ok(None);
        }
        let mut key = Sha256::new();
        for part in args
            .argv
            .iter()
            .map(|a| a.as_bytes())
            .chain(args.watch.iter().map(|p| p.as_os_str().as_encoded_bytes()))
        {
            key.update((part.len() as u64).to_le_bytes());
            key.update(part);
        }
        let path = ctx
            .state_dir
            .join("commands")
            .join(format!("{}.sha256", hex::encode(key.finalize())));
        let recorded =
            read_optional(&path)?.map(|b| String::from_utf8_lossy(&b).trim().to_string());
        let listing = args
            .watch
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Some(Watched {
            path,
            recorded,
            now: stamp(&[], &args.watch)?,
            listing,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, path::PathBuf};

    use super::*;

    fn ctx(check_mode: bool) -> Ctx {
        Ctx {
            root: PathBuf::from("/"),
            store_dir: PathBuf::from("/nonexistent/store"),
            state_dir: PathBuf::from("/nonexistent/state"),
            check_mode,
            verified: Default::default(),
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn guards_skip_and_runs_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("done");
        let args = CommandArgs {
            argv: sh(&format!("echo hi $GREETING; touch {}", marker.display())),
            creates: Some(marker.clone()),
            unless: None,
            env: BTreeMap::from([("GREETING".to_string(), "there".to_string())]),
            redact: Vec::new(),
            watch: Vec::new(),
        };
        let dry = apply(&args, &ctx(true)).unwrap();
        assert!(dry.changed && !marker.exists());
        let ran = apply(&args, &ctx(false)).unwrap();
        assert!(ran.changed);
        assert_eq!(ran.output, "hi there\n");
        let again = apply(&args, &ctx(false)).unwrap();
        assert_eq!(
            again,
            Outcome::unchanged(format!("skipped: {} exists", marker.display()))
        );
    }

    #[test]
    fn unless_exiting_zero_skips() {
        let args = CommandArgs {
            argv: sh("exit 1"),
            creates: None,
            unless: Some(vec!["true".into()]),
            env: BTreeMap::new(),
            redact: Vec::new(),
            watch: Vec::new(),
        };
        assert_eq!(
            apply(&args, &ctx(false)).unwrap(),
            Outcome::unchanged("skipped: `true` exited 0")
        );
    }

    #[test]
    fn a_failure_names_the_exit_code_and_keeps_output() {
        let args = CommandArgs {
            argv: sh("echo boom >&2; exit 4"),
            creates: None,
            unless: Some(vec!["false".into()]),
            env: BTreeMap::new(),
            redact: Vec::new(),
            watch: Vec::new(),
        };
        let err = apply(&args, &ctx(false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo boom >&2; exit 4'` exited with code 4"
        );
        assert_eq!(err.output(), "boom\n");
    }

    const TOKEN: &str = "abcdef.0123456789abcdef";

    #[test]
    fn redacts_secrets_in_output_and_messages() {
        let args = CommandArgs {
            argv: sh(&format!("echo joining with {TOKEN}; echo key $KEY >&2")),
            creates: None,
            unless: None,
            env: BTreeMap::from([("KEY".to_string(), "c0ffee".to_string())]),
            redact: vec![TOKEN.to_string(), "c0ffee".to_string(), String::new()],
            watch: Vec::new(),
        };
        let ran = apply(&args, &ctx(false)).unwrap();
        assert_eq!(ran.output, "joining with [redacted]\nkey [redacted]\n");
        assert_eq!(
            ran.message,
            "run `sh -c 'echo joining with [redacted]; echo key $KEY >&2'`"
        );
        let dry = apply(&args, &ctx(true)).unwrap();
        assert!(!dry.message.contains(TOKEN), "{}", dry.message);
    }

    #[test]
    fn redacts_secrets_in_failures() {
        let args = CommandArgs {
            argv: sh(&format!("echo bad token {TOKEN} >&2; exit 1")),
            creates: None,
            unless: None,
            env: BTreeMap::new(),
            redact: vec![TOKEN.to_string()],
            watch: Vec::new(),
        };
        let err = apply(&args, &ctx(false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo bad token [redacted] >&2; exit 1'` exited with code 1"
        );
        assert_eq!(err.output(), "bad token [redacted]\n");
        let spawn = CommandArgs {
            argv: vec![format!("kubegrid-no-such-{TOKEN}")],
            ..args
        };
        let err = apply(&spawn, &ctx(false)).unwrap_err();
        assert!(matches!(err, Error::Redacted { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("failed to run `kubegrid-no-such-[redacted]`"),
            "{err}"
        );
    }

    #[test]
    fn a_watching_command_runs_only_when_its_files_changed() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("blacklist.conf");
        let log = dir.path().join("runs");
        std::fs::write(&conf, "blacklist nouveau\n").unwrap();
        let ctx = |check_mode| crate::testutil::ctx_in(dir.path(), check_mode);
        let args = CommandArgs {
            argv: sh(&format!("echo rebuilt >> {}", log.display())),
            creates: None,
            unless: None,
            env: BTreeMap::new(),
            redact: Vec::new(),
            watch: vec![conf.clone()],
        };
        let runs = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let dry = apply(&args, &ctx(true)).unwrap();
        assert!(dry.changed, "{dry:?}");
        assert!(
            dry.message
                .ends_with(&format!("(no record of a run with {})", conf.display()))
        );
        assert_eq!(runs(), 0, "check mode runs nothing");
        let first = apply(&args, &ctx(false)).unwrap();
        assert!(first.changed && runs() == 1, "{first:?}");
        let again = apply(&args, &ctx(false)).unwrap();
        assert_eq!(
            again,
            Outcome::unchanged(format!(
                "skipped: {} unchanged since its last run",
                conf.display()
            ))
        );
        assert_eq!(runs(), 1);
        std::fs::write(&conf, "blacklist nouveau\noptions nouveau modeset=0\n").unwrap();
        let changed = apply(&args, &ctx(false)).unwrap();
        assert!(
            changed
                .message
                .ends_with(&format!("({} changed since its last run)", conf.display())),
            "{}",
            changed.message
        );
        assert_eq!(runs(), 2);
        assert!(!apply(&args, &ctx(false)).unwrap().changed);
        // A run that fails records nothing, so the next apply runs it again.
        std::fs::write(&conf, "blacklist nouveau\n").unwrap();
        let failing = CommandArgs {
            argv: sh("exit 3"),
            ..args.clone()
        };
        let failing_again = failing.clone();
        assert!(apply(&failing, &ctx(false)).is_err());
        assert!(apply(&failing_again, &ctx(false)).is_err());
    }

    #[test]
    fn a_command_that_rewrites_what_it_watches_settles() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("cdi.yaml");
        let ctx = crate::testutil::ctx_in(dir.path(), false);
        let args = CommandArgs {
            argv: sh(&format!("echo generated > {}", spec.display())),
            creates: None,
            unless: None,
            env: BTreeMap::new(),
            redact: Vec::new(),
            watch: vec![spec.clone()],
        };
        assert!(apply(&args, &ctx).unwrap().changed);
        assert!(
            !apply(&args, &ctx).unwrap().changed,
            "stamped after the run"
        );
        std::fs::remove_file(&spec).unwrap();
        assert!(
            apply(&args, &ctx).unwrap().changed,
            "a removed output is made again"
        );
        assert_eq!(std::fs::read_to_string(&spec).unwrap(), "generated\n");
    }
}
