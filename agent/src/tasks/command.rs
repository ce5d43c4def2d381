//! The command module: a program run unless its guards say the work is done.

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    exec::{self, command_line},
    protocol::CommandArgs,
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
    if ctx.check_mode {
        return Ok(Outcome {
            changed: true,
            message: format!("run `{line}`"),
            output: String::new(),
        });
    }
    let ran = exec::run_with(&args.argv, &args.env, None)?
        .redacted(&args.redact)
        .ok_or("")?;
    Ok(Outcome {
        changed: true,
        message: format!("run `{line}`"),
        output: ran.tail(),
    })
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
}
