//! The compiler: playbook + cluster + host + bundle → one typed plan per phase.

use std::{collections::BTreeMap, path::PathBuf};

use kubegrid_agent::protocol::{
    Action, BlobHeader, CheckArgs, CheckKind, CommandArgs, FactsArgs, FileArgs, ModulesArgs,
    PROTOCOL_VERSION, PackageFormat, PackageRef, PackagesArgs, Plan, SwapOffArgs, SysctlArgs, Task,
    UnitArgs,
};

use crate::{
    bundle::Bundle,
    context::{ClusterContext, HostContext, OsFamily},
    error::{Error, Result},
    kube_modules,
    kubernetes::KUBERNETES_PATHS,
    playbook::{CheckSpec, Module, Playbook, TaskSpec, TemplatedFileSpec},
    reboot::RebootPlan,
    registry::REGISTRY_CA_CERT,
    templates::render,
};

/// Installed packages that mean another container runtime (or Docker's own containerd build)
/// owns the host; preflight asks the facts phase for their versions.
pub const CONFLICTING_PACKAGES: &[&str] = &[
    "docker-ce",
    "docker.io",
    "containerd.io",
    "moby-engine",
    "moby-containerd",
    "cri-o",
];

/// Paths that mean a runtime was installed outside the package manager, or a unit override
/// would shadow the packaged containerd.service.
pub const CONFLICTING_PATHS: &[&str] = &[
    "/usr/local/bin/containerd",
    "/etc/systemd/system/containerd.service",
    "/usr/bin/dockerd",
    "/var/run/crio/crio.sock",
];

/// Filesystems whose free space preflight checks (containerd's state lives under /var/lib).
pub const PREFLIGHT_DISKS: &[&str] = &["/var/lib"];

/// One phase's compiled work for one host.
#[derive(Debug, Clone, PartialEq)]
pub struct PhasePlan {
    /// Phase name.
    pub name: String,
    /// Tasks, in playbook order; tasks whose `when:` failed are left out.
    pub tasks: Vec<Task>,
    /// sha256 of every bundle file the tasks use, in first-use order without repeats; the host
    /// needs them in its blob store before the plan runs.
    pub blobs: Vec<String>,
    /// A `reboot:` phase whose predicate holds on this host: the engine reboots it (there
    /// are no tasks then).
    pub reboot: Option<RebootPlan>,
}

impl PhasePlan {
    /// The wire plan, announcing the blobs the host's store lacks (none in check mode, where
    /// nothing is sent).
    pub fn to_plan(
        &self,
        bundle: &Bundle,
        host_store: &[String],
        check_mode: bool,
    ) -> Result<Plan> {
        let mut blobs = Vec::new();
        if !check_mode {
            for sha in self.blobs.iter().filter(|s| !host_store.contains(s)) {
                let file = bundle.file(sha).ok_or_else(|| Error::BlobNotInBundle {
                    dir: bundle.dir().to_path_buf(),
                    sha256: sha.clone(),
                })?;
                blobs.push(BlobHeader::stdin(sha.clone(), file.size));
            }
        }
        Ok(Plan {
            protocol: PROTOCOL_VERSION,
            phase: self.name.clone(),
            check_mode,
            store_dir: None,
            state_dir: None,
            blobs,
            tasks: self.tasks.clone(),
        })
    }
}

/// Compiles every phase whose host selector picks `host`, in playbook order. A selected phase
/// is returned even when all its tasks were filtered out, so phase barriers stay aligned.
pub fn compile(
    playbook: &Playbook,
    cluster: &ClusterContext,
    host: &HostContext,
    bundle: &Bundle,
) -> Result<Vec<PhasePlan>> {
    cluster.validate()?;
    let mut phases = Vec::new();
    for phase in playbook
        .phases
        .iter()
        .filter(|p| p.hosts.selects(cluster, host))
    {
        let mut out = PhasePlan {
            name: phase.name.clone(),
            tasks: Vec::new(),
            blobs: Vec::new(),
            reboot: phase
                .reboot
                .as_ref()
                .and_then(|r| r.plan_for(cluster, host)),
        };
        for spec in &phase.tasks {
            if spec.when.as_ref().is_none_or(|w| w.eval(cluster, host)) {
                compile_task(spec, cluster, host, bundle, &mut out)?;
            }
        }
        phases.push(out);
    }
    Ok(phases)
}

fn compile_task(
    spec: &TaskSpec,
    cluster: &ClusterContext,
    host: &HostContext,
    bundle: &Bundle,
    out: &mut PhasePlan,
) -> Result<()> {
    let always = spec.always;
    let mut push = |name: String, action: Action| {
        out.tasks.push(Task {
            name,
            action,
            always,
        })
    };
    let action = match &spec.module {
        Module::File(f) => Action::File(FileArgs {
            path: f.path.clone(),
            content: render(&f.template, cluster, host, None)?,
            mode: f.mode.0,
            owner: f.owner.clone().unwrap_or_else(|| "root".into()),
            group: f.group.clone().unwrap_or_else(|| "root".into()),
            backup: !f.secret,
        }),
        Module::Packages(p) => {
            let format = package_format(host)?;
            let mut packages = Vec::new();
            for name in &p.bundle {
                let line = crate::containerd::pinned_line(cluster, name);
                let file = bundle.package_on_line(name, &host.facts.arch, format, line)?;
                add_blob(&mut out.blobs, &file.sha256);
                packages.push(PackageRef {
                    name: name.clone(),
                    version: file.version.clone().unwrap_or_default(),
                    sha256: file.sha256.clone(),
                    format,
                });
            }
            Action::Packages(PackagesArgs { packages })
        }
        Module::SystemdUnit(u) => Action::SystemdUnit(UnitArgs {
            name: u.name.clone(),
            content: match &u.template {
                Some(t) => Some(render(t, cluster, host, None)?),
                None => None,
            },
            enabled: u.enabled,
            running: u.running,
            watch: u.watch.clone(),
            restart: u.restart,
        }),
        Module::Sysctl(f) => {
            let (content, values) = render_lines(f, cluster, host, sysctl_values)?;
            Action::Sysctl(SysctlArgs {
                file: f.file.clone(),
                content,
                values,
            })
        }
        Module::KernelModules(f) => {
            let (content, modules) = render_lines(f, cluster, host, module_names)?;
            Action::KernelModules(ModulesArgs {
                file: f.file.clone(),
                content,
                modules,
            })
        }
        Module::SwapOff => Action::SwapOff(SwapOffArgs {}),
        Module::Command(c) => Action::Command(CommandArgs {
            argv: c.argv.clone(),
            creates: c.creates.clone(),
            unless: c.unless.clone(),
            env: BTreeMap::new(),
            redact: match (&cluster.kubernetes, c.redact_join_secrets) {
                (Some(k), true) => k.join.redactions(),
                _ => Vec::new(),
            },
            watch: c.watch.clone(),
        }),
        Module::Check(check) => Action::Check(CheckArgs {
            check: match check {
                CheckSpec::ServiceActive { unit } => {
                    CheckKind::ServiceActive { unit: unit.clone() }
                }
                CheckSpec::ContainerdSocket { socket } => CheckKind::ContainerdSocket {
                    socket: socket.clone(),
                },
                CheckSpec::BundleRegistryAnswers {} => registry_answers(&spec.name, cluster)?,
                CheckSpec::CommandSucceeds { argv, expect } => CheckKind::CommandSucceeds {
                    argv: argv.clone(),
                    env: BTreeMap::new(),
                    expect: expect.clone(),
                },
                CheckSpec::NvidiaSmiGpus {} => CheckKind::NvidiaSmiGpus {
                    gpus: crate::gpu_host::pci_gpus(host),
                },
                CheckSpec::GpuFabricCompleted {} => CheckKind::GpuFabricCompleted {},
                CheckSpec::NoXidErrors {} => CheckKind::NoXidErrors {},
                CheckSpec::GpuContainer {
                    socket,
                    runtime_binary,
                } => {
                    let rootfs = bundle.rootfs(&host.facts.arch)?;
                    add_blob(&mut out.blobs, &rootfs.sha256);
                    CheckKind::GpuContainer {
                        socket: socket.clone(),
                        runtime_binary: runtime_binary.clone(),
                        rootfs_sha256: rootfs.sha256.clone(),
                        gpus: crate::gpu_host::pci_gpus(host),
                    }
                }
                CheckSpec::ContainerRuns {
                    socket,
                    runtime,
                    binary,
                    argv,
                    expect,
                } => {
                    let rootfs = bundle.rootfs(&host.facts.arch)?;
                    add_blob(&mut out.blobs, &rootfs.sha256);
                    CheckKind::ContainerRuns {
                        socket: socket.clone(),
                        runtime: runtime.clone(),
                        binary: binary.clone(),
                        rootfs_sha256: rootfs.sha256.clone(),
                        argv: argv.clone(),
                        expect: expect.clone(),
                    }
                }
            },
        }),
        Module::RegistryHosts(r) => {
            for mirror in &cluster.mirrors() {
                let path: PathBuf = r.dir.join(&mirror.registry).join("hosts.toml");
                let content = render(&r.template, cluster, host, Some(mirror))?;
                push(
                    format!("{} ({})", spec.name, mirror.registry),
                    Action::File(FileArgs {
                        path,
                        content,
                        mode: r.mode.0,
                        owner: "root".into(),
                        group: "root".into(),
                        backup: true,
                    }),
                );
            }
            return Ok(());
        }
        Module::Binaries(b) => {
            for (name, action, sha) in kube_modules::binaries(b, &spec.name, cluster, host, bundle)?
            {
                add_blob(&mut out.blobs, &sha);
                out.tasks.push(Task {
                    name,
                    action,
                    always,
                });
            }
            return Ok(());
        }
        Module::Archive(a) => {
            let (action, sha) = kube_modules::archive(a, cluster, host, bundle)?;
            add_blob(&mut out.blobs, &sha);
            action
        }
        Module::PkiFiles(p) => {
            for (name, action) in kube_modules::pki_files(p, &spec.name, host)? {
                push(name, action);
            }
            return Ok(());
        }
        Module::CniManifest(c) => {
            for (name, action) in kube_modules::cni_manifest(c, &spec.name, cluster, host)? {
                push(name, action);
            }
            return Ok(());
        }
        Module::ClusterObjects(c) => {
            for (name, action) in
                crate::cluster_objects::cluster_objects(c, &spec.name, cluster, bundle)?
            {
                push(name, action);
            }
            return Ok(());
        }
        Module::NvidiaRunfile(r) => {
            for (name, action, sha) in
                crate::gpu_host::nvidia_runfile(r, &spec.name, cluster, host, bundle)?
            {
                if let Some(sha) = sha {
                    add_blob(&mut out.blobs, &sha);
                }
                push(name, action);
            }
            return Ok(());
        }
        Module::RefreshJoinSecrets => {
            for (name, action) in kube_modules::refresh_join_secrets(&spec.name, cluster)? {
                push(name, action);
            }
            return Ok(());
        }
    };
    push(spec.name.clone(), action);
    Ok(())
}

/// `curl` of the bundle registry's `/v2/` as other hosts reach it: the host's address (so
/// the certificate's IP SAN is what is checked) and, with TLS, the registry CA only. curl
/// retries while the service starts; the registry answers `{}` without credentials.
fn registry_answers(task: &str, cluster: &ClusterContext) -> Result<CheckKind> {
    let registry = cluster
        .bundle_registry
        .as_ref()
        .ok_or_else(|| Error::InvalidContext {
            problem: format!(
                "task `{task}` checks the bundle registry, but the spec has none (spec.bundle.registry)"
            ),
        })?;
    let mut argv: Vec<String> = [
        "curl",
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "5",
        "--retry",
        "15",
        "--retry-delay",
        "1",
        "--retry-connrefused",
    ]
    .map(String::from)
    .to_vec();
    if !registry.plain_http {
        argv.extend(["--cacert".to_string(), REGISTRY_CA_CERT.to_string()]);
    }
    argv.push(format!("{}/v2/", registry.endpoint()));
    Ok(CheckKind::CommandSucceeds {
        argv,
        env: BTreeMap::new(),
        expect: Some("{}".into()),
    })
}

fn add_blob(blobs: &mut Vec<String>, sha: &str) {
    if !blobs.iter().any(|b| b == sha) {
        blobs.push(sha.to_string());
    }
}

fn package_format(host: &HostContext) -> Result<PackageFormat> {
    match host.os_family() {
        Some(OsFamily::Debian) => Ok(PackageFormat::Deb),
        Some(OsFamily::Rhel) => Ok(PackageFormat::Rpm),
        None => Err(Error::UnsupportedOs {
            host: host.name.clone(),
            os: std::iter::once(host.facts.os_id.as_str())
                .chain(host.facts.os_like.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

/// Renders a sysctl.d or modules-load.d template and reads what to apply now from its lines.
fn render_lines<T>(
    spec: &TemplatedFileSpec,
    cluster: &ClusterContext,
    host: &HostContext,
    read: fn(&str) -> Result<T, (usize, String)>,
) -> Result<(String, T)> {
    let content = render(&spec.template, cluster, host, None)?;
    let parsed = read(&content).map_err(|(line, problem)| Error::TemplateOutput {
        template: spec.template.clone(),
        host: host.name.clone(),
        line,
        problem,
    })?;
    Ok((content, parsed))
}

/// Lines of a file that carry content: not blank and not a `#` or `;` comment, numbered from 1.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
}

/// `key = value` lines of a sysctl.d file, as the values to apply now.
fn sysctl_values(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut values = BTreeMap::new();
    for (n, line) in content_lines(text) {
        let Some((key, value)) = line.split_once('=') else {
            return Err((n, format!("`{line}` is not `key = value`")));
        };
        let key = key.trim();
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err((n, format!("`{key}` is not a sysctl key")));
        }
        values.insert(key.to_string(), value.trim().to_string());
    }
    Ok(values)
}

/// Module names of a modules-load.d file.
fn module_names(text: &str) -> Result<Vec<String>, (usize, String)> {
    content_lines(text)
        .map(|(n, line)| {
            if line
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                Ok(line.to_string())
            } else {
                Err((n, format!("`{line}` is not a kernel module name")))
            }
        })
        .collect()
}

/// What the facts phase should report so preflight can judge the host before any change:
/// the kernel modules the playbook's kernel_modules tasks load (whatever their `when:`, as
/// facts are gathered before predicates on facts can be judged), the versions of the bundle
/// packages and of [`CONFLICTING_PACKAGES`], [`CONFLICTING_PATHS`], the binaries of the
/// listed runtime handlers ([`crate::runtime_probe_paths`]) and [`PREFLIGHT_DISKS`].
/// `host` may carry default facts: the templates used here read only the cluster.
pub fn facts_probes(
    playbook: &Playbook,
    cluster: &ClusterContext,
    host: &HostContext,
) -> Result<FactsArgs> {
    let mut probes = FactsArgs::default();
    let add = |list: &mut Vec<String>, item: &str| {
        if !list.iter().any(|x| x == item) {
            list.push(item.to_string());
        }
    };
    for task in playbook.phases.iter().flat_map(|p| &p.tasks) {
        match &task.module {
            Module::KernelModules(f) => {
                let (_, modules) = render_lines(f, cluster, host, module_names)?;
                modules.iter().for_each(|m| add(&mut probes.modules, m));
            }
            Module::Packages(p) => p.bundle.iter().for_each(|n| add(&mut probes.packages, n)),
            _ => {}
        }
    }
    CONFLICTING_PACKAGES
        .iter()
        .for_each(|n| add(&mut probes.packages, n));
    probes.paths = CONFLICTING_PATHS
        .iter()
        .chain(KUBERNETES_PATHS)
        .copied()
        .chain(crate::runtimes::runtime_probe_paths(cluster))
        .map(PathBuf::from)
        .collect();
    // Whether the VIP is free is asked of every control-plane host: any of them may be the
    // one that shares a subnet with it.
    let vip = cluster
        .kubernetes
        .as_ref()
        .and_then(|k| k.vip.as_ref().map(|v| (v, k.endpoint_port)));
    if let (Some((vip, port)), true) = (vip, host.has_role("control-plane")) {
        probes.tcp_probes.push(vip_probe(vip, port));
    }
    probes.disks = PREFLIGHT_DISKS.iter().map(PathBuf::from).collect();
    Ok(probes)
}

/// The `ip:port` the facts phase probes for a VIP.
pub fn vip_probe(vip: &str, port: u16) -> String {
    if vip.contains(':') {
        format!("[{vip}]:{port}")
    } else {
        format!("{vip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_lines_become_values() {
        let v =
            sysctl_values("# c\n\nnet.ipv4.ip_forward = 1\n; x\nkernel.pid_max=65536\n").unwrap();
        assert_eq!(v["net.ipv4.ip_forward"], "1");
        assert_eq!(v["kernel.pid_max"], "65536");
        assert_eq!(
            sysctl_values("a = 1\nnonsense\n").unwrap_err().0,
            2,
            "the bad line is named"
        );
    }

    #[test]
    fn module_lines_become_names() {
        assert_eq!(
            module_names("# c\noverlay\n\nbr_netfilter\n").unwrap(),
            ["overlay", "br_netfilter"]
        );
        assert_eq!(module_names("overlay\nbad name\n").unwrap_err().0, 2);
    }
}
