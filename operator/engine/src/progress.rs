//! Progress as it happens, for a terminal display, log lines or an operator's status.

use kubegrid_agent::protocol::TaskStatus;
use serde::Serialize;

/// Something that just happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum Progress {
    /// A phase begins on `hosts` hosts.
    PhaseStarted {
        /// Phase name.
        phase: String,
        /// Hosts taking part.
        hosts: usize,
    },
    /// A host began a task.
    TaskStarted {
        /// Node name.
        host: String,
        /// Phase name.
        phase: String,
        /// Task name.
        task: String,
    },
    /// A host finished a task.
    TaskFinished {
        /// Node name.
        host: String,
        /// Phase name.
        phase: String,
        /// Task name.
        task: String,
        /// "changed", "unchanged" or "failed".
        status: String,
        /// What changed or why it failed.
        message: String,
    },
    /// A host finished (or failed) a phase.
    HostDone {
        /// Node name.
        host: String,
        /// Phase name.
        phase: String,
        /// It succeeded.
        ok: bool,
        /// Tasks changed.
        changed: usize,
        /// Why it failed.
        error: Option<String>,
    },
    /// A blob transfer to a host moved on (see [`crate::distribute`]).
    Transfer {
        /// Node name.
        host: String,
        /// Phase name.
        phase: String,
        /// The blob's sha256.
        blob: String,
        /// "start", "progress" (about once a second), "retry" or "done".
        stage: String,
        /// Bytes the host holds.
        bytes: u64,
        /// The blob's size (0 on "retry").
        size: u64,
        /// At "start" and "retry", the byte the transfer goes on from; at "done", the byte
        /// the last request started at: above 0 when the transfer resumed.
        resumed_from: u64,
        /// Wall time of the whole transfer, at "done".
        millis: u64,
        /// Why it is retried, at "retry".
        message: String,
    },
    /// A host's peer-to-peer download moved on (`--distribution p2p`).
    Swarm {
        /// Node name.
        host: String,
        /// Phase name.
        phase: String,
        /// The blob's sha256.
        blob: String,
        /// "progress", "stored", "failed", "banned" (a source sent a bad piece) or "down"
        /// (a source stopped answering).
        stage: String,
        /// Verified bytes the host holds.
        bytes: u64,
        /// The blob's size.
        size: u64,
        /// Verified pieces the host holds.
        pieces: u32,
        /// Pieces in the blob.
        total: u32,
        /// Bytes per second lately ("progress"), or over the whole download ("stored").
        rate: u64,
        /// The source, for "banned" and "down"; why, for "failed".
        message: String,
    },
    /// A host waits on something the engine does itself (a controlled reboot), repeated
    /// about every five seconds while it waits.
    HostWaiting {
        /// Node name.
        host: String,
        /// Phase name.
        phase: String,
        /// What it waits for, with the time waited so far.
        message: String,
    },
    /// A phase ended on every host.
    PhaseFinished {
        /// Phase name.
        phase: String,
    },
}

/// Receives progress; must be cheap, it is called from the fan-out tasks.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: &Progress);
}

/// Ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &Progress) {}
}

/// The wire name of a task status.
pub fn status_name(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Changed => "changed",
        TaskStatus::Unchanged => "unchanged",
        TaskStatus::Failed => "failed",
    }
}
