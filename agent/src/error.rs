//! The agent's one error type: every failure names the thing, what was seen, what was
//! expected and, where it helps, a hint. The runner turns a task's error into the one-line
//! message of its `TaskFinished` event, and a plan-level error into `Fatal`.

use std::{io, path::PathBuf};

/// Result with the agent's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file or directory failed.
    #[error("failed to read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing, renaming, syncing or changing the metadata of a file failed.
    #[error("failed to {op} {path}: {source}{}", hint_for(source))]
    WriteFile {
        /// What was being done ("write", "rename into place", "chown").
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A plan named a relative host path.
    #[error("path {path} is not absolute; hint: plans carry absolute host paths")]
    RelativePath {
        /// The path as given.
        path: PathBuf,
    },
    /// A user or group name did not resolve.
    #[error(
        "{kind} {name:?} does not exist on this host; hint: create it first or use an existing {kind}"
    )]
    UnknownOwner {
        /// "user" or "group".
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Looking up a user or group failed (NSS error).
    #[error("failed to look up {kind} {name:?}: {source}")]
    LookupOwner {
        /// "user" or "group".
        kind: &'static str,
        /// The name.
        name: String,
        /// Why.
        source: nix::Error,
    },
    /// A program could not be started.
    #[error("failed to run `{program}`: {source}{}", if source.kind() == io::ErrorKind::NotFound { "; hint: is it installed and on PATH?" } else { "" })]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// A program ran and failed.
    #[error("`{command}` {status}{}", hint_suffix(hint))]
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// "exited with code 1", "was killed by a signal", "timed out after 120s".
        status: String,
        /// Tail of its output.
        output: String,
        /// What to try; empty when there is nothing useful to say.
        hint: String,
    },
    /// A command or check was given an empty argv.
    #[error("{what} has an empty argv; hint: the plan must name a program")]
    EmptyArgv {
        /// Which field.
        what: &'static str,
    },
    /// A blob a task needs is not in the store.
    #[error(
        "blob {sha256} ({what}) is not in the store at {path}; hint: the engine sends missing blobs with the plan, so re-run apply"
    )]
    BlobMissing {
        /// Its sha256.
        sha256: String,
        /// What it holds (package name, "rootfs").
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A blob's bytes do not hash to its name.
    #[error(
        "blob {path} ({what}) is corrupt: its bytes hash to {actual}, expected {expected}; hint: delete it and re-run apply to upload it again"
    )]
    BlobCorrupt {
        /// What it holds.
        what: String,
        /// Where it lies.
        path: PathBuf,
        /// The name it should hash to.
        expected: String,
        /// What it hashes to.
        actual: String,
    },
    /// A plan names a blob by something that is not a sha256, so it cannot be a store path.
    #[error(
        "{what} names blob {value:?}, which is not a lower-case hex sha256 (64 characters); hint: the engine must send sha256 names from the bundle manifest"
    )]
    InvalidBlobName {
        /// The task's subject ("binary /usr/bin/kubeadm").
        what: String,
        /// The name as given.
        value: String,
    },
    /// An archive holds a member that would land outside its destination.
    #[error(
        "archive {sha256} holds member {member:?}, which is absolute or climbs out with `..`; nothing was unpacked into {dest}; hint: rebuild the archive with relative member names"
    )]
    UnsafeArchiveMember {
        /// The archive blob.
        sha256: String,
        /// The offending member name, as `tar -t` lists it.
        member: String,
        /// Where it was to be unpacked.
        dest: PathBuf,
    },
    /// A failure whose text held a secret the plan asked to redact; the secret is blanked.
    #[error("{message}")]
    Redacted {
        /// The original message with every secret replaced by `[redacted]`.
        message: String,
        /// The original output tail, redacted alike.
        output: String,
    },
    /// After installing, a package is not at the version its file carries.
    #[error("after installing, {manager} reports {name} at {}, expected {expected}; hint: the bundle's manifest and the package file disagree", found.as_deref().unwrap_or("not installed"))]
    PackageVersion {
        /// dpkg or rpm.
        manager: &'static str,
        /// Package name.
        name: String,
        /// The version the plan named.
        expected: String,
        /// What the package database says.
        found: Option<String>,
        /// Tail of the install output.
        output: String,
    },
    /// A package format whose tool this host lacks.
    #[error(
        "cannot install {format} packages ({names}): `{tool}` is not on this host; hint: the bundle must match the host's OS family"
    )]
    NoPackageTool {
        /// "deb" or "rpm".
        format: &'static str,
        /// The packages.
        names: String,
        /// The missing tool.
        tool: &'static str,
    },
    /// A kernel module is neither loaded, built in nor loadable.
    #[error(
        "kernel module {name} is not loaded, not built into kernel {kernel} and has no file under /lib/modules/{kernel}; hint: install the kernel's modules package or use a kernel with {name} built in"
    )]
    ModuleMissing {
        /// Module name.
        name: String,
        /// Kernel release.
        kernel: String,
    },
    /// A sysctl key has no file under /proc/sys.
    #[error(
        "sysctl {key} does not exist ({path} is missing); hint: load the module that provides it first (br_netfilter for net.bridge.*)"
    )]
    SysctlMissing {
        /// The key.
        key: String,
        /// The /proc/sys file.
        path: PathBuf,
    },
    /// A sysctl did not take the value written.
    #[error(
        "sysctl {key} reads {seen:?} after writing {expected:?}; hint: the kernel rejected or clamped the value"
    )]
    SysctlNotApplied {
        /// The key.
        key: String,
        /// Value read back.
        seen: String,
        /// Value written.
        expected: String,
    },
    /// Swap was still active after `swapoff -a`.
    #[error(
        "swap still active after swapoff -a: {devices}; hint: a swap device may be busy or outside this host's mount namespace"
    )]
    SwapStillActive {
        /// The devices /proc/swaps lists.
        devices: String,
    },
    /// A check saw something other than what it expects.
    #[error("{check}: saw {seen}, expected {expected}{}", hint_suffix(hint))]
    CheckFailed {
        /// The check, with its subject ("service containerd.service").
        check: String,
        /// What was seen (one line).
        seen: String,
        /// What was expected.
        expected: String,
        /// What to try.
        hint: String,
        /// Tail of the output of what the check ran.
        output: String,
    },
    /// A certificates task was pointed at a file that does not exist.
    #[error(
        "certificate file {path}: no such file; hint: renewal rewrites existing files only, read the host's certificates again"
    )]
    CertificateFileMissing {
        /// The file.
        path: PathBuf,
    },
    /// A certificates task cannot update a file as asked.
    #[error("cannot update the certificates in {path}: {detail}")]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected; never file content.
        detail: String,
    },
    /// A certificates task was given something other than PEM certificates.
    #[error(
        "the {field} given for {path} {detail}; hint: pass PEM CERTIFICATE blocks only, never a key"
    )]
    CertificateInput {
        /// The file the task was for.
        path: PathBuf,
        /// "certificate" or "ca".
        field: &'static str,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// Stdin could not be read.
    #[error("failed to read the plan from stdin: {source}")]
    ReadPlan {
        /// Why.
        source: io::Error,
    },
    /// Stdin ended before the plan line.
    #[error("stdin ended before a plan line; hint: the engine writes one JSON plan line first")]
    NoPlan,
    /// The plan line is not a valid plan.
    #[error("the plan is not valid: {source}")]
    ParsePlan {
        /// Why.
        source: serde_json::Error,
    },
    /// The plan speaks another protocol version.
    #[error(
        "plan protocol {found}, this agent speaks {expected}; hint: the engine must upload its own kubegrid-agent build"
    )]
    ProtocolMismatch {
        /// The plan's version (0 when absent).
        found: u64,
        /// This agent's version.
        expected: u32,
    },
    /// A blob header does not name a sha256.
    #[error("blob header {value:?} is not a lower-case hex sha256 (64 characters)")]
    BadBlobName {
        /// The header's sha256 field.
        value: String,
    },
    /// Stdin ended or failed while reading a blob.
    #[error("failed to read blob {sha256} from stdin after {received} of {size} bytes: {source}")]
    ReadBlob {
        /// The blob.
        sha256: String,
        /// Bytes read.
        received: u64,
        /// Bytes announced.
        size: u64,
        /// Why.
        source: io::Error,
    },
    /// A received blob's bytes do not hash to its announced sha256.
    #[error(
        "blob {expected} from {from} hashes to {actual}, expected {expected}; the partial file was deleted and nothing was stored; hint: re-run apply to transfer it afresh, and if it repeats check the bundle file against its manifest (kubegrid bundle verify)"
    )]
    BlobChecksum {
        /// Where the bytes came from ("stdin", a URL).
        from: String,
        /// Announced.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// Another agent is receiving the same blob into the same partial file.
    #[error(
        "partial file {path} is locked by another kubegrid-agent receiving the same blob; hint: wait for it to finish"
    )]
    PartialBusy {
        /// The partial file.
        path: PathBuf,
    },
    /// The engine resumes a stdin blob past what the partial file holds.
    #[error(
        "the engine resumes blob {sha256} at byte {offset}, but the partial file {path} holds {have} bytes; hint: re-run apply, its facts report the partial file afresh"
    )]
    PartialShort {
        /// The blob.
        sha256: String,
        /// The partial file.
        path: PathBuf,
        /// Bytes it holds.
        have: u64,
        /// Where the engine's stream starts.
        offset: u64,
    },
    /// The blob server refused a fetch in a way retrying cannot fix (404, 403, 416, …).
    #[error("fetching blob {sha256} from {url}: {problem}; hint: {hint}")]
    FetchRefused {
        /// The blob.
        sha256: String,
        /// Where from.
        url: String,
        /// What the server answered, or what was wrong with its answer.
        problem: String,
        /// What to try.
        hint: String,
    },
    /// Fetching a blob made no progress until the deadline.
    #[error(
        "gave up fetching blob {sha256} from {url} after {attempts} attempt(s): no byte arrived for {stalled_s} s; {received} of {size} bytes are kept in the partial file for the next run; last error: {last}; hint: check that this host reaches the engine's address (a firewall, a cut link), then re-run apply to resume"
    )]
    FetchGaveUp {
        /// The blob.
        sha256: String,
        /// Where from.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Seconds without progress.
        stalled_s: u64,
        /// Bytes kept.
        received: u64,
        /// The blob's size.
        size: u64,
        /// The last failure.
        last: String,
    },
    /// Another agent holds the state directory's lock.
    #[error(
        "another kubegrid-agent is running on this host (it holds {path}); hint: wait for it to finish"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// A task panicked: a bug in the agent, reported instead of dying without a word.
    #[error(
        "the agent panicked running this task: {what}; hint: this is a kubegrid-agent bug, please report it"
    )]
    Panicked {
        /// The panic message.
        what: String,
    },
    /// Writing an event to stdout failed (the engine went away).
    #[error("failed to write an event to stdout: {source}")]
    WriteEvent {
        /// Why.
        source: io::Error,
    },
}

impl Error {
    /// Tail of the output of the commands behind this error; empty when none ran.
    pub fn output(&self) -> &str {
        match self {
            Self::CommandFailed { output, .. }
            | Self::PackageVersion { output, .. }
            | Self::CheckFailed { output, .. }
            | Self::Redacted { output, .. } => output,
            _ => "",
        }
    }
}

impl Error {
    /// This error with every secret blanked in what it reports. A command failure keeps its
    /// shape; any other error whose text holds a secret becomes [`Error::Redacted`].
    pub fn redact(self, secrets: &[String]) -> Self {
        use crate::exec::redact;
        if secrets.iter().all(String::is_empty) {
            return self;
        }
        match self {
            Self::CommandFailed {
                command,
                status,
                output,
                hint,
            } => Self::CommandFailed {
                command: redact(&command, secrets),
                status,
                output: redact(&output, secrets),
                hint: redact(&hint, secrets),
            },
            other => {
                let message = other.to_string();
                let clean = redact(&message, secrets);
                let output = redact(other.output(), secrets);
                if clean == message && output == other.output() {
                    other
                } else {
                    Self::Redacted {
                        message: clean,
                        output,
                    }
                }
            }
        }
    }
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; hint: {hint}")
    }
}

fn hint_for(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::ReadOnlyFilesystem => {
            "; hint: the filesystem is read-only here (in a container, /proc/sys and /sys may be)"
        }
        io::ErrorKind::PermissionDenied => {
            "; hint: the agent must run as root (the engine uses sudo for non-root users)"
        }
        io::ErrorKind::StorageFull => "; hint: the disk is full",
        _ => "",
    }
}
