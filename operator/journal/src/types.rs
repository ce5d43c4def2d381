//! The values the journal stores and returns.

use std::{fmt, str::FromStr};

use serde::Serialize;

/// The id of a journaled operation, as `kubegrid history` shows it and `kubegrid logs` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct OperationId(pub i64);

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for OperationId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(OperationId)
    }
}

/// What an operation does. Stored as text, so a new kind needs no schema migration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum OperationKind {
    /// `kubegrid apply`: converge hosts to the spec.
    Apply,
    /// `kubegrid plan`: a dry run that changes nothing.
    Plan,
    /// `kubegrid reset`, or the operator's `deletionPolicy: Reset`: the reset playbook on
    /// every host.
    Reset,
    /// `kubegrid upgrade apply`, or the operator after a version change: the upgrade roll.
    Upgrade,
    /// `kubegrid certs check|renew|rotate-ca`, or the operator's automatic renewal and CA
    /// rotation.
    Certs,
    /// A kind this version does not know, written by a newer kubegrid; kept verbatim.
    Other(String),
}

impl OperationKind {
    /// The stored text ("apply", "plan", "reset").
    pub fn as_str(&self) -> &str {
        match self {
            Self::Apply => "apply",
            Self::Plan => "plan",
            Self::Reset => "reset",
            Self::Upgrade => "upgrade",
            Self::Certs => "certs",
            Self::Other(kind) => kind,
        }
    }

    /// Reads the stored text; unknown text becomes [`OperationKind::Other`].
    pub fn parse(text: &str) -> Self {
        match text {
            "apply" => Self::Apply,
            "plan" => Self::Plan,
            "reset" => Self::Reset,
            "upgrade" => Self::Upgrade,
            "certs" => Self::Certs,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl From<OperationKind> for String {
    fn from(kind: OperationKind) -> Self {
        kind.as_str().to_owned()
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares a text-stored enum with `as_str`, `parse` and `Display`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Reads the stored text; `None` for text this version does not know.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where an operation stands.
    OperationStatus {
        /// Its owner process is (or was last known to be) working on it.
        Running = "running",
        /// Every host converged.
        Succeeded = "succeeded",
        /// At least one host failed, or the operation could not run.
        Failed = "failed",
        /// Its owner process stopped without finishing it (killed, crashed, interrupted).
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// How an operation ended; what [`Journal::finish`](crate::Journal::finish) takes.
    FinalStatus {
        /// Every host converged.
        Succeeded = "succeeded",
        /// At least one host failed, or the operation could not run.
        Failed = "failed",
        /// It was stopped on purpose (a signal) before it finished.
        Interrupted = "interrupted",
    }
}

impl From<FinalStatus> for OperationStatus {
    fn from(status: FinalStatus) -> Self {
        match status {
            FinalStatus::Succeeded => Self::Succeeded,
            FinalStatus::Failed => Self::Failed,
            FinalStatus::Interrupted => Self::Interrupted,
        }
    }
}

text_enum! {
    /// How one task ended on one host.
    TaskState {
        /// It changed the host (or would, in a dry run).
        Changed = "changed",
        /// The host already matched.
        Unchanged = "unchanged",
        /// It failed; the host's pipeline stops.
        Failed = "failed",
        /// It did not run (its `when:` was false, or an earlier task failed).
        Skipped = "skipped",
    }
}

/// What [`Journal::begin`](crate::Journal::begin) records about a new operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOperation {
    /// What it does.
    pub kind: OperationKind,
    /// The cluster's name.
    pub cluster: String,
    /// Digest of the spec it works from, so history shows which spec each run used.
    pub spec_digest: String,
    /// The hosts it acts on.
    pub hosts: Vec<String>,
}

/// One task's result on one host, as the engine reports it. `message` and `output` come from
/// the host, so the journal redacts them before storing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// The host.
    pub host: String,
    /// The phase the task belongs to.
    pub phase: String,
    /// The task's name.
    pub task: String,
    /// How it ended.
    pub status: TaskState,
    /// Wall time on the host.
    pub duration_ms: u64,
    /// One line saying what changed, or why it failed.
    pub message: String,
    /// Output of commands the task ran; only the last [`OUTPUT_TAIL_BYTES`](crate::OUTPUT_TAIL_BYTES) are kept.
    pub output: String,
}

/// How one host came out of one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOutcome {
    /// The host finished the phase.
    pub ok: bool,
    /// Why it did not (connection lost, task failed, preflight check); redacted before storing.
    pub error: Option<String>,
}

/// One operation as `kubegrid history` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationSummary {
    /// Its id.
    pub id: OperationId,
    /// What it did.
    pub kind: OperationKind,
    /// The cluster.
    pub cluster: String,
    /// Digest of the spec it worked from.
    pub spec_digest: String,
    /// The hosts it acted on.
    pub hosts: Vec<String>,
    /// Where it stands.
    pub status: OperationStatus,
    /// When it began (unix ms).
    pub started_ms: i64,
    /// When it ended (unix ms); for an interrupted one, when that was noticed.
    pub finished_ms: Option<i64>,
    /// `finished_ms - started_ms`; `None` while it runs.
    pub duration_ms: Option<u64>,
    /// When its last task event or host result was recorded (unix ms), which for an
    /// interrupted operation is about when its owner stopped.
    pub last_activity_ms: Option<i64>,
    /// The closing summary given to `finish`, or why it was marked interrupted.
    pub summary: Option<String>,
    /// The pid of the process that ran it.
    pub owner_pid: u32,
    /// Task events that changed a host.
    pub changed: u64,
    /// Task events that failed.
    pub failed: u64,
    /// Distinct hosts with a failed task or a failed phase result.
    pub hosts_failed: u64,
}

/// One recorded task event, as `kubegrid logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// Position in the journal; increases in recording order.
    pub seq: i64,
    /// The host.
    pub host: String,
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// How it ended.
    pub status: TaskState,
    /// It changed the host.
    pub changed: bool,
    /// Wall time on the host.
    pub duration_ms: u64,
    /// Redacted one-line message.
    pub message: String,
    /// Redacted output tail.
    pub output: String,
    /// When it was recorded (unix ms).
    pub recorded_ms: i64,
}

/// How one host came out of one phase, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostResult {
    /// The host.
    pub host: String,
    /// The phase.
    pub phase: String,
    /// The host finished the phase.
    pub ok: bool,
    /// Why it did not, redacted.
    pub error: Option<String>,
    /// When it was recorded (unix ms).
    pub recorded_ms: i64,
}

/// A host's pinned SSH host key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PinnedKey {
    /// Key algorithm ("ssh-ed25519").
    pub algorithm: String,
    /// Fingerprint as OpenSSH prints it ("SHA256:…").
    pub fingerprint: String,
    /// The address the key was first seen at.
    pub address: String,
    /// When the key was first pinned (unix ms).
    pub first_seen_ms: i64,
    /// When the pin was last deliberately replaced (unix ms).
    pub replaced_ms: Option<i64>,
}
