//! The wire between the engine and the agent.
//!
//! One SSH exec per host per phase: the engine writes one [`Plan`] as a JSON line on the
//! agent's stdin, followed by the raw bytes of every blob the plan's header announces for
//! stdin (the others the agent fetches over HTTP from the engine's blob server), and the
//! agent answers with [`Event`]s, one JSON object per line on stdout. Templates are
//! rendered on the engine side, so a plan carries final file contents and never a template.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::facts::Facts;

/// Bumped whenever a plan or event changes shape; the agent refuses other versions.
pub const PROTOCOL_VERSION: u32 = 5;

/// Where blobs (bundle files) live on a host, named by their sha256.
pub const DEFAULT_STORE_DIR: &str = "/var/lib/kubegrid/store";

/// Where the agent keeps its own state (unit restart stamps, file backups).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kubegrid/state";

/// One phase's work for one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The phase this plan belongs to ("os-prepare"); echoed in logs only.
    pub phase: String,
    /// Dry run: report what would change, change nothing (blobs are not sent either).
    #[serde(default)]
    pub check_mode: bool,
    /// Content-addressed blob store; [`DEFAULT_STORE_DIR`] when empty.
    #[serde(default)]
    pub store_dir: Option<PathBuf>,
    /// Agent state directory; [`DEFAULT_STATE_DIR`] when empty.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Blobs the tasks need in the store, received in this order before the first task:
    /// fetched from their `url`, or read from stdin, where their bytes follow the plan line.
    #[serde(default)]
    pub blobs: Vec<BlobHeader>,
    /// Tasks, run in order; the first failure stops the plan, except for the tasks marked
    /// [`Task::always`] after it.
    pub tasks: Vec<Task>,
}

/// Announces one blob the plan needs. Until it is whole and verified it lives in the
/// store's partial directory, so a transfer cut part-way resumes where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlobHeader {
    /// Lower-case hex sha256 of the bytes; the agent verifies it before storing.
    pub sha256: String,
    /// Exact byte count.
    pub size: u64,
    /// Where to fetch it (`http://…/blobs/<token>/<sha256>`, Range requests resume it);
    /// None: its bytes follow the plan on stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Stdin blobs only: the host's partial file already holds the bytes before this offset
    /// (its facts said so), and only the rest, `size - offset` bytes, follows on stdin.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
}

impl BlobHeader {
    /// A blob whose bytes follow on stdin, whole.
    pub fn stdin(sha256: impl Into<String>, size: u64) -> Self {
        Self {
            sha256: sha256.into(),
            size,
            url: None,
            offset: 0,
        }
    }
}

/// One named, typed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Task {
    /// Human name, unique within the plan ("write containerd config").
    pub name: String,
    /// What to do.
    pub action: Action,
    /// Runs even after an earlier task of the plan failed (a cleanup that always runs, such
    /// as removing a file that holds secrets); the plan still reports the earlier failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub always: bool,
}

/// The modules. Each is idempotent and reports changed or unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "module")]
pub enum Action {
    /// Report [`Facts`] (emitted as an [`Event::Facts`]); never changes anything.
    Facts(FactsArgs),
    /// A file's content, mode and owner, written atomically.
    File(FileArgs),
    /// Install packages from blobs in the store (.deb via dpkg, .rpm via rpm).
    Packages(PackagesArgs),
    /// A systemd unit: optional unit file, enabled, running, restarted when inputs change.
    SystemdUnit(UnitArgs),
    /// Kernel parameters, applied now and persisted in a sysctl.d file.
    Sysctl(SysctlArgs),
    /// Kernel modules, loaded now and persisted in a modules-load.d file.
    KernelModules(ModulesArgs),
    /// Swap off now, and swap lines commented out of fstab.
    SwapOff(SwapOffArgs),
    /// A command, guarded so that re-runs skip it.
    Command(CommandArgs),
    /// A read-only check that passes or fails (never "changed").
    Check(CheckArgs),
    /// An executable from a blob in the store, installed at a path (kubeadm, kubelet, etcd).
    Binary(BinaryArgs),
    /// A tar.gz blob from the store, unpacked into a directory (the CNI plugins).
    Archive(ArchiveArgs),
    /// The certificates in a PEM file or a kubeconfig replaced, every other byte of a PEM
    /// file (a private key) kept.
    Certificates(CertificatesArgs),
}

/// New certificates for a file on the host: renewal and CA rotation rewrite certificates,
/// never private keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificatesArgs {
    /// Absolute path of a PEM file or a kubeconfig (`kind: Config`).
    pub path: PathBuf,
    /// PEM file: replaces the CERTIFICATE blocks (all of them, at the place of the first)
    /// keeping every other block (a key in kubelet-client-current.pem) byte for byte.
    /// Kubeconfig: every user's client-certificate-data := base64(certificate); a user whose
    /// `client-certificate` names a file gets that file rewritten as a PEM file instead.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Kubeconfig only: every cluster's certificate-authority-data := base64(ca).
    #[serde(default)]
    pub ca: Option<String>,
}

/// An executable installed from the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BinaryArgs {
    /// Absolute destination path, e.g. /usr/bin/kubeadm.
    pub path: PathBuf,
    /// sha256 of the blob; a file already at `path` with this sha256 and mode is unchanged.
    pub sha256: String,
    /// Permission bits, e.g. 0o755.
    pub mode: u32,
}

/// A tar.gz archive unpacked from the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchiveArgs {
    /// sha256 of the .tar.gz blob.
    pub sha256: String,
    /// Directory to unpack into (created when missing), e.g. /opt/cni/bin.
    pub dest: PathBuf,
}

/// Extra things to probe while gathering facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FactsArgs {
    /// Kernel modules whose availability to report (loaded, built in, loadable, missing).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Packages whose installed version to report (dpkg or rpm).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Paths whose existence to report (conflicting runtimes' binaries, sockets).
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Mount points whose free space to report (the filesystem holding each path).
    #[serde(default)]
    pub disks: Vec<PathBuf>,
    /// `ip:port` addresses to try a TCP connection to (is a virtual IP already taken?); each
    /// is reported as [`crate::facts::Facts::tcp_probes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_probes: Vec<String>,
    /// Executables whose version to report, each run with `--version` (see
    /// [`crate::facts::Facts::versions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<PathBuf>,
    /// Certificate files and directories to read (see
    /// [`crate::facts::Facts::certificates`]): a named file is read whatever its name; a
    /// directory is walked (at most 3 levels down) for `*.crt`, `*.pem` and `*.conf` files.
    /// Missing paths are left out of the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<PathBuf>,
}

/// A whole file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileArgs {
    /// Absolute path.
    pub path: PathBuf,
    /// Full content (UTF-8 text; binary payloads travel as blobs and packages).
    pub content: String,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
    /// Owner user name.
    #[serde(default = "root")]
    pub owner: String,
    /// Owner group name.
    #[serde(default = "root")]
    pub group: String,
    /// Keep the previous version under the agent state dir before replacing it.
    #[serde(default = "yes")]
    pub backup: bool,
}

/// Packages, all installed in one transaction so their dependencies order themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackagesArgs {
    /// The packages.
    pub packages: Vec<PackageRef>,
}

/// A package file in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageRef {
    /// Package name ("containerd").
    pub name: String,
    /// Exact version the file carries ("1.6.20~ds1-1+b1"); installed equal means unchanged.
    pub version: String,
    /// sha256 of the file; its bytes are at `<store>/<sha256>`.
    pub sha256: String,
    /// The file's format.
    pub format: PackageFormat,
}

/// Package file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageFormat {
    /// Debian package, installed with dpkg.
    Deb,
    /// RPM package, installed with rpm.
    Rpm,
}

/// A systemd unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitArgs {
    /// Unit name ("containerd.service").
    pub name: String,
    /// Unit file content for /etc/systemd/system/<name>; None keeps the packaged unit.
    #[serde(default)]
    pub content: Option<String>,
    /// Enabled at boot.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Running now.
    #[serde(default = "yes")]
    pub running: bool,
    /// Files the service reads; when their content (or the unit's) differs from what the
    /// service was last (re)started with, it is restarted. Kept as a stamp on the host, so a
    /// run killed between writing a config and restarting still restarts next time.
    #[serde(default)]
    pub watch: Vec<PathBuf>,
    /// Restart a running service whose inputs changed. False only starts a stopped one and
    /// leaves a due restart (and its stamp) to a later task, such as a phase that restarts
    /// the members of a quorum one at a time.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub restart: bool,
}

/// sysctl keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SysctlArgs {
    /// Persistent file, e.g. /etc/sysctl.d/99-kubegrid.conf.
    pub file: PathBuf,
    /// Rendered content of that file.
    pub content: String,
    /// Keys and values to apply now.
    pub values: BTreeMap<String, String>,
}

/// Kernel modules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModulesArgs {
    /// Persistent file, e.g. /etc/modules-load.d/kubegrid.conf.
    pub file: PathBuf,
    /// Rendered content of that file.
    pub content: String,
    /// Modules to have now. A module built into the kernel counts as loaded.
    pub modules: Vec<String>,
}

/// Swap off; no arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwapOffArgs {}

/// A command with guards.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandArgs {
    /// Program and arguments; no shell.
    pub argv: Vec<String>,
    /// Skip (unchanged) when this path exists.
    #[serde(default)]
    pub creates: Option<PathBuf>,
    /// Skip (unchanged) when this command exits 0.
    #[serde(default)]
    pub unless: Option<Vec<String>>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Secrets (bootstrap tokens, certificate keys) that the command's output may echo; the
    /// agent replaces each with `[redacted]` in every message and output tail it reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// When not empty, the command runs only while these files' content differs from what
    /// it was after the command's last successful run (a stamp in the agent state dir; a
    /// missing file counts as such), e.g. rebuild the initramfs when a modprobe.d file
    /// changed. A run killed before it finished leaves the old stamp, so it runs again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<PathBuf>,
}

/// A check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckArgs {
    /// What to check.
    pub check: CheckKind,
}

/// The checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum CheckKind {
    /// `systemctl is-active` says active.
    ServiceActive {
        /// Unit name.
        unit: String,
    },
    /// containerd answers on its socket (a version request round trip).
    ContainerdSocket {
        /// Socket path, e.g. /run/containerd/containerd.sock.
        socket: PathBuf,
    },
    /// A container runs from a rootfs tarball blob and prints what is expected.
    ContainerRuns {
        /// containerd socket.
        socket: PathBuf,
        /// containerd runtime type, e.g. io.containerd.runc.v2.
        runtime: String,
        /// The OCI runtime the runc shim runs instead of runc (`ctr run --runc-binary`), e.g.
        /// gVisor's runsc wrapper; None: runc.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary: Option<String>,
        /// sha256 of a rootfs .tar in the store.
        rootfs_sha256: String,
        /// Command to run inside.
        argv: Vec<String>,
        /// Text stdout must contain.
        expect: String,
    },
    /// A command exits 0 and, when `expect` is set, its stdout contains it (etcd health).
    CommandSucceeds {
        /// Program and arguments; no shell.
        argv: Vec<String>,
        /// Extra environment.
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Text stdout must contain.
        #[serde(default)]
        expect: Option<String>,
    },
    /// `nvidia-smi -L` answers and lists exactly `gpus` GPUs.
    NvidiaSmiGpus {
        /// NVIDIA GPUs on the PCI bus (the facts' count).
        gpus: u32,
    },
    /// Every GPU's fabric state in `nvidia-smi -q` is `Completed` (NVSwitch systems, where
    /// fabric manager trains the NVLink fabric before CUDA can use a GPU).
    GpuFabricCompleted {},
    /// The kernel log of the current boot has no `NVRM: Xid` line.
    NoXidErrors {},
    /// A container run by containerd with the nvidia runtime binary as its runc, and
    /// `NVIDIA_VISIBLE_DEVICES=all`, sees exactly `gpus` GPU device nodes (/dev/nvidia<N>).
    GpuContainer {
        /// containerd socket.
        socket: PathBuf,
        /// The binary the containerd `nvidia` handler runs instead of runc
        /// (/usr/bin/nvidia-container-runtime).
        runtime_binary: PathBuf,
        /// sha256 of the test rootfs .tar in the store.
        rootfs_sha256: String,
        /// NVIDIA GPUs on the PCI bus (the facts' count).
        gpus: u32,
    },
}

/// What the agent writes on stdout, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    tag = "event"
)]
pub enum Event {
    /// First line of every run.
    Hello {
        /// [`PROTOCOL_VERSION`] of this agent.
        protocol: u32,
        /// Agent crate version.
        version: String,
    },
    /// A blob transfer began.
    BlobStarted {
        /// Its sha256.
        sha256: String,
        /// Its size.
        size: u64,
        /// Bytes an earlier, cut transfer left in the partial file; the transfer goes on
        /// from there.
        have: u64,
    },
    /// A blob transfer goes on; sent about once a second at most.
    BlobProgress {
        /// Its sha256.
        sha256: String,
        /// Bytes the partial file holds now.
        received: u64,
        /// The blob's size.
        size: u64,
    },
    /// A fetch failed part-way (connect, read, timeout, server error) and is tried again
    /// from the bytes received so far.
    BlobRetry {
        /// Its sha256.
        sha256: String,
        /// Retries so far, this one included.
        attempt: u32,
        /// Bytes the partial file holds.
        received: u64,
        /// What went wrong.
        error: String,
    },
    /// A blob was verified and stored.
    BlobStored {
        /// Its sha256.
        sha256: String,
        /// Its size.
        #[serde(default)]
        size: u64,
        /// The byte the last request (or the stdin stream) started at: above 0 when the
        /// transfer resumed from bytes an earlier attempt, in this run or an earlier one,
        /// had kept.
        #[serde(default)]
        resumed_from: u64,
        /// Fetch retries it took.
        #[serde(default)]
        retries: u32,
        /// Wall time of the transfer, verification included.
        #[serde(default)]
        seconds: f64,
    },
    /// A task began.
    TaskStarted {
        /// Index in the plan.
        index: usize,
        /// Task name.
        name: String,
    },
    /// Facts gathered by a facts task.
    Facts {
        /// Index of the facts task.
        index: usize,
        /// The facts.
        facts: Box<Facts>,
    },
    /// A task ended.
    TaskFinished {
        /// Index in the plan.
        index: usize,
        /// Task name.
        name: String,
        /// Outcome.
        status: TaskStatus,
        /// Wall time.
        duration_ms: u64,
        /// One line saying what changed or would change ("mode 0600 -> 0644"), or why it failed.
        message: String,
        /// Tail of the output of commands the task ran (stdout and stderr, at most 4 KiB).
        #[serde(default)]
        output: String,
    },
    /// The plan is done (also after a failure).
    PlanFinished {
        /// No task failed.
        ok: bool,
        /// Tasks that changed (or would change, in check mode).
        changed: usize,
    },
    /// The plan could not run at all (bad plan, blob checksum mismatch, I/O on stdin).
    Fatal {
        /// Why.
        message: String,
    },
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// It changed the host (or would, in check mode).
    Changed,
    /// The host already matched.
    Unchanged,
    /// It failed; the plan stops.
    Failed,
}

// File contents can hold join secrets and keys, and `redact` holds the secrets themselves:
// Debug output (logs, panic messages) shows their size only.
impl std::fmt::Debug for FileArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileArgs")
            .field("path", &self.path)
            .field("content", &format_args!("[{} bytes]", self.content.len()))
            .field("mode", &format_args!("{:o}", self.mode))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("backup", &self.backup)
            .finish()
    }
}

impl std::fmt::Debug for CommandArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandArgs")
            .field("argv", &self.argv)
            .field("creates", &self.creates)
            .field("unless", &self.unless)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("redact", &format_args!("[{} secret(s)]", self.redact.len()))
            .field("watch", &self.watch)
            .finish()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn root() -> String {
    "root".into()
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}
