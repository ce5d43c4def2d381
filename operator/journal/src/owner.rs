//! Which process owns a running operation, and whether it is still alive.
//!
//! A pid alone is not an identity: pids are recycled, so a killed `apply` could look alive
//! when an unrelated process later gets its pid. The start time (in clock ticks after boot)
//! tells a recycled pid apart, and the boot id tells apart the same pid and tick after a
//! reboot, when early processes start at very similar ticks.

use std::{fs, io};

use crate::error::{Error, Result};

const SELF_STAT: &str = "/proc/self/stat";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// A process identity that survives pid reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: u32,
    pub(crate) start_ticks: u64,
    pub(crate) boot_id: String,
}

/// What `/proc/PID/stat` says about a process that matters here.
struct Stat {
    pid: u32,
    state: char,
    start_ticks: u64,
}

impl Owner {
    /// The identity of this process.
    pub(crate) fn current() -> Result<Owner> {
        let text = fs::read_to_string(SELF_STAT).map_err(|err| Error::ProcessIdentity {
            path: SELF_STAT,
            reason: err.to_string(),
        })?;
        let stat = parse_stat(&text).ok_or_else(|| Error::ProcessIdentity {
            path: SELF_STAT,
            reason: format!("unexpected format `{}`", text.trim()),
        })?;
        Ok(Owner {
            pid: stat.pid,
            start_ticks: stat.start_ticks,
            boot_id: boot_id().map_err(|err| Error::ProcessIdentity {
                path: BOOT_ID,
                reason: err.to_string(),
            })?,
        })
    }

    /// Whether this identity is a process that still runs on this machine. Doubt counts as
    /// alive: marking a live operation interrupted is worse than leaving a dead one running.
    pub(crate) fn is_alive(&self) -> bool {
        match boot_id() {
            Ok(current) if current != self.boot_id => return false,
            Ok(_) => {}
            Err(_) => return true,
        }
        match fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(text) => match parse_stat(&text) {
                // A zombie has exited; only its exit status waits to be collected.
                Some(stat) => {
                    stat.start_ticks == self.start_ticks && !matches!(stat.state, 'Z' | 'X')
                }
                None => true,
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(_) => true,
        }
    }
}

fn boot_id() -> io::Result<String> {
    Ok(fs::read_to_string(BOOT_ID)?.trim().to_owned())
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (head, tail) = text.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let mut fields = tail.split_whitespace();
    // Field 3 is the state; field 22, the start time, is 19 further on.
    let state = fields.next()?.chars().next()?;
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        start_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_command_name_with_spaces_and_parentheses() {
        let text = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50";
        let stat = parse_stat(text).expect("parses");
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_ticks, 987_654);
    }

    #[test]
    fn rejects_a_truncated_stat() {
        assert!(parse_stat("4242 (x) S 1 2 3").is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_different_start_is_not() {
        let me = Owner::current().expect("own identity");
        assert_eq!(me.pid, std::process::id());
        assert!(me.is_alive());
        let recycled = Owner {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!recycled.is_alive());
        let other_boot = Owner {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            ..me
        };
        assert!(!other_boot.is_alive());
    }
}
