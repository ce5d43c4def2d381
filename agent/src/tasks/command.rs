//! The command module: a program run unless its guards say the work is done.

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    exec::{self, command_line},
    protocol::CommandArgs,
};

/// Runs `argv` unless `creates` exists or `unless` exits 0.
pub fn apply(args: &CommandArgs, ctx: &Ctx) -> Result<Outcome> {
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
    let ran = exec::run_with(&args.argv, &args.env, None)?.ok_or("")?;
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
        };
        let err = apply(&args, &ctx(false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo boom >&2; exit 4'` exited with code 4"
        );
        assert_eq!(err.output(), "boom\n");
    }
}
