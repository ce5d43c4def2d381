//! Playbooks: ordered phases of typed tasks, in a deliberately small YAML language (no loops,
//! no expressions; `when:` takes typed predicates only).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::kube_modules::{ArchiveSpec, BinariesSpec, CniManifestSpec, PkiFilesSpec};
use crate::{
    context::{ClusterContext, HostContext},
    error::{Error, Result},
    predicate::{Role, When},
    reboot::RebootSpec,
    templates,
};

/// Playbooks embedded in the binary, by name.
pub const PLAYBOOKS: &[(&str, &str)] = &[
    ("install", include_str!("../../../playbooks/install.yaml")),
    ("reset", include_str!("../../../playbooks/reset.yaml")),
    ("upgrade", include_str!("../../../playbooks/upgrade.yaml")),
    ("certs", include_str!("../../../playbooks/certs.yaml")),
];

/// One operation's playbook. Parse it with [`Playbook::parse`] (or `builtin`, `load`): its
/// enums are YAML single-key maps, which a bare `serde_yaml::from_str` does not accept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Operation name ("install").
    pub name: String,
    /// Phases, run in order; each is a barrier across hosts.
    pub phases: Vec<Phase>,
}

/// A set of tasks every selected host finishes before any host starts the next phase.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Phase name ("os-prepare"); unique in the playbook.
    pub name: String,
    /// Which hosts run it.
    pub hosts: HostSelector,
    /// How many hosts run it at once; None means all (bounded only by the engine's --parallel).
    #[serde(default)]
    pub batch: Option<Batch>,
    /// The tasks, in order; a `reboot:` phase has none.
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
    /// A controlled reboot the engine carries out instead of tasks (see [`RebootSpec`]).
    #[serde(default)]
    pub reboot: Option<RebootSpec>,
}

/// Which hosts a phase runs on: `all`, or `{roles: [...]}` for hosts with any of the roles.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HostSelector {
    /// Every host.
    All,
    /// Hosts having at least one of these roles.
    Roles(Vec<Role>),
    /// The control-plane host that runs (or ran) `kubeadm init`.
    InitNode,
    /// Hosts having at least one of these roles, except the init node: the ones that join.
    Joining(Vec<Role>),
    /// The host that runs the bundle registry; none when the spec has no bundle registry.
    BundleRegistry,
    /// GPU Nodes ([`HostContext::gpu`]).
    Gpu,
}

impl HostSelector {
    /// Whether the host is selected.
    pub fn selects(&self, cluster: &ClusterContext, host: &HostContext) -> bool {
        let any_role = |roles: &[Role]| roles.iter().any(|r| host.has_role(r.as_str()));
        let is_init = cluster.is_init_node(host);
        match self {
            HostSelector::All => true,
            HostSelector::Roles(roles) => any_role(roles),
            HostSelector::InitNode => is_init,
            HostSelector::Joining(roles) => any_role(roles) && !is_init,
            HostSelector::BundleRegistry => cluster.is_bundle_registry_host(host),
            HostSelector::Gpu => host.gpu,
        }
    }
}

/// A phase's batch size: a host count (`batch: 1`) or a share of the selected hosts
/// (`batch: "20%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BatchRaw")]
pub enum Batch {
    /// At most this many hosts at once (at least 1).
    Hosts(u32),
    /// At most this percentage of the selected hosts at once (1..=100), rounded down but at
    /// least one host.
    Percent(u8),
}

impl Batch {
    /// Hosts per batch when `selected` hosts run the phase.
    pub fn size(self, selected: usize) -> usize {
        let size = match self {
            Batch::Hosts(n) => n as usize,
            Batch::Percent(p) => selected * p as usize / 100,
        };
        size.clamp(1, selected.max(1))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BatchRaw {
    Count(u32),
    Text(String),
}

impl TryFrom<BatchRaw> for Batch {
    type Error = String;

    fn try_from(raw: BatchRaw) -> Result<Self, String> {
        let bad = |what: &str| {
            format!("batch `{what}` is not a host count >= 1 or a percentage like \"20%\"")
        };
        match raw {
            BatchRaw::Count(0) => Err(bad("0")),
            BatchRaw::Count(n) => Ok(Batch::Hosts(n)),
            BatchRaw::Text(text) => match text.strip_suffix('%').map(str::parse::<u8>) {
                Some(Ok(p)) if (1..=100).contains(&p) => Ok(Batch::Percent(p)),
                _ => Err(bad(&text)),
            },
        }
    }
}

/// A task as written: a name, an optional condition and exactly one module key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawTask")]
pub struct TaskSpec {
    /// Task name; unique within its phase.
    pub name: String,
    /// Run only when this holds; tasks whose condition fails are left out of the plan.
    pub when: Option<When>,
    /// What to do.
    pub module: Module,
    /// Runs even when an earlier task of the phase failed on the host (`always: true`): a
    /// cleanup, such as removing a file that holds secrets.
    pub always: bool,
}

/// The modules a playbook can use. Templates are named by their path under templates/.
#[derive(Debug, Clone, PartialEq)]
pub enum Module {
    /// A file rendered from a template.
    File(FileSpec),
    /// Packages from the offline bundle, by name.
    Packages(PackagesSpec),
    /// A systemd unit's state.
    SystemdUnit(UnitSpec),
    /// sysctl keys from a rendered sysctl.d file.
    Sysctl(TemplatedFileSpec),
    /// Kernel modules from a rendered modules-load.d file.
    KernelModules(TemplatedFileSpec),
    /// Swap off.
    SwapOff,
    /// A guarded command.
    Command(CommandSpec),
    /// A read-only check.
    Check(CheckSpec),
    /// One certs.d `hosts.toml` per registry mirror in the spec. Like `binaries` and
    /// `pki_files`, it expands into several tasks so the language needs no loops.
    RegistryHosts(RegistryHostsSpec),
    /// Executables from the bundle, one task each.
    Binaries(BinariesSpec),
    /// A bundle archive unpacked into a directory.
    Archive(ArchiveSpec),
    /// The certificates and keys kubegrid's PKI issued for this host, one file task each.
    PkiFiles(PkiFilesSpec),
    /// The CNI manifest (rendered, or the user's own) and its `kubectl apply`.
    CniManifest(CniManifestSpec),
    /// RuntimeClasses and the GPU objects (device plugin, DCGM exporter, or the GPU Operator's
    /// values) and their `kubectl apply`.
    ClusterObjects(crate::cluster_objects::ClusterObjectsSpec),
    /// A fresh bootstrap token and re-uploaded control-plane certificates, so hosts can join
    /// a cluster initialised by an earlier operation.
    RefreshJoinSecrets,
    /// NVIDIA's `.run` driver installer from the bundle, run unless its version is there.
    NvidiaRunfile(crate::gpu_host::NvidiaRunfileSpec),
}

/// `file:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute path on the host.
    pub path: PathBuf,
    /// Template name.
    pub template: String,
    /// Permission bits.
    pub mode: Mode,
    /// Holds secrets: never backed up (a backup would outlive the secret's rotation).
    #[serde(default)]
    pub secret: bool,
    /// Owner; root when absent.
    #[serde(default)]
    pub owner: Option<String>,
    /// Group; root when absent.
    #[serde(default)]
    pub group: Option<String>,
}

/// File permission bits, always read as octal digits ("0644", 0644 or "0o644"): the scalar's
/// text is parsed, so YAML 1.2's integer rules cannot turn 0644 into decimal 644.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Mode(pub u32);

impl TryFrom<String> for Mode {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let digits = text.strip_prefix("0o").unwrap_or(&text);
        match u32::from_str_radix(digits, 8) {
            Ok(bits) if bits <= 0o7777 && !digits.is_empty() => Ok(Mode(bits)),
            _ => Err(format!(
                "mode `{text}` is not octal permission bits like \"0644\""
            )),
        }
    }
}

/// `packages:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagesSpec {
    /// Package names the bundle manifest lists; installed in one transaction.
    pub bundle: Vec<String>,
}

/// `systemd_unit:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    /// Unit name ("containerd.service").
    pub name: String,
    /// Template for `/etc/systemd/system/<name>`; absent keeps the packaged unit.
    #[serde(default)]
    pub template: Option<String>,
    /// Enabled at boot.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Running now.
    #[serde(default = "yes")]
    pub running: bool,
    /// Files whose change restarts the unit.
    #[serde(default)]
    pub watch: Vec<PathBuf>,
    /// Restart the running unit when its inputs changed (the default). `false` only starts a
    /// stopped unit and leaves the restart to a later task with the same inputs, e.g. in a
    /// `batch: 1` phase that restarts a quorum's members one at a time.
    #[serde(default = "yes")]
    pub restart: bool,
}

/// `sysctl:` and `kernel_modules:`: a persistent file rendered from a template; what is
/// applied now is read from the rendered lines.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatedFileSpec {
    /// Absolute path of the persistent file.
    pub file: PathBuf,
    /// Template name.
    pub template: String,
}

/// `command:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Program and arguments; no shell.
    pub argv: Vec<String>,
    /// Skip when this path exists.
    #[serde(default)]
    pub creates: Option<PathBuf>,
    /// Skip when this command exits 0.
    #[serde(default)]
    pub unless: Option<Vec<String>>,
    /// The command's output may echo the operation's join secrets (kubeadm init prints the
    /// join command): the agent redacts them.
    #[serde(default)]
    pub redact_join_secrets: bool,
    /// Run only when these files differ from what they were at the command's last successful
    /// run (a stamp the agent keeps), e.g. rebuild the initramfs when a modprobe.d file changed.
    #[serde(default)]
    pub watch: Vec<PathBuf>,
}

/// `check:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// The unit is active.
    ServiceActive {
        /// Unit name.
        unit: String,
    },
    /// containerd answers on its socket.
    ContainerdSocket {
        /// Socket path.
        socket: PathBuf,
    },
    /// A container from the bundle's rootfs for the host's arch runs and prints `expect`.
    ContainerRuns {
        /// containerd socket.
        socket: PathBuf,
        /// containerd runtime type ("io.containerd.runc.v2").
        runtime: String,
        /// The OCI runtime the runc shim runs instead of runc (gVisor's runsc wrapper).
        #[serde(default)]
        binary: Option<String>,
        /// Command run inside.
        argv: Vec<String>,
        /// Text stdout must contain.
        expect: String,
    },
    /// The bundle registry answers its API (`/v2/`) at the address and port other hosts
    /// use, over TLS verified with the registry CA unless it serves plain HTTP; retried while
    /// it starts. Runs `curl` on the host.
    BundleRegistryAnswers {},
    /// A command exits 0 (and its stdout contains `expect`, when given).
    CommandSucceeds {
        /// Program and arguments; no shell.
        argv: Vec<String>,
        /// Text stdout must contain.
        #[serde(default)]
        expect: Option<String>,
    },
    /// `nvidia-smi -L` answers and lists as many GPUs as the facts found on the PCI bus.
    NvidiaSmiGpus {},
    /// Every GPU's fabric state (`nvidia-smi -q`) is `Completed`: fabric manager has trained
    /// the NVLink fabric, so CUDA can use the GPUs.
    GpuFabricCompleted {},
    /// The kernel log of this boot has no `NVRM: Xid` error.
    NoXidErrors {},
    /// A container run through containerd with the nvidia runtime's binary as its runc sees
    /// as many GPUs as the facts found.
    GpuContainer {
        /// containerd socket.
        socket: PathBuf,
        /// The runtime binary the containerd `nvidia` handler names
        /// (/usr/bin/nvidia-container-runtime).
        runtime_binary: PathBuf,
    },
}

/// `registry_hosts:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryHostsSpec {
    /// certs.d directory; each mirror's file is `<dir>/<registry>/hosts.toml`.
    pub dir: PathBuf,
    /// Template name, rendered once per mirror with `mirror` set.
    pub template: String,
    /// Permission bits of each file.
    pub mode: Mode,
}

/// The task as YAML has it: every module key optional, checked to be exactly one after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: String,
    #[serde(default)]
    when: Option<When>,
    #[serde(default)]
    always: bool,
    file: Option<FileSpec>,
    packages: Option<PackagesSpec>,
    systemd_unit: Option<UnitSpec>,
    sysctl: Option<TemplatedFileSpec>,
    kernel_modules: Option<TemplatedFileSpec>,
    swap_off: Option<SwapOffSpec>,
    command: Option<CommandSpec>,
    check: Option<CheckSpec>,
    registry_hosts: Option<RegistryHostsSpec>,
    binaries: Option<BinariesSpec>,
    archive: Option<ArchiveSpec>,
    pki_files: Option<PkiFilesSpec>,
    cni_manifest: Option<CniManifestSpec>,
    cluster_objects: Option<crate::cluster_objects::ClusterObjectsSpec>,
    refresh_join_secrets: Option<SwapOffSpec>,
    nvidia_runfile: Option<crate::gpu_host::NvidiaRunfileSpec>,
}

/// `swap_off: {}` and `refresh_join_secrets: {}` take no keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapOffSpec {}

impl TryFrom<RawTask> for TaskSpec {
    type Error = String;

    fn try_from(raw: RawTask) -> Result<Self, String> {
        let modules: Vec<Module> = [
            raw.file.map(Module::File),
            raw.packages.map(Module::Packages),
            raw.systemd_unit.map(Module::SystemdUnit),
            raw.sysctl.map(Module::Sysctl),
            raw.kernel_modules.map(Module::KernelModules),
            raw.swap_off.map(|_| Module::SwapOff),
            raw.command.map(Module::Command),
            raw.check.map(Module::Check),
            raw.registry_hosts.map(Module::RegistryHosts),
            raw.binaries.map(Module::Binaries),
            raw.archive.map(Module::Archive),
            raw.pki_files.map(Module::PkiFiles),
            raw.cni_manifest.map(Module::CniManifest),
            raw.cluster_objects.map(Module::ClusterObjects),
            raw.refresh_join_secrets.map(|_| Module::RefreshJoinSecrets),
            raw.nvidia_runfile.map(Module::NvidiaRunfile),
        ]
        .into_iter()
        .flatten()
        .collect();
        let count = modules.len();
        let Ok::<[Module; 1], _>([module]) = modules.try_into() else {
            return Err(format!(
                "task `{}` has {count} module keys; it needs exactly one of file, packages, systemd_unit, sysctl, kernel_modules, swap_off, command, check, registry_hosts, binaries, archive, pki_files, cni_manifest, cluster_objects, refresh_join_secrets, nvidia_runfile",
                raw.name
            ));
        };
        Ok(TaskSpec {
            name: raw.name,
            when: raw.when,
            module,
            always: raw.always,
        })
    }
}

/// Deserializes playbook YAML. Enums here (`when:`, `hosts:`, `check:`) are written as
/// single-key maps (`{role: worker}`), which plain serde_yaml reads only as `!tags`.
pub(crate) fn from_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, serde_yaml::Error> {
    serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(text))
}

fn yes() -> bool {
    true
}

impl Playbook {
    /// An embedded playbook.
    pub fn builtin(name: &str) -> Result<Playbook> {
        let (_, text) =
            PLAYBOOKS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| Error::UnknownPlaybook {
                    name: name.to_string(),
                    known: PLAYBOOKS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        Playbook::parse(name, text)
    }

    /// `<dir>/<name>.yaml`, for developing playbooks without rebuilding.
    pub fn load(dir: &Path, name: &str) -> Result<Playbook> {
        let path = dir.join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadPlaybook {
            path: path.clone(),
            source,
        })?;
        Playbook::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks playbook text; `label` names it in errors.
    pub fn parse(label: &str, text: &str) -> Result<Playbook> {
        let playbook: Playbook = from_yaml(text).map_err(|source| Error::ParsePlaybook {
            playbook: label.to_string(),
            source,
        })?;
        playbook.check().map_err(|problem| Error::InvalidPlaybook {
            playbook: label.to_string(),
            problem,
        })?;
        Ok(playbook)
    }

    /// The phase with this name.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Rules serde cannot express: unique names, absolute paths, known templates.
    fn check(&self) -> Result<(), String> {
        let mut phases = Vec::new();
        for phase in &self.phases {
            if phases.contains(&&phase.name) {
                return Err(format!("phase `{}` appears twice", phase.name));
            }
            phases.push(&phase.name);
            if let Some(reboot) = &phase.reboot {
                if !phase.tasks.is_empty() {
                    return Err(format!(
                        "phase `{}` has both `reboot` and `tasks`; a reboot phase runs no tasks, so put them in a phase of their own",
                        phase.name
                    ));
                }
                reboot
                    .check()
                    .map_err(|e| format!("phase `{}`: {e}", phase.name))?;
            }
            let mut tasks = Vec::new();
            for task in &phase.tasks {
                let at = format!("phase `{}`, task `{}`", phase.name, task.name);
                if tasks.contains(&&task.name) {
                    return Err(format!("{at}: the name appears twice in the phase"));
                }
                tasks.push(&task.name);
                task.module.check().map_err(|e| format!("{at}: {e}"))?;
            }
        }
        Ok(())
    }
}

impl Module {
    fn check(&self) -> Result<(), String> {
        let absolute = |p: &Path| {
            if p.is_absolute() {
                Ok(())
            } else {
                Err(format!("path `{}` must be absolute", p.display()))
            }
        };
        let known = |t: &str| templates::template(t).map(drop).map_err(|e| e.to_string());
        match self {
            Module::File(f) => absolute(&f.path).and(known(&f.template)),
            Module::Sysctl(f) | Module::KernelModules(f) => {
                absolute(&f.file).and(known(&f.template))
            }
            Module::RegistryHosts(r) => absolute(&r.dir).and(known(&r.template)),
            Module::Packages(p) if p.bundle.is_empty() => Err("`bundle` lists no packages".into()),
            Module::SystemdUnit(u) => {
                u.watch.iter().try_for_each(|p| absolute(p))?;
                u.template.as_deref().map_or(Ok(()), known)
            }
            Module::Command(c) if c.argv.is_empty() => Err("`argv` is empty".into()),
            Module::Command(c) => c.watch.iter().try_for_each(|p| absolute(p)),
            Module::NvidiaRunfile(r) => absolute(&r.dir),
            Module::Check(
                CheckSpec::ContainerRuns { argv, .. } | CheckSpec::CommandSucceeds { argv, .. },
            ) if argv.is_empty() => Err("`argv` is empty".into()),
            Module::Binaries(b) if b.bundle.is_empty() => Err("`bundle` lists no binaries".into()),
            Module::Binaries(b) if b.prefix.contains('/') => Err(format!(
                "prefix `{}` must be part of a file name, without '/'",
                b.prefix
            )),
            Module::Binaries(b) => absolute(&b.dir),
            Module::Archive(a) => absolute(&a.dest),
            Module::CniManifest(c) => absolute(&c.path).and(known(&c.template)),
            Module::ClusterObjects(c) => absolute(&c.path).and(absolute(&c.gpu_operator_values)),
            _ => Ok(()),
        }
    }
}
