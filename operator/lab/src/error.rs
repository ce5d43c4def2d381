//! The one error type of the lab crate.

use std::path::PathBuf;

/// What kind of failure an [`Error`] is, so front ends can map it to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller asked for something invalid (unknown host, bad subnet).
    Usage,
    /// The machine cannot run a lab as it is (not root, missing tools, address collision).
    Environment,
    /// Hosts did not become ready in time.
    Timeout,
    /// Anything else went wrong while acting.
    Failed,
}

/// Errors from lab operations. Messages are lowercase fragments; the CLI prints the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lab needs root for namespaces, mounts and cgroups.
    #[error(
        "lab commands must run as root (uid 0), but the effective uid is {uid}; hint: re-run with sudo"
    )]
    NotRoot {
        /// The effective uid seen.
        uid: u32,
    },

    /// A program the lab runs is not installed.
    #[error("`{program}` is not installed or not on PATH; hint: apt-get install {package}")]
    MissingTool {
        /// The program looked for.
        program: String,
        /// The Debian package that provides it.
        package: String,
    },

    /// The lab's address range overlaps a route the machine already has.
    #[error(
        "lab subnet {subnet} collides with the existing route `{route}`; hint: pick another range with --subnet"
    )]
    SubnetCollision {
        /// The lab's subnet.
        subnet: String,
        /// The route it overlaps, as `ip route` shows it.
        route: String,
    },

    /// An argument was invalid.
    #[error("{0}")]
    InvalidArgument(String),

    /// A link rate (`--link-rate`, `--rate`) that is not one.
    #[error("`{given}` is not a link rate: {reason}")]
    InvalidRate {
        /// The text given.
        given: String,
        /// What is wrong with it and what was expected.
        reason: String,
    },

    /// A host name that the lab does not know.
    #[error("no lab host named `{name}`; known hosts: {known}")]
    UnknownHost {
        /// The name asked for.
        name: String,
        /// The names the lab has, comma-separated.
        known: String,
    },

    /// An external command failed.
    #[error("failed to run `{command}`: {detail}")]
    RunCommand {
        /// The command line.
        command: String,
        /// Exit status and the tail of its stderr.
        detail: String,
    },

    /// A filesystem operation failed.
    #[error("failed to {op} {}", path.display())]
    Io {
        /// The operation, as a verb phrase ("create directory").
        op: &'static str,
        /// The path acted on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A mount, unmount or signal system call failed.
    #[error("failed to {op} {}", path.display())]
    Sys {
        /// The operation ("mount overlay on").
        op: &'static str,
        /// The path or object acted on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },

    /// The state file exists but cannot be read as lab state.
    #[error("failed to parse lab state {}; hint: remove the lab by hand or fix the file", path.display())]
    ParseState {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// Building the base rootfs failed.
    #[error("failed to build the base rootfs with debootstrap (log: {}):\n{tail}", log.display())]
    BuildBase {
        /// The full build log.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },

    /// Generating SSH keys failed.
    #[error("failed to generate an ssh {what} key")]
    GenerateKey {
        /// Which key ("lab client", "host").
        what: &'static str,
        /// The cause.
        #[source]
        source: ssh_key::Error,
    },

    /// Serialising the generated cluster spec failed.
    #[error("failed to write the cluster spec for group `{group}`")]
    WriteSpec {
        /// The host group (name prefix).
        group: String,
        /// The cause.
        #[source]
        source: serde_yaml::Error,
    },

    /// One or more hosts did not come up.
    #[error(
        "{} of {total} lab hosts did not become ready within {timeout_s}s:{}\nhint: raise --timeout, or read the hosts' console logs (paths in `kubegrid lab list`)",
        late.len(),
        format_late(late)
    )]
    BootTimeout {
        /// Hosts that were late, each with the reason seen last.
        late: Vec<(String, String)>,
        /// How many hosts were waited for.
        total: usize,
        /// The timeout in seconds.
        timeout_s: u64,
    },

    /// Processes of a stopped host did not go away.
    #[error("lab host {host} still has processes {pids:?} 10s after it was stopped")]
    HostLingers {
        /// The host.
        host: String,
        /// The pids seen in its cgroups.
        pids: Vec<u32>,
    },

    /// A host's systemd-nspawn process exited while booting.
    #[error("lab host {host} exited while booting; last console lines:\n{console}")]
    HostExited {
        /// The host.
        host: String,
        /// The tail of its console log.
        console: String,
    },
}

fn format_late(late: &[(String, String)]) -> String {
    late.iter()
        .map(|(host, why)| format!("\n  - {host}: {why}"))
        .collect()
}

impl Error {
    /// The category of this error, for exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotRoot { .. } | Error::MissingTool { .. } | Error::SubnetCollision { .. } => {
                ErrorKind::Environment
            }
            Error::InvalidArgument(_) | Error::InvalidRate { .. } | Error::UnknownHost { .. } => {
                ErrorKind::Usage
            }
            Error::BootTimeout { .. } => ErrorKind::Timeout,
            _ => ErrorKind::Failed,
        }
    }

    /// Shorthand for an [`Error::Io`].
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// Shorthand for an [`Error::Sys`].
    pub(crate) fn sys(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(nix::Error) -> Error {
        let path = path.into();
        move |source| Error::Sys { op, path, source }
    }
}

/// Result with the lab's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
