//! The systemd_unit module: unit file, enabled, running, and restarted when its inputs change.
//!
//! "Inputs changed" is judged by a stamp, not by what this run wrote: the stamp holds the
//! sha256 of the unit and its watched files as the service last (re)started with them, so a
//! run killed between writing a config and restarting still restarts the next time.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    exec::{self, Ran},
    fsutil::{Perms, atomic_write, read_optional},
    protocol::UnitArgs,
};

/// `systemctl is-enabled` answers that need no `enable`: static and generated units
/// cannot be enabled, and an alias follows its target.
const ENABLED_ENOUGH: [&str; 5] = ["enabled", "enabled-runtime", "static", "generated", "alias"];

/// Converges the unit.
pub fn apply(args: &UnitArgs, ctx: &Ctx) -> Result<Outcome> {
    let unit = args.name.as_str();
    let mut changes = Vec::new();
    let mut output = String::new();
    let mut log = |ran: &Ran| {
        output.push_str(&format!("$ {}\n{}", ran.command, ran.tail()));
    };

    // systemd is reloaded only for a unit file that changed (see `unit_file_change`).
    if let Some(content) = &args.content {
        let path = ctx.host("/etc/systemd/system").join(unit);
        let on_disk = read_optional(&path)?;
        let change = unit_file_change(&path, on_disk.as_deref(), content.as_bytes(), || {
            Ok(query(&["show", "--property=NeedDaemonReload", "--value", unit])? == "yes")
        })?;
        if let Some(change) = change {
            changes.push(change.message);
            if !ctx.check_mode {
                if change.write {
                    atomic_write(&path, content.as_bytes(), Perms::mode(0o644))?;
                }
                log(&systemctl(&["daemon-reload"])?.ok_or("")?);
            }
        }
    }

    let enabled_state = query(&["is-enabled", unit])?;
    let is_enabled = ENABLED_ENOUGH.contains(&enabled_state.as_str());
    if args.enabled && !is_enabled {
        changes.push(format!(
            "enable {unit} (was {})",
            or_unknown(&enabled_state)
        ));
        // Without --no-reload, enable reloads systemd as daemon-reload does (see
        // `unit_file_change`); the links only matter at the next boot, and systemd was
        // already reloaded for a unit file it had to read.
        if !ctx.check_mode {
            log(&systemctl(&["enable", "--no-reload", unit])?.ok_or(hint_unit(unit))?);
        }
    } else if !args.enabled && enabled_state == "enabled" {
        changes.push(format!("disable {unit}"));
        if !ctx.check_mode {
            log(&systemctl(&["disable", "--no-reload", unit])?.ok_or("")?);
        }
    }

    let active = query(&["is-active", unit])? == "active";
    // A restart this task may not make (`restart: false`), left to a later task.
    let mut deferred = false;
    if args.running {
        let stamp_path = ctx.state_dir.join("units").join(format!("{unit}.sha256"));
        let stamp = match &args.content {
            Some(c) => Some(stamp(c.as_bytes(), &args.watch)?),
            // Before the package is installed (check mode) the unit cannot be read; it
            // will be started, and that writes the stamp.
            None => match systemctl(&["cat", unit])? {
                ran if ran.success() => Some(stamp(ran.stdout.as_bytes(), &args.watch)?),
                _ if ctx.check_mode => None,
                ran => return Err(ran.failed(hint_unit(unit))),
            },
        };
        let recorded =
            read_optional(&stamp_path)?.map(|b| String::from_utf8_lossy(&b).trim().to_string());
        let due = recorded.is_none() || recorded != stamp;
        let verb = if !active {
            Some("start")
        } else if due && args.restart {
            Some("restart")
        } else {
            None
        };
        deferred = active && due && !args.restart;
        if let Some(verb) = verb {
            changes.push(match (verb, &recorded) {
                ("restart", None) => format!("restart {unit} (no record of its inputs)"),
                ("restart", Some(_)) => format!("restart {unit} (inputs changed)"),
                _ => format!("start {unit}"),
            });
            if !ctx.check_mode {
                let ran = systemctl(&[verb, unit])?;
                let now = query(&["is-active", unit])?;
                if !ran.success() || !["active", "activating", "reloading"].contains(&now.as_str())
                {
                    return Err(failed_to_run(&ran, unit, &now)?);
                }
                log(&ran);
                if let Some(s) = &stamp {
                    atomic_write(&stamp_path, format!("{s}\n").as_bytes(), Perms::mode(0o644))?;
                }
            }
        }
    } else if active {
        changes.push(format!("stop {unit}"));
        if !ctx.check_mode {
            log(&systemctl(&["stop", unit])?.ok_or("")?);
        }
    }

    let steady = format!(
        "{unit} is {}{}{}",
        if args.enabled { "enabled" } else { "disabled" },
        if args.running {
            " and running"
        } else {
            " and stopped"
        },
        if deferred {
            "; its inputs changed, and a later task restarts it"
        } else {
            ""
        }
    );
    Ok(Outcome::from_changes(&changes, &steady, &output))
}

/// A unit file to write and a reload of systemd, or a reload alone.
#[derive(Debug, PartialEq, Eq)]
struct UnitFileChange {
    /// The file differs from the rendered unit.
    write: bool,
    /// What the task reports: the reload is always named.
    message: String,
}

/// `systemctl daemon-reload` is not free: on a GPU Node it detaches the GPUs from running
/// containers (nvidia-container-toolkit issue 48). So systemd is reloaded only when this
/// unit's file really changed: now (`on_disk` differs from `content`), or by an earlier run
/// that stopped before its reload, which `needs_reload` (systemd's NeedDaemonReload) tells.
fn unit_file_change(
    path: &Path,
    on_disk: Option<&[u8]>,
    content: &[u8],
    needs_reload: impl FnOnce() -> Result<bool>,
) -> Result<Option<UnitFileChange>> {
    Ok(if on_disk != Some(content) {
        Some(UnitFileChange {
            write: true,
            message: format!("write {} and reload systemd", path.display()),
        })
    } else if needs_reload()? {
        Some(UnitFileChange {
            write: false,
            message: format!(
                "reload systemd ({} changed since systemd read it)",
                path.display()
            ),
        })
    } else {
        None
    })
}

/// Why a start or restart did not leave the service running, with `systemctl status`.
fn failed_to_run(ran: &Ran, unit: &str, now: &str) -> Result<Error> {
    let status = systemctl(&["status", "--no-pager", "--lines=20", unit])?;
    let output = exec::tail(
        &format!("{}{}", ran.tail(), status.tail()),
        exec::OUTPUT_TAIL_BYTES,
    );
    Ok(if ran.success() {
        Error::CheckFailed {
            check: format!("service {unit} after `{}`", ran.command),
            seen: or_unknown(now).to_string(),
            expected: "active".into(),
            hint: format!("journalctl -u {unit} shows why it stopped"),
            output,
        }
    } else {
        Error::CommandFailed {
            command: ran.command.clone(),
            status: ran.status_text(),
            output,
            hint: format!("journalctl -u {unit} shows why"),
        }
    })
}

fn systemctl(args: &[&str]) -> Result<Ran> {
    let mut argv = vec!["systemctl"];
    argv.extend(args);
    exec::run(&argv)
}

/// The one-word answer of `is-enabled` / `is-active`; their exit code only says "not
/// that", so the word is what counts.
fn query(args: &[&str]) -> Result<String> {
    Ok(systemctl(args)?.stdout.trim().to_string())
}

fn or_unknown(state: &str) -> &str {
    if state.is_empty() { "unknown" } else { state }
}

fn hint_unit(unit: &str) -> String {
    format!("is {unit} installed? a packages task must come before its unit")
}

/// sha256 over the unit text and each watched file (a missing file counts as such, so its
/// appearance changes the stamp).
pub fn stamp(unit_text: &[u8], watch: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    h.update((unit_text.len() as u64).to_le_bytes());
    h.update(unit_text);
    for path in watch {
        h.update(path.as_os_str().as_encoded_bytes());
        h.update([0]);
        match read_optional(Path::new(path))? {
            Some(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            None => h.update(u64::MAX.to_le_bytes()),
        }
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn systemd_is_reloaded_only_for_a_changed_unit_file() {
        let path = Path::new("/etc/systemd/system/kubegrid-nvidia-cdi.service");
        let unit = b"[Unit]\nDescription=x\n";
        let probed = std::cell::Cell::new(false);
        let up_to_date = || {
            probed.set(true);
            Ok(false)
        };
        assert_eq!(
            unit_file_change(path, Some(unit), unit, up_to_date).unwrap(),
            None,
            "an unchanged unit that systemd has read: no reload"
        );
        assert!(probed.get(), "systemd was asked whether it needs a reload");
        let written = unit_file_change(path, Some(b"[Unit]\n"), unit, || Ok(false))
            .unwrap()
            .unwrap();
        assert!(written.write);
        assert_eq!(
            written.message,
            "write /etc/systemd/system/kubegrid-nvidia-cdi.service and reload systemd"
        );
        let new = unit_file_change(path, None, unit, || panic!("no need to ask"))
            .unwrap()
            .unwrap();
        assert!(new.write);
        // Written by a run that stopped before its reload: reload, write nothing.
        let pending = unit_file_change(path, Some(unit), unit, || Ok(true))
            .unwrap()
            .unwrap();
        assert!(!pending.write);
        assert_eq!(
            pending.message,
            "reload systemd (/etc/systemd/system/kubegrid-nvidia-cdi.service changed since systemd read it)"
        );
    }

    #[test]
    fn the_stamp_follows_unit_and_watched_files() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("config.toml");
        let watch = vec![conf.clone()];
        let missing = stamp(b"[Unit]\n", &watch).unwrap();
        fs::write(&conf, "a").unwrap();
        let a = stamp(b"[Unit]\n", &watch).unwrap();
        fs::write(&conf, "b").unwrap();
        let b = stamp(b"[Unit]\n", &watch).unwrap();
        assert_ne!(missing, a);
        assert_ne!(a, b);
        assert_eq!(b, stamp(b"[Unit]\n", &watch).unwrap());
        assert_ne!(b, stamp(b"[Unit]\nX=1\n", &watch).unwrap());
        assert_ne!(b, stamp(b"[Unit]\n", &[]).unwrap());
    }
}
