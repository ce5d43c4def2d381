//! Live progress on stderr: one indicatif line per host on a terminal, plain lines otherwise
//! (CI logs, pipes, and `--output json`, whose stdout stays one clean document).

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use clap::ValueEnum;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kubegrid_engine::progress::{Observer, Progress};

/// How operations show progress on stderr (`--progress`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Display {
    /// A live view per host on a terminal, unless `-o json`; plain lines otherwise.
    #[default]
    Auto,
    /// Plain, timestamped lines.
    Lines,
    /// One JSON object per event and line, with `elapsedSeconds`, for scripts.
    Json,
}

/// The display `--progress` chose. Set once before a command runs; a process-wide value
/// rather than an argument of every command that runs an operation.
static CHOSEN: OnceLock<Display> = OnceLock::new();

/// Records the display `--progress` chose, for [`observer`].
pub fn choose(display: Display) {
    let _ = CHOSEN.set(display);
}

/// The display for this process's stderr; `plain` when stdout carries JSON.
pub fn observer(hosts: &[String], plain: bool) -> Arc<dyn Observer> {
    let started = Instant::now();
    match CHOSEN.get().copied().unwrap_or_default() {
        Display::Json => Arc::new(JsonLines { started }),
        Display::Auto if !plain && std::io::stderr().is_terminal() => Arc::new(Bars::new(hosts)),
        Display::Auto | Display::Lines => Arc::new(Lines { started }),
    }
}

/// Every event as one JSON line, as the engine reports it, with the seconds since the start.
struct JsonLines {
    started: Instant,
}

impl Observer for JsonLines {
    fn event(&self, e: &Progress) {
        if let Some(line) = json_line(e, self.started.elapsed()) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

fn json_line(e: &Progress, elapsed: Duration) -> Option<String> {
    let serde_json::Value::Object(mut event) = serde_json::to_value(e).ok()? else {
        return None;
    };
    let millis = elapsed.as_millis() as f64;
    event.insert("elapsedSeconds".into(), (millis / 1000.0).into());
    Some(serde_json::Value::Object(event).to_string())
}

/// Plain, timestamped lines: one per phase start, host result and failed or changed task.
struct Lines {
    started: Instant,
}

impl Observer for Lines {
    fn event(&self, e: &Progress) {
        let t = self.started.elapsed().as_secs_f64();
        // A closed stderr (the reader went away) must not stop the operation, so write errors
        // are ignored rather than panicking as eprintln! would.
        macro_rules! line {
            ($($arg:tt)*) => {{
                let _ = writeln!(std::io::stderr(), $($arg)*);
            }};
        }
        match e {
            Progress::PhaseStarted { phase, hosts } => {
                line!("[{t:6.1}s] phase {phase}: {hosts} host(s)")
            }
            Progress::TaskFinished {
                host,
                phase,
                task,
                status,
                message,
            } if status != "unchanged" => line!(
                "[{t:6.1}s] {host} {phase}: {task}: {status}{}",
                suffix(message)
            ),
            Progress::HostWaiting {
                host,
                phase,
                message,
            } => line!("[{t:6.1}s] {host} {phase}: {message}"),
            Progress::Swarm { stage, .. } if stage != "progress" => {
                line!("[{t:6.1}s] {}", swarm_line(e))
            }
            Progress::HostDone {
                host,
                phase,
                ok: false,
                error,
                ..
            } => {
                // Engine errors name their host already; the line starts with it.
                let error = error.as_deref().unwrap_or("");
                let error = error.strip_prefix(&format!("{host}: ")).unwrap_or(error);
                line!("[{t:6.1}s] {host} FAILED in {phase}: {error}")
            }
            _ => {}
        }
    }
}

/// One p2p download event as words: `lab-2 os-prepare: p2p 1a2b3c4d5e6f 24/128 pieces,
/// 96.0/512.0 MiB, 23.9 MiB/s`.
fn swarm_line(e: &Progress) -> String {
    let Progress::Swarm {
        host,
        phase,
        blob,
        stage,
        bytes,
        size,
        pieces,
        total,
        rate,
        message,
    } = e
    else {
        return String::new();
    };
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let blob = &blob[..blob.len().min(12)];
    match stage.as_str() {
        "progress" => format!(
            "{host} {phase}: p2p {blob} {pieces}/{total} pieces, {:.1}/{:.1} MiB, {:.1} MiB/s",
            mib(*bytes),
            mib(*size),
            mib(*rate)
        ),
        "stored" => format!(
            "{host} {phase}: p2p {blob} stored, {:.1} MiB at {:.1} MiB/s",
            mib(*size),
            mib(*rate)
        ),
        other => format!("{host} {phase}: p2p {blob} {other}: {message}"),
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// A spinner per host showing its phase and current task, and a tally of changes.
struct Bars {
    _multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    changed: Mutex<BTreeMap<String, usize>>,
}

impl Bars {
    fn new(hosts: &[String]) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = hosts.iter().map(String::len).max().unwrap_or(4);
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {{prefix:<{width}}} {{elapsed:>4}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = hosts
            .iter()
            .map(|h| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(h.clone());
                bar.set_message("connecting");
                bar.enable_steady_tick(Duration::from_millis(120));
                (h.clone(), bar)
            })
            .collect();
        Bars {
            _multi: multi,
            bars,
            changed: Mutex::new(BTreeMap::new()),
        }
    }

    fn tally(&self, host: &str) -> usize {
        self.changed
            .lock()
            .map(|m| m.get(host).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Observer for Bars {
    fn event(&self, e: &Progress) {
        match e {
            Progress::TaskStarted { host, phase, task } => {
                if let Some(b) = self.bars.get(host) {
                    b.set_message(format!("{phase}: {task}  [{} changed]", self.tally(host)));
                }
            }
            Progress::HostWaiting {
                host,
                phase,
                message,
            } => {
                if let Some(b) = self.bars.get(host) {
                    b.set_message(format!(
                        "{phase}: {message}  [{} changed]",
                        self.tally(host)
                    ));
                }
            }
            Progress::Swarm { host, .. } => {
                if let Some(b) = self.bars.get(host) {
                    let line = swarm_line(e);
                    let line = line.strip_prefix(&format!("{host} ")).unwrap_or(&line);
                    b.set_message(format!("{line}  [{} changed]", self.tally(host)));
                }
            }
            Progress::TaskFinished { host, status, .. } if status == "changed" => {
                if let Ok(mut m) = self.changed.lock() {
                    *m.entry(host.clone()).or_default() += 1;
                }
            }
            Progress::HostDone {
                host,
                phase,
                ok,
                error,
                ..
            } => {
                if let Some(b) = self.bars.get(host) {
                    if *ok {
                        b.set_message(format!("{phase} done  [{} changed]", self.tally(host)));
                    } else {
                        b.finish_with_message(format!(
                            "FAILED in {phase}: {}",
                            error.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        for (host, b) in &self.bars {
            if !b.is_finished() {
                b.finish_with_message(format!("done  [{} changed]", self.tally(host)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swarm(stage: &str, message: &str) -> Progress {
        Progress::Swarm {
            host: "lab-2".into(),
            phase: "os-prepare".into(),
            blob: "1a2b3c4d5e6f7a8b9c0d".into(),
            stage: stage.into(),
            bytes: 96 << 20,
            size: 512 << 20,
            pieces: 24,
            total: 128,
            rate: 25_060_000,
            message: message.into(),
        }
    }

    #[test]
    fn json_progress_is_the_engine_event_with_the_elapsed_seconds() {
        let line = json_line(&swarm("progress", ""), Duration::from_millis(12_345)).unwrap();
        assert!(!line.contains('\n'), "one event, one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "event": "swarm",
                "host": "lab-2",
                "phase": "os-prepare",
                "blob": "1a2b3c4d5e6f7a8b9c0d",
                "stage": "progress",
                "bytes": 96u64 << 20,
                "size": 512u64 << 20,
                "pieces": 24,
                "total": 128,
                "rate": 25_060_000,
                "message": "",
                "elapsedSeconds": 12.345,
            })
        );
    }

    #[test]
    fn p2p_progress_reads_as_pieces_bytes_and_rate() {
        assert_eq!(
            swarm_line(&swarm("progress", "")),
            "lab-2 os-prepare: p2p 1a2b3c4d5e6f 24/128 pieces, 96.0/512.0 MiB, 23.9 MiB/s"
        );
        assert_eq!(
            swarm_line(&swarm("stored", "")),
            "lab-2 os-prepare: p2p 1a2b3c4d5e6f stored, 512.0 MiB at 23.9 MiB/s"
        );
        assert_eq!(
            swarm_line(&swarm("banned", "lab-5: piece 3 failed its sha256")),
            "lab-2 os-prepare: p2p 1a2b3c4d5e6f banned: lab-5: piece 3 failed its sha256"
        );
    }
}
