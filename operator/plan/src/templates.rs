//! The tera templates, embedded so the binary is self-contained, and what they are rendered
//! with.

use std::{collections::BTreeMap, sync::OnceLock};

use kubegrid_agent::facts::Facts;
use serde::Serialize;
use tera::Tera;

use crate::{
    context::{ClusterContext, HostContext, REGISTRY_CONFIG_PATH, RegistryMirror, TaintContext},
    error::{Error, Result, tera_detail},
    kubernetes::{EtcdContext, JoinSecrets, KubernetesContext},
    registry::{
        BundleRegistry, REGISTRY_BINARY, REGISTRY_CA_CERT, REGISTRY_CERT, REGISTRY_CONFIG,
        REGISTRY_DATA_DIR, REGISTRY_HTPASSWD, REGISTRY_KEY, REGISTRY_PUSH_CONFIG,
    },
};

/// An embedded template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Path under the repository's templates/ folder; playbooks name templates by it.
    pub name: &'static str,
    /// The template text.
    pub source: &'static str,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(Template { name: $name, source: include_str!(concat!("../../../templates/", $name)) }),*]
    };
}

/// Every template, by name.
pub const TEMPLATES: &[Template] = templates![
    "containerd/config-v2.toml.tera",
    "containerd/containerd.service.tera",
    "containerd/config-v3.toml.tera",
    "containerd/hosts.toml.tera",
    "containerd/runsc-containerd.sh.tera",
    "crictl.yaml.tera",
    "sysctl/kubernetes.conf.tera",
    "modules-load/kubernetes.conf.tera",
    "kubeadm/init.yaml.tera",
    "kubeadm/join.yaml.tera",
    "kubeadm/upgrade.sh.tera",
    "kubelet/kubelet.service.tera",
    "kubelet/10-kubeadm.conf.tera",
    "kube-vip/kube-vip.yaml.tera",
    "etcd/etcd.service.tera",
    "etcd/initial-cluster.env.tera",
    "cni/cilium.yaml.tera",
    "registry/config.yml.tera",
    "registry/kubegrid-registry.service.tera",
    "registry/config-push.yml.tera",
    "registry/kubegrid-registry-push.service.tera",
    "gpu/blacklist-nouveau.conf.tera",
    "gpu/nvidia-persistenced.service.tera",
    "gpu/kubegrid-nvidia-cdi.service.tera",
];

/// The Cilium agent image cni/cilium.yaml.tera deploys; agent and operator must be one release.
pub const CILIUM_IMAGE: &str = "quay.io/cilium/cilium:v1.16.5";
/// The Cilium operator image, the same release as [`CILIUM_IMAGE`].
pub const CILIUM_OPERATOR_IMAGE: &str = "quay.io/cilium/operator-generic:v1.16.5";

/// The taint kubeadm puts on control-plane Nodes.
const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// CDI spec directories containerd scans when CDI is on.
const CDI_SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// The template named `name`, or an error listing the known ones.
pub fn template(name: &str) -> Result<&'static Template> {
    TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::UnknownTemplate {
            name: name.to_string(),
            known: TEMPLATES
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Renders template `name` for a host. `mirror` is the registry mirror a certs.d template is
/// rendered for; other templates ignore it.
///
/// Templates see `cluster` (`name`, `containerd.{line,major,minor}`, `runtimes`,
/// `default_runtime`, `sandbox_image`, `registry_config_path`, `registry_mirrors`, `kata` as
/// `[{handler, shim}]`, `nvidia`, `gvisor`, `crun` (true where the handler is configured),
/// `runsc` (the gvisor handler's BinaryName), `cdi_spec_dirs`; `kata`, `nvidia`, `gvisor` and
/// `crun` only for the handlers this host runs, see [`crate::host_runtimes`]), `host` (`name`, `roles`, and `facts` with
/// the wire's camelCase keys, e.g. `host.facts.osId`) and `mirror` (a [`RegistryMirror`] plus
/// `bundle_registry`, true when it points at the bundle registry; or null). An undefined
/// variable is an error, never an empty string. `cluster.registry_mirrors` is every certs.d
/// mirror, the bundle registry's included ([`ClusterContext::mirrors`]).
///
/// `cluster.bundle_registry` is null without a bundle registry; otherwise it has `host`,
/// `address`, `port`, `plain_http`, `scheme`, `endpoint` (the URL containerd pulls from),
/// `listen` (what the registry binds), `push_port`, `push_listen` and `push_config_file`
/// (the push endpoint's), `htpasswd_file`, `binary`, `config_file`, `data_dir`,
/// `state_directory` (`data_dir` under /var/lib, for systemd), `ca_file`, `cert_file` and
/// `key_file`.
///
/// `cluster.kubernetes` is null for an operation without Kubernetes; otherwise it has every
/// [`KubernetesContext`] field (`version` as "1.31.4" with `major`/`minor`/`patch`,
/// `kubeadm_api`, `v1beta4`, `endpoint_host`, `endpoint_port`, `bind_port`, `vip`, `pod_cidr`,
/// `service_cidr`, `dns_domain`, `cni`, `cni_manifest`, `etcd {topology, members, endpoints,
/// initial_cluster, initial_cluster_state}`, `init_node`, `initialized`, `joins_pending`, `cert_validity_hours`,
/// `ca_validity_hours`, `join {token, certificate_key, ca_cert_hash}`, `kube_vip_image`) plus
/// `endpoint` ("host:port", IPv6 bracketed), `cilium_image` and `cilium_operator_image`.
/// `host` also has `address`, `url_address` (bracketed when IPv6), `labels`, `taints`,
/// `interface` (the one carrying the address, or null), `is_init_node`,
/// `kubelet_node_labels` ("k=v,..." of the labels [`kubelet_may_set_label`] allows, for the
/// kubelet's `--node-labels`) and `kubeadm_taints` (the control-plane taint for control-plane
/// hosts that are not also workers, then `taints`, without duplicates).
pub fn render(
    name: &str,
    cluster: &ClusterContext,
    host: &HostContext,
    mirror: Option<&RegistryMirror>,
) -> Result<String> {
    template(name)?;
    let tera = engine()?;
    let mirrors = cluster.mirrors();
    let view = View::new(cluster, host, mirror, &mirrors);
    let context = tera::Context::from_serialize(&view).map_err(|e| Error::RenderTemplate {
        template: name.to_string(),
        host: host.name.clone(),
        detail: tera_detail(&e),
    })?;
    tera.render(name, &context)
        .map_err(|e| Error::RenderTemplate {
            template: name.to_string(),
            host: host.name.clone(),
            detail: tera_detail(&e),
        })
}

/// A tera engine holding `templates`, without autoescaping: nothing kubegrid renders is
/// HTML, and escaping would corrupt TOML and YAML.
pub(crate) fn load_templates(templates: &[Template]) -> std::result::Result<Tera, String> {
    let mut tera = Tera::default();
    tera.autoescape_on(Vec::new());
    tera.add_raw_templates(templates.iter().map(|t| (t.name, t.source)))
        .map_err(|e| tera_detail(&e))?;
    Ok(tera)
}

/// The templates are static, so they are parsed once per process.
fn engine() -> Result<&'static Tera> {
    static ENGINE: OnceLock<Result<Tera, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| load_templates(TEMPLATES))
        .as_ref()
        .map_err(|detail| Error::LoadTemplates {
            detail: detail.clone(),
        })
}

/// What templates see: `cluster`, `host` (with `host.facts`) and, for certs.d, `mirror`.
#[derive(Serialize)]
struct View<'a> {
    cluster: ClusterView<'a>,
    host: HostView<'a>,
    mirror: Option<MirrorView<'a>>,
}

#[derive(Serialize)]
struct MirrorView<'a> {
    #[serde(flatten)]
    mirror: &'a RegistryMirror,
    /// It sends pulls to the bundle registry (hosts.toml marks it for reset).
    bundle_registry: bool,
}

#[derive(Serialize)]
struct BundleRegistryView<'a> {
    host: &'a str,
    address: &'a str,
    port: u16,
    plain_http: bool,
    scheme: &'static str,
    endpoint: String,
    listen: String,
    push_port: u16,
    push_listen: String,
    push_config_file: &'static str,
    htpasswd_file: &'static str,
    binary: &'static str,
    config_file: &'static str,
    data_dir: &'static str,
    state_directory: &'static str,
    ca_file: &'static str,
    cert_file: &'static str,
    key_file: &'static str,
}

impl<'a> BundleRegistryView<'a> {
    fn new(r: &'a BundleRegistry) -> Self {
        BundleRegistryView {
            host: &r.host,
            address: &r.address,
            port: r.port,
            plain_http: r.plain_http,
            scheme: r.scheme(),
            endpoint: r.endpoint(),
            listen: r.listen(),
            push_port: r.push_port(),
            push_listen: r.push_listen(),
            push_config_file: REGISTRY_PUSH_CONFIG,
            htpasswd_file: REGISTRY_HTPASSWD,
            binary: REGISTRY_BINARY,
            config_file: REGISTRY_CONFIG,
            data_dir: REGISTRY_DATA_DIR,
            state_directory: REGISTRY_DATA_DIR
                .strip_prefix("/var/lib/")
                .unwrap_or(REGISTRY_DATA_DIR),
            ca_file: REGISTRY_CA_CERT,
            cert_file: REGISTRY_CERT,
            key_file: REGISTRY_KEY,
        }
    }
}

#[derive(Serialize)]
struct ClusterView<'a> {
    name: &'a str,
    containerd: ContainerdView,
    runtimes: &'a [String],
    default_runtime: &'a str,
    sandbox_image: &'a str,
    registry_config_path: &'static str,
    registry_mirrors: &'a [RegistryMirror],
    bundle_registry: Option<BundleRegistryView<'a>>,
    /// Kata handlers, so templates need no string slicing.
    kata: Vec<KataView<'a>>,
    nvidia: bool,
    /// gVisor's handler; `runsc` is the script containerd's runc shim runs for it.
    gvisor: bool,
    runsc: &'static str,
    crun: bool,
    cdi_spec_dirs: &'static [&'static str],
    kubernetes: Option<KubernetesView<'a>>,
}

#[derive(Serialize)]
struct KubernetesView<'a> {
    /// "1.31.4"
    version: String,
    major: u64,
    minor: u64,
    patch: u64,
    kubeadm_api: &'a str,
    /// Picks list-form extraArgs and the validity periods, which only v1beta4 has.
    v1beta4: bool,
    endpoint_host: &'a str,
    endpoint_port: u16,
    /// The port the API server binds: the endpoint's with kube-vip (the VIP forwards nothing),
    /// kubeadm's 6443 behind a load balancer, which may listen on another port.
    bind_port: u16,
    /// `endpoint_host:endpoint_port`, bracketed when the host is IPv6.
    endpoint: String,
    vip: Option<&'a str>,
    pod_cidr: &'a str,
    service_cidr: &'a str,
    dns_domain: &'a str,
    cni: &'a str,
    cni_manifest: Option<&'a str>,
    etcd: &'a EtcdContext,
    init_node: &'a str,
    initialized: bool,
    joins_pending: bool,
    cert_validity_hours: u64,
    ca_validity_hours: u64,
    join: &'a JoinSecrets,
    kube_vip_image: &'a str,
    cilium_image: &'static str,
    cilium_operator_image: &'static str,
}

#[derive(Serialize)]
struct ContainerdView {
    /// "1.7"
    line: String,
    major: u64,
    minor: u64,
}

#[derive(Serialize)]
struct KataView<'a> {
    /// Handler name ("kata-qemu").
    handler: &'a str,
    /// Shim name ("qemu").
    shim: &'a str,
}

#[derive(Serialize)]
struct HostView<'a> {
    name: &'a str,
    roles: &'a [String],
    facts: &'a Facts,
    address: &'a str,
    /// The address as a URL host: bracketed when IPv6.
    url_address: String,
    labels: &'a BTreeMap<String, String>,
    taints: &'a [TaintContext],
    interface: Option<&'a str>,
    is_init_node: bool,
    /// Only labels the kubelet may set on itself; the rest go through the API.
    kubelet_node_labels: String,
    kubeadm_taints: Vec<TaintContext>,
}

impl<'a> View<'a> {
    fn new(
        cluster: &'a ClusterContext,
        host: &'a HostContext,
        mirror: Option<&'a RegistryMirror>,
        mirrors: &'a [RegistryMirror],
    ) -> Self {
        // Only the handlers this host runs (see `runtimes`).
        let (configured, _) = crate::runtimes::host_runtimes(cluster, host);
        let kata = cluster
            .runtimes
            .iter()
            .filter(|r| configured.contains(r))
            .filter_map(|r| {
                r.strip_prefix("kata-").map(|shim| KataView {
                    handler: r.as_str(),
                    shim,
                })
            })
            .collect();
        View {
            cluster: ClusterView {
                name: &cluster.name,
                containerd: ContainerdView {
                    line: format!("{}.{}", cluster.containerd.major, cluster.containerd.minor),
                    major: cluster.containerd.major,
                    minor: cluster.containerd.minor,
                },
                runtimes: &cluster.runtimes,
                default_runtime: &cluster.default_runtime,
                sandbox_image: &cluster.sandbox_image,
                registry_config_path: REGISTRY_CONFIG_PATH,
                registry_mirrors: mirrors,
                bundle_registry: cluster
                    .bundle_registry
                    .as_ref()
                    .map(BundleRegistryView::new),
                kata,
                nvidia: configured.iter().any(|r| r == "nvidia"),
                gvisor: configured.iter().any(|r| r == "gvisor"),
                runsc: crate::runtimes::RUNSC_WRAPPER,
                crun: configured.iter().any(|r| r == "crun"),
                cdi_spec_dirs: CDI_SPEC_DIRS,
                kubernetes: cluster.kubernetes.as_ref().map(KubernetesView::new),
            },
            host: HostView::new(host, cluster.kubernetes.as_ref()),
            mirror: mirror.map(|mirror| MirrorView {
                mirror,
                bundle_registry: cluster
                    .bundle_registry
                    .as_ref()
                    .is_some_and(|r| r.serves(mirror)),
            }),
        }
    }
}

impl<'a> KubernetesView<'a> {
    fn new(k: &'a KubernetesContext) -> Self {
        KubernetesView {
            version: k.version.to_string(),
            major: k.version.major,
            minor: k.version.minor,
            patch: k.version.patch,
            kubeadm_api: &k.kubeadm_api,
            v1beta4: k.kubeadm_api.ends_with("/v1beta4"),
            endpoint_host: &k.endpoint_host,
            endpoint_port: k.endpoint_port,
            bind_port: k.bind_port(),
            endpoint: format!("{}:{}", url_host(&k.endpoint_host), k.endpoint_port),
            vip: k.vip.as_deref(),
            pod_cidr: &k.pod_cidr,
            service_cidr: &k.service_cidr,
            dns_domain: &k.dns_domain,
            cni: &k.cni,
            cni_manifest: k.cni_manifest.as_deref(),
            etcd: &k.etcd,
            init_node: &k.init_node,
            initialized: k.initialized,
            joins_pending: k.joins_pending,
            cert_validity_hours: k.cert_validity_hours,
            ca_validity_hours: k.ca_validity_hours,
            join: &k.join,
            kube_vip_image: &k.kube_vip_image,
            cilium_image: CILIUM_IMAGE,
            cilium_operator_image: CILIUM_OPERATOR_IMAGE,
        }
    }
}

impl<'a> HostView<'a> {
    fn new(host: &'a HostContext, kubernetes: Option<&KubernetesContext>) -> Self {
        let kubelet_node_labels = host
            .labels
            .iter()
            .filter(|(key, _)| kubelet_may_set_label(key))
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut kubeadm_taints = Vec::new();
        // A control-plane host that is also a worker takes workloads, so it is not tainted.
        if host.has_role("control-plane") && !host.has_role("worker") {
            kubeadm_taints.push(TaintContext {
                key: CONTROL_PLANE_TAINT.into(),
                value: None,
                effect: "NoSchedule".into(),
            });
        }
        for taint in &host.taints {
            if !kubeadm_taints.contains(taint) {
                kubeadm_taints.push(taint.clone());
            }
        }
        HostView {
            name: &host.name,
            roles: &host.roles,
            facts: &host.facts,
            address: &host.address,
            url_address: url_host(&host.address),
            labels: &host.labels,
            taints: &host.taints,
            interface: host.interface_for_address(),
            is_init_node: kubernetes.is_some_and(|k| k.init_node == host.name),
            kubelet_node_labels,
            kubeadm_taints,
        }
    }
}

/// Labels in the kubernetes.io and k8s.io namespaces that a kubelet may put on its own Node.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];

/// Namespaces (and their subdomains) in which a kubelet may label its own Node.
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Whether the kubelet accepts `key` in `--node-labels`. It refuses to start on any other
/// label in the kubernetes.io or k8s.io namespaces (node-role.kubernetes.io/* included, so a
/// node cannot promote itself); such labels must be set through the API after the join.
pub fn kubelet_may_set_label(key: &str) -> bool {
    let Some((namespace, _)) = key.split_once('/') else {
        return true;
    };
    let in_domain = |ns: &str, domain: &str| ns == domain || ns.ends_with(&format!(".{domain}"));
    let reserved = in_domain(namespace, "kubernetes.io") || in_domain(namespace, "k8s.io");
    !reserved
        || KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|allowed| in_domain(namespace, allowed))
}

/// An IPv6 address in a URL or `host:port` needs brackets.
fn url_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::kubelet_may_set_label;

    #[test]
    fn kubelet_labels_follow_the_kubelets_own_rule() {
        for allowed in [
            "gpu",
            "example.com/rack",
            "nvidia.com/gpu.present",
            "topology.kubernetes.io/zone",
            "node.kubernetes.io/instance-type",
            "node.kubernetes.io/pool",
            "team.kubelet.kubernetes.io/x",
        ] {
            assert!(kubelet_may_set_label(allowed), "{allowed}");
        }
        for refused in [
            "node-role.kubernetes.io/worker",
            "node-role.kubernetes.io/control-plane",
            "kubernetes.io/role",
            "foo.k8s.io/bar",
            "k8s.io/x",
        ] {
            assert!(!kubelet_may_set_label(refused), "{refused}");
        }
    }
}
