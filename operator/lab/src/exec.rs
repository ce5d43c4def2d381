//! Running the system programs the lab builds on (ip, debootstrap, nsenter).
//!
//! iproute2 and systemd-nspawn are the documented interfaces for network namespaces and
//! containers; calling them keeps the lab's behaviour identical to what an operator would
//! type by hand, and every failure carries the exact command line.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::{Error, Result};

/// Runs `program args…`, returning its stdout; a non-zero exit becomes [`Error::RunCommand`].
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    output(&mut cmd).map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a prepared command to completion and checks its exit status.
pub(crate) fn output(cmd: &mut Command) -> Result<Output> {
    let line = command_line(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::RunCommand {
            command: line.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::RunCommand {
            command: line,
            detail: format!(
                "{}: {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 8)
            ),
        })
    }
}

/// The command as a shell-like line, for error messages.
pub(crate) fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` non-empty lines of `text`, trimmed.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Finds `program` on PATH.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Fails with [`Error::MissingTool`] unless `program` is on PATH.
pub(crate) fn require(program: &str, package: &str) -> Result<()> {
    match which(program) {
        Some(_) => Ok(()),
        None => Err(Error::MissingTool {
            program: program.to_string(),
            package: package.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_non_empty_lines() {
        assert_eq!(tail("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn failed_command_names_the_command_and_stderr() {
        let err = run("sh", &["-c", "echo boom >&2; exit 3"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c echo boom >&2; exit 3"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }

    #[test]
    fn require_names_the_package() {
        let err = require("kubegrid-no-such-program", "some-package").unwrap_err();
        assert!(err.to_string().contains("apt-get install some-package"));
        assert!(require("sh", "dash").is_ok());
    }
}
