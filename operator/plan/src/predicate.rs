//! `when:` predicates: typed conditions on the spec and the host, evaluated by the engine.

use semver::VersionReq;
use serde::Deserialize;

use crate::{
    containerd::ContainerdSource,
    context::{ClusterContext, HostContext, OsFamily},
};

/// A condition on a task. Each form is one YAML key, e.g. `{runtime: kata-qemu}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum When {
    /// The spec enables this runtime handler ("runc", "nvidia", "kata-qemu").
    Runtime(String),
    /// The spec enables a `kata-<shim>` handler and this host can create a VM (its facts found
    /// /dev/kvm usable), so kubegrid installs and configures Kata Containers here.
    Kata(bool),
    /// The host has this role.
    Role(Role),
    /// The configured containerd version line matches this semver requirement (">=2.0").
    Containerd(VersionReq),
    /// Where containerd comes from: `archive` or `packages` (spec.containerRuntime.source).
    ContainerdSource(ContainerdSource),
    /// The host's OS family (from os-release ID and ID_LIKE).
    OsFamily(OsFamily),
    /// The host's architecture ("amd64", "arm64").
    Arch(String),
    /// At least one certs.d mirror is configured: the user's, or the bundle registry's.
    RegistryMirrors(bool),
    /// The spec runs a bundle registry.
    BundleRegistry(bool),
    /// The spec runs a bundle registry over TLS, so hosts need its CA.
    BundleRegistryTls(bool),
    /// The host runs (or ran) `kubeadm init`.
    InitNode(bool),
    /// The host's kubelet has joined the cluster (kubeadm wrote kubelet.conf).
    Joined(bool),
    /// `kubeadm init` has run on the init node.
    Initialized(bool),
    /// Some host of the operation has yet to join.
    JoinsPending(bool),
    /// The etcd topology: "stacked" or "external".
    Etcd(String),
    /// The spec asks for a kube-vip VIP.
    KubeVip(bool),
    /// The host is a GPU Node ([`HostContext::gpu`]).
    Gpu(bool),
    /// Where the spec's GPU driver comes from: `packages`, `runfile` or `preinstalled`
    /// (false for every source when the spec has no `gpu`).
    GpuDriver(crate::gpu_host::DriverSource),
    /// The host needs fabric manager ([`crate::fabric_manager_required`]): a GPU Node with
    /// NVSwitches under `fabricManager: auto`, or any GPU Node under `on`.
    Nvswitch(bool),
    /// The facts found the nouveau module loaded.
    NouveauLoaded(bool),
    /// The spec asks for the GPU validation checks (`spec.gpu.validation`).
    GpuValidation(bool),
    /// Every condition holds.
    All(Vec<When>),
    /// At least one condition holds.
    Any(Vec<When>),
    /// The condition does not hold.
    Not(Box<When>),
}

/// Host roles, typed so a misspelt role in a playbook is a parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the Kubernetes control plane.
    ControlPlane,
    /// Runs etcd.
    Etcd,
    /// Runs workloads.
    Worker,
}

impl Role {
    /// The role's name as specs and host contexts spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Etcd => "etcd",
            Role::Worker => "worker",
        }
    }
}

impl When {
    /// Whether the condition holds for this host of this cluster.
    pub fn eval(&self, cluster: &ClusterContext, host: &HostContext) -> bool {
        let k = cluster.kubernetes.as_ref();
        match self {
            When::Runtime(name) => cluster.has_runtime(name),
            When::Kata(want) => {
                (cluster.has_kata() && crate::runtimes::vm_capable(&host.facts)) == *want
            }
            When::Role(role) => host.has_role(role.as_str()),
            When::Containerd(req) => req.matches(&cluster.containerd),
            When::ContainerdSource(source) => cluster.containerd_source == *source,
            When::OsFamily(family) => host.os_family() == Some(*family),
            When::Arch(arch) => host.facts.arch == *arch,
            When::RegistryMirrors(want) => {
                (cluster.registry_mirrors.is_empty() && cluster.bundle_registry.is_none()) != *want
            }
            When::BundleRegistry(want) => cluster.bundle_registry.is_some() == *want,
            When::BundleRegistryTls(want) => {
                cluster
                    .bundle_registry
                    .as_ref()
                    .is_some_and(|r| !r.plain_http)
                    == *want
            }
            When::InitNode(want) => cluster.is_init_node(host) == *want,
            When::Joined(want) => host.joined() == *want,
            When::Initialized(want) => k.is_some_and(|k| k.initialized) == *want,
            When::JoinsPending(want) => k.is_some_and(|k| k.joins_pending) == *want,
            When::Etcd(topology) => k.is_some_and(|k| k.etcd.topology == *topology),
            When::KubeVip(want) => k.is_some_and(|k| k.vip.is_some()) == *want,
            When::Gpu(want) => host.gpu == *want,
            When::GpuDriver(source) => crate::gpu_host::driver_source_is(cluster, *source),
            When::Nvswitch(want) => {
                crate::gpu_host::fabric_manager_required(cluster, host) == *want
            }
            When::NouveauLoaded(want) => host.facts.gpu.modules.nouveau == *want,
            When::GpuValidation(want) => {
                cluster.gpu.as_ref().is_some_and(|g| g.validation) == *want
            }
            When::All(all) => all.iter().all(|w| w.eval(cluster, host)),
            When::Any(any) => any.iter().any(|w| w.eval(cluster, host)),
            When::Not(inner) => !inner.eval(cluster, host),
        }
    }
}

#[cfg(test)]
mod tests {
    use kubegrid_agent::facts::Facts;

    use super::*;

    fn when(yaml: &str) -> When {
        crate::playbook::from_yaml(yaml).unwrap()
    }

    #[test]
    fn predicates_evaluate_against_cluster_and_host() {
        let mut cluster = ClusterContext::new("c", "2.1").unwrap();
        cluster.runtimes.push("kata-qemu".into());
        let host = HostContext {
            name: "h".into(),
            roles: vec!["worker".into()],
            facts: Facts {
                os_id: "debian".into(),
                arch: "amd64".into(),
                ..Facts::default()
            },
            ..Default::default()
        };
        let holds = |yaml: &str| when(yaml).eval(&cluster, &host);
        assert!(holds("{runtime: kata-qemu}"));
        assert!(holds("{runtime: runc}"));
        assert!(!holds("{runtime: nvidia}"));
        assert!(
            holds("{kata: false}"),
            "no VM on a host whose /dev/kvm was not probed"
        );
        assert!(holds("{role: worker}"));
        assert!(!holds("{role: control-plane}"));
        assert!(holds("{containerd: '>=2.0'}"));
        assert!(!holds("{containerd: '<2.0'}"));
        assert!(holds("{containerd_source: archive}"));
        assert!(!holds("{containerd_source: packages}"));
        assert!(holds("{os_family: debian}"));
        assert!(!holds("{arch: arm64}"));
        assert!(!holds("{registry_mirrors: true}"));
        assert!(holds("{all: [{role: worker}, {not: {runtime: nvidia}}]}"));
        assert!(holds("{any: [{role: etcd}, {arch: amd64}]}"));
        assert!(!holds("{all: [{role: worker}, {arch: arm64}]}"));
    }

    #[test]
    fn kata_holds_where_a_kata_handler_is_enabled_and_a_vm_can_be_created() {
        let mut cluster = ClusterContext::new("c", "2.1").unwrap();
        let mut host = HostContext::default();
        host.facts.gpu.kvm = kubegrid_agent::facts::Kvm::Usable;
        let holds = |c: &ClusterContext, h: &HostContext| when("{kata: true}").eval(c, h);
        assert!(!holds(&cluster, &host), "no kata handler listed");
        cluster.runtimes.push("kata-clh".into());
        assert!(holds(&cluster, &host));
        host.facts.gpu.kvm = kubegrid_agent::facts::Kvm::NoDevice;
        assert!(!holds(&cluster, &host));
    }

    #[test]
    fn bundle_registry_predicates_follow_the_registry_and_its_scheme() {
        let mut cluster = ClusterContext::new("c", "1.7").unwrap();
        let host = HostContext::default();
        let holds = |c: &ClusterContext, yaml: &str| when(yaml).eval(c, &host);
        assert!(holds(&cluster, "{bundle_registry: false}"));
        assert!(holds(&cluster, "{bundle_registry_tls: false}"));
        cluster.bundle_registry = Some(crate::BundleRegistry {
            host: "reg".into(),
            address: "10.0.0.5".into(),
            port: 5000,
            plain_http: false,
        });
        assert!(holds(&cluster, "{bundle_registry: true}"));
        assert!(holds(&cluster, "{bundle_registry_tls: true}"));
        assert!(
            holds(&cluster, "{registry_mirrors: true}"),
            "the bundle registry's mirrors count"
        );
        cluster.bundle_registry.as_mut().unwrap().plain_http = true;
        assert!(holds(&cluster, "{bundle_registry: true}"));
        assert!(holds(&cluster, "{bundle_registry_tls: false}"));
    }

    #[test]
    fn unknown_forms_and_values_do_not_parse() {
        for bad in [
            "{gpu: nvidia}",
            "{gpu_driver: apt}",
            "{role: master}",
            "{os_family: arch}",
            "{containerd: 'two'}",
            "{containerd_source: tarball}",
            "{role: worker, arch: amd64}",
        ] {
            assert!(
                crate::playbook::from_yaml::<When>(bad).is_err(),
                "{bad} parsed"
            );
        }
    }
}
