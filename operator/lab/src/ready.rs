//! Waiting for booted hosts to become ready, all at once.

use std::{
    thread,
    time::{Duration, Instant},
};

use crate::{
    Error, HostReady, HostRecord, LabState, Layout, Result, exec, host,
    nspawn::{self, NotReady},
};

/// The report for a host that `up` or `start` found running already.
pub(crate) fn already_running(h: &HostRecord) -> HostReady {
    HostReady {
        name: h.name.clone(),
        address: h.address.to_string(),
        seconds: 0.0,
        system_state: "already-running".into(),
        failed_units: vec![],
    }
}

/// Waits for booted hosts in parallel; reports every late host at once.
pub(crate) fn wait_all(
    layout: &Layout,
    state: &LabState,
    booted: &[(String, Instant)],
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> Result<Vec<HostReady>> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = std::sync::mpsc::channel();
    thread::scope(|scope| {
        for (name, started) in booted {
            let h = state.host(name).expect("booted hosts are in the state");
            let proc = host::proc_of(h);
            let tx = tx.clone();
            scope.spawn(move || {
                let result = match proc {
                    Some(p) => nspawn::wait_ready(p, h.address, h.cut, deadline),
                    None => Err(NotReady::Late("no systemd-nspawn process recorded".into())),
                };
                let _ = tx.send((name.clone(), h.address, started.elapsed(), result));
            });
        }
        drop(tx);
        let mut ready = Vec::new();
        let mut late = Vec::new();
        let mut exited = None;
        for (name, address, took, result) in rx {
            match result {
                Ok(r) => {
                    let note = if r.failed_units.is_empty() {
                        String::new()
                    } else {
                        format!("; failed units: {}", r.failed_units.join(", "))
                    };
                    progress(&format!(
                        "{name}: ready in {:.1}s ({}{note})",
                        took.as_secs_f64(),
                        r.system_state
                    ));
                    ready.push(HostReady {
                        name,
                        address: address.to_string(),
                        seconds: took.as_secs_f64(),
                        system_state: r.system_state,
                        failed_units: r.failed_units,
                    });
                }
                Err(NotReady::Exited) => {
                    let log =
                        std::fs::read_to_string(layout.console_log(&name)).unwrap_or_default();
                    exited.get_or_insert(Error::HostExited {
                        host: name.clone(),
                        console: exec::tail(&log, 12),
                    });
                    late.push((name, "systemd-nspawn exited".to_string()));
                }
                Err(NotReady::Late(why)) => late.push((name, why)),
            }
        }
        ready.sort_by(|a, b| a.name.cmp(&b.name));
        match (exited, late.is_empty()) {
            (Some(e), _) => Err(e),
            (None, true) => Ok(ready),
            (None, false) => {
                late.sort();
                Err(Error::BootTimeout {
                    late,
                    total: booted.len(),
                    timeout_s: timeout.as_secs(),
                })
            }
        }
    })
}
