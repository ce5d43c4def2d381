//! One host's controlled reboot over SSH: read the boot id, request the reboot, and wait
//! until the host answers again, with its pinned host key, under a new boot id.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    agent,
    error::Error,
    ssh::{Connection, HostKey, KeyPins, SshOptions, SshTarget},
};

/// Where Linux keeps the id of the current boot; it changes with every boot (systemd-nspawn
/// gives each container boot its own).
pub(crate) const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// How long to wait between two looks at a host that is not back yet.
const POLL: Duration = Duration::from_secs(1);

/// How often the wait tells the observer that it still waits.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The longest single connection attempt while waiting: a host that is down must not hold
/// the wait past its deadline.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

/// Host keys pinned in the journal, by Node name (the host and its bastion, if any).
pub(crate) struct Pins(pub BTreeMap<String, HostKey>);

impl KeyPins for Pins {
    fn pinned(&self, host: &str) -> Option<HostKey> {
        self.0.get(host).cloned()
    }
}

/// Reads the host's boot id.
pub(crate) async fn boot_id(conn: &Connection) -> Result<String, Error> {
    let host = conn.target().host.clone();
    let mut lines = Vec::new();
    let out = conn
        .exec(&format!("cat {BOOT_ID_PATH}"), Vec::new(), |l| {
            lines.push(l.to_string())
        })
        .await?;
    let id = lines
        .first()
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    match out.exit {
        Some(0) if is_boot_id(&id) => Ok(id),
        Some(0) => Err(Error::BootId {
            host,
            detail: format!(
                "expected a UUID like 1b4e28ba-2fa1-11d2-883f-0016d3cca427, read {:?}",
                id.chars().take(60).collect::<String>()
            ),
        }),
        Some(code) => Err(Error::BootId {
            host,
            detail: format!("`cat` exited {code}: {}", out.stderr.trim()),
        }),
        None => Err(Error::BootId {
            host,
            detail: "the connection closed before `cat` finished".into(),
        }),
    }
}

fn is_boot_id(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Sends `systemctl reboot`. The host may drop the connection before the command's status
/// comes back, which is no failure: whether the request arrived shows in the boot id.
pub(crate) async fn request(conn: &Connection) -> Result<(), Error> {
    let script = agent::privileged("systemctl reboot", conn.target().sudo);
    match conn.exec(&script, Vec::new(), |_| {}).await {
        Ok(out) => match out.exit {
            Some(0) | None => Ok(()),
            Some(exit) => Err(Error::RebootRefused {
                host: conn.target().host.clone(),
                exit,
                stderr: out.stderr.trim().to_string(),
            }),
        },
        Err(e) => {
            tracing::debug!(host = %conn.target().host, error = %e, "connection dropped while requesting the reboot");
            Ok(())
        }
    }
}

/// Waits until the host answers SSH, with the key pinned for it, under a boot id other than
/// `old`; returns the new connection and boot id. A refused host key or login fails at once
/// (a host that came back as another machine must not be trusted); a host that is down or
/// still shutting down is looked at again until `timeout` has passed since `started`.
pub(crate) async fn wait_new_boot(
    target: &SshTarget,
    pins: &Pins,
    opts: &SshOptions,
    old: &str,
    started: Instant,
    timeout: Duration,
    mut waiting: impl FnMut(Duration),
) -> Result<(Connection, String), Error> {
    let attempt_limit = opts
        .connect_timeout
        .clamp(Duration::from_secs(1), ATTEMPT_LIMIT);
    let once = SshOptions {
        connect_timeout: attempt_limit,
        attempts: 1,
        ..opts.clone()
    };
    let mut last_seen = "nothing yet: the reboot was just requested".to_string();
    // Said at once, so a watcher knows the request went out and the wait began.
    waiting(started.elapsed());
    let mut reported = Instant::now();
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::RebootTimeout {
                host: target.host.clone(),
                timeout_s: timeout.as_secs(),
                old_boot_id: old.to_string(),
                last_seen,
            });
        }
        let attempt = tokio::time::timeout(
            left.min(attempt_limit * 2),
            Connection::open(target, pins, &once),
        )
        .await;
        match attempt {
            Err(_) => last_seen = "no SSH answer in time (the host is down)".into(),
            Ok(Err(Error::Connect { reason, .. })) => {
                last_seen = format!("cannot connect: {reason}");
            }
            Ok(Err(refused)) => return Err(refused),
            Ok(Ok(conn)) => match boot_id(&conn).await {
                Ok(id) if id != old => return Ok((conn, id)),
                Ok(_) => {
                    last_seen = format!(
                        "sshd still answers with the old boot id {old} (the host has not gone down yet)"
                    );
                    conn.close().await;
                }
                Err(e) => {
                    last_seen = e.to_string();
                    conn.close().await;
                }
            },
        }
        if reported.elapsed() >= REPORT_EVERY {
            reported = Instant::now();
            waiting(started.elapsed());
        }
        tokio::time::sleep(POLL.min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_that_does_not_come_back_times_out_naming_it_and_what_was_seen() {
        // A loopback port nothing listens on: every attempt is refused, like a host still down.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = SshTarget {
            cluster: "c".into(),
            host: "lab-2".into(),
            address: "127.0.0.1".into(),
            port,
            user: "root".into(),
            key_file: None,
            password: None,
            sudo: false,
            bastion: None,
        };
        let mut reports = 0;
        let err = wait_new_boot(
            &target,
            &Pins(BTreeMap::new()),
            &SshOptions::default(),
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            Instant::now(),
            Duration::from_secs(2),
            |_| reports += 1,
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::RebootTimeout { .. }), "{text}");
        assert!(
            text.starts_with("lab-2: did not come back from the reboot within 2 s")
                && text.contains("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
                && text.contains("last seen: cannot connect"),
            "{text}"
        );
        assert!(reports >= 1, "the wait is announced when it begins");
    }

    #[test]
    fn boot_ids_are_uuids() {
        assert!(is_boot_id("1b4e28ba-2fa1-11d2-883f-0016d3cca427"));
        assert!(!is_boot_id("1b4e28ba2fa111d2883f0016d3cca427"));
        assert!(!is_boot_id("cat: /proc/sys/kernel/random/boot_id: No"));
        assert!(!is_boot_id(""));
    }
}
