//! The Cluster resource: intent for a whole cluster.

use ipnet::IpNet;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    ssh::{ConfigMapKeyRef, LocalObjectRef, SshSpec},
    status::ClusterStatus,
};

/// The API server port when the spec names none.
pub const DEFAULT_API_SERVER_PORT: u16 = 6443;

/// The CNI when the spec names none.
pub const DEFAULT_CNI: &str = "cilium";
/// The CNIs kubegrid renders itself; `none` means the user's own manifest.
pub const SUPPORTED_CNIS: &[&str] = &["cilium", "none"];
/// The longest `spec.bundle.source` (Linux's PATH_MAX), so the CEL rule that reads it stays
/// within the API server's cost budget.
pub const MAX_BUNDLE_SOURCE_LEN: usize = 4096;
/// Leaf certificate validity when the spec names none (kubeadm's one year).
pub const DEFAULT_CERT_VALIDITY: &str = "8760h";
/// CA validity when the spec names none (kubeadm's ten years).
pub const DEFAULT_CA_VALIDITY: &str = "87600h";

/// Intent for a whole cluster. Its hosts are the Nodes whose `clusterName` names it.
///
/// The API server checks the version format, the endpoint and the fields that cannot change
/// after creation; kubegrid runs the same checks itself.
// The CEL rules live in `rules.rs`; `Manifest::validate` and `Cluster::validate_update` are
// their counterparts in code.
#[expect(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) entries repeat keys such as type_ by design"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "kubegrid.io",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    shortname = "kgc",
    category = "kubegrid",
    status = "ClusterStatus",
    derive = "PartialEq",
    doc = "A Kubernetes cluster that kubegrid installs over SSH on the Nodes that name it.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Version",
        type_ = "string",
        description = "Kubernetes version installed (status.kubernetesVersion)",
        json_path = ".status.kubernetesVersion"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        description = "Nodes in phase Ready",
        json_path = ".status.nodes.ready"
    ),
    printcolumn(
        name = "Nodes",
        type_ = "integer",
        description = "Nodes that name this Cluster",
        json_path = ".status.nodes.total"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = crate::validate::gpu::gpu_needs_nvidia_runtime_rule(),
    validation = crate::validate::serving::serving_needs_gpu_rule()
)]
pub struct ClusterSpec {
    /// Kubernetes version, e.g. `v1.31.4`.
    #[schemars(length(max = crate::version::MAX_KUBERNETES_VERSION_LEN))]
    #[x_kube(validation = crate::rules::kubernetes_version())]
    pub kubernetes_version: String,
    /// Where the API server is reached. Immutable: it is in every certificate and
    /// kubeconfig.
    #[x_kube(validation = crate::rules::immutable(crate::rules::WHY_ENDPOINT))]
    pub control_plane_endpoint: ControlPlaneEndpoint,
    /// Pod and service networks.
    pub network: NetworkSpec,
    /// containerd and its runtimes.
    pub container_runtime: ContainerRuntimeSpec,
    /// External etcd (Nodes with the `etcd` role): the release line to run. Without it, the
    /// newest etcd the bundle carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSpec>,
    /// How upgrades roll: how many worker Nodes at once, and a pause between Nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeSpec>,
    /// The offline bundle; the CLI's `--bundle DIR` stands in when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleSpec>,
    /// SSH defaults for every Node.
    #[serde(default)]
    pub ssh: SshSpec,
    /// Certificate lifetimes for the certificates kubegrid and kubeadm issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesSpec>,
    /// The NVIDIA stack for GPU Nodes; without it kubegrid installs no GPU software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::gpu::GpuSpec>,
    /// The vLLM serving layer kubegrid deploys once the cluster is installed; needs `gpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<crate::serving::ServingSpec>,
    /// What the operator does to the hosts when the Cluster is deleted: `Orphan` (the
    /// default) leaves them as they are, `Reset` runs the reset playbook on every host. The
    /// CLI ignores it.
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_orphan")]
    pub deletion_policy: DeletionPolicy,
}

/// External etcd's release line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EtcdSpec {
    /// Release line, e.g. `3.5`; the bundle pins the patch release.
    #[x_kube(validation = crate::rules::etcd_line())]
    pub version: String,
}

/// How an upgrade rolls over the Nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeSpec {
    /// Worker Nodes drained and upgraded at once (default 1). Control-plane Nodes and etcd
    /// members always go one at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = crate::version::MAX_UPGRADE_UNAVAILABLE))]
    pub max_unavailable: Option<u32>,
    /// Stops a running upgrade between Nodes (the Node being upgraded finishes first), and
    /// keeps a new one from starting. Set it back to `false` to go on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

impl UpgradeSpec {
    /// Worker Nodes upgraded at once.
    pub fn max_unavailable(&self) -> u32 {
        self.max_unavailable.unwrap_or(1).max(1)
    }
}

/// What deleting a Cluster does to its hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave every host as it is: Kubernetes keeps running there and kubegrid stops
    /// managing it.
    #[default]
    Orphan,
    /// Run the reset playbook on every host (kubeadm reset, kubelet stopped, kubegrid's
    /// files and the bundle registry removed) before the Cluster goes.
    Reset,
}

impl DeletionPolicy {
    /// Whether this is the default, [`DeletionPolicy::Orphan`].
    pub fn is_orphan(&self) -> bool {
        *self == Self::Orphan
    }
}

/// Certificate lifetimes, as durations like `8760h`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificatesSpec {
    /// Leaf certificates (API server, etcd, clients); default 8760h. Below Kubernetes 1.31
    /// (kubeadm v1beta3) kubeadm's own leaves stay at one year; kubegrid's follow this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
    /// Certificate authorities; default 87600h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_validity: Option<String>,
    /// The operator renews a leaf that expires within this; default 720h (30 days), at
    /// least 168h (7 days) and shorter than `validity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// The operator warns (a Warning Event and the `CertificatesExpiring` condition) when a
    /// certificate expires within this; default 2880h (120 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before: Option<String>,
    /// Whether the operator renews by itself (default true); `false` only warns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,
    /// How often the operator reads the certificates on the hosts, so that one changed by
    /// hand is noticed; default 24h, at least 1m.
    ///
    /// Floors: validity 24h, caValidity 48h, renewBefore 168h, checkInterval 1m. TEST-ONLY:
    /// `KUBEGRID_TEST_SHORT_CERTIFICATES=1` in the environment of the CLI or the operator
    /// lowers them to 1m, 1m, 1m and 5s, so that tests can watch certificates expire and be
    /// renewed; never set it in product use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_interval: Option<String>,
}

impl ClusterSpec {
    /// `spec.certificates` parsed, defaults filled in, floors checked (lowered only under
    /// the test-only `KUBEGRID_TEST_SHORT_CERTIFICATES=1`); the error names each field,
    /// what it holds and what is accepted.
    pub fn certificate_policy(&self) -> Result<crate::CertificatePolicy, String> {
        crate::certificates::policy(
            self.certificates.as_ref(),
            crate::certificates::short_certificates_allowed(),
        )
        .map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// Leaf and CA validity, parsed; the error names the field.
    pub fn certificate_validity(
        &self,
    ) -> Result<(std::time::Duration, std::time::Duration), String> {
        let c = self.certificates.as_ref();
        let parse = |field: &str, value: Option<&String>, default: &str| {
            let text = value.map_or(default, String::as_str);
            humantime::parse_duration(text).map_err(|e| {
                format!("spec.certificates.{field}: `{text}` is not a duration like 8760h: {e}")
            })
        };
        Ok((
            parse(
                "validity",
                c.and_then(|c| c.validity.as_ref()),
                DEFAULT_CERT_VALIDITY,
            )?,
            parse(
                "caValidity",
                c.and_then(|c| c.ca_validity.as_ref()),
                DEFAULT_CA_VALIDITY,
            )?,
        ))
    }
}

/// Where the API server is reached: a load balancer's address, or a virtual IP that
/// kubegrid runs with kube-vip. Exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::endpoint_address_or_vip())]
pub struct ControlPlaneEndpoint {
    /// IP address or DNS name of an existing load balancer or of one control-plane host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Virtual IP address that kubegrid assigns with kube-vip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    /// API server port.
    #[serde(default = "default_api_server_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
}

fn default_api_server_port() -> u16 {
    DEFAULT_API_SERVER_PORT
}

/// Pod and service networks. Both ranges are immutable: every host's routes, the CNI and
/// the API server's certificate carry them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::cli_only("cniManifest", crate::rules::Names::File, crate::rules::USE_CNI_CONFIGMAP))]
pub struct NetworkSpec {
    /// Pod network, e.g. `10.244.0.0/16`. Immutable.
    #[serde(rename = "podCIDR")]
    #[schemars(with = "String")]
    #[x_kube(validation = crate::rules::immutable(crate::rules::WHY_POD_CIDR))]
    pub pod_cidr: IpNet,
    /// Service network, e.g. `10.96.0.0/12`. Immutable.
    #[serde(rename = "serviceCIDR")]
    #[schemars(with = "String")]
    #[x_kube(validation = crate::rules::immutable(crate::rules::WHY_SERVICE_CIDR))]
    pub service_cidr: IpNet,
    /// CNI plugin: `cilium`, or `none` to apply your own manifest (`cniManifest`).
    #[serde(default = "default_cni")]
    pub cni: String,
    /// Your own CNI manifest file, applied on the first control-plane Node instead of a
    /// rendered one; relative paths resolve against the spec file's directory. CLI only: the
    /// operator refuses it (use `cniManifestRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_manifest: Option<String>,
    /// A ConfigMap key in the Cluster's namespace that holds your own CNI manifest, for the
    /// operator (the CLI cannot read ConfigMaps: use `cniManifest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_manifest_ref: Option<ConfigMapKeyRef>,
}

fn default_cni() -> String {
    DEFAULT_CNI.to_string()
}

/// containerd and the OCI runtimes it offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::validate::runtime::default_runtime_rule())]
pub struct ContainerRuntimeSpec {
    /// containerd release line.
    pub containerd: ContainerdSpec,
    /// Where containerd and runc come from: the bundle's upstream release archive and runc
    /// binary (`archive`, the default), or the bundle's OS packages (`packages`).
    #[serde(default)]
    pub source: ContainerdSource,
    /// Runtime handlers to configure.
    #[serde(default = "default_runtimes")]
    pub runtimes: Vec<RuntimeName>,
    /// Handler that pods without a RuntimeClass use: `runc` (the default), `crun` or `gvisor`,
    /// which kubegrid installs on every host; `nvidia` only with `spec.gpu` set and every
    /// worker Node `gpu: nvidia`; never `kata-*`, which runs only where VMs can be created.
    #[serde(default)]
    pub default_runtime: RuntimeName,
    /// Pause image; the bundle's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_image: Option<String>,
    /// Registry mirrors, tried in order before the registry itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry_mirrors: Vec<RegistryMirror>,
}

fn default_runtimes() -> Vec<RuntimeName> {
    vec![RuntimeName::Runc]
}

/// Where containerd and runc come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerdSource {
    /// containerd's release archive unpacked into /usr/local, runc as /usr/local/sbin/runc,
    /// and kubegrid's own systemd unit: the same files on every distribution.
    #[default]
    Archive,
    /// The bundle's .deb or .rpm packages, installed with the host's package manager.
    Packages,
}

impl ContainerdSource {
    /// The source as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Archive => "archive",
            Self::Packages => "packages",
        }
    }
}

/// The containerd release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerdSpec {
    /// Release line such as `1.7` or `2.1`; the bundle pins the patch release.
    #[x_kube(validation = crate::rules::containerd_line())]
    pub version: String,
}

impl ContainerdSpec {
    /// The containerd config format this line reads (2 or 3); `None` when the line is
    /// unsupported, which validation reports.
    pub fn config_version(&self) -> Option<u8> {
        crate::version::containerd_config_version(&self.version)
    }
}

/// An OCI runtime handler that containerd offers to pods.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeName {
    /// runc: ordinary containers.
    #[default]
    Runc,
    /// Kata Containers on QEMU.
    KataQemu,
    /// Kata Containers on Cloud Hypervisor.
    KataClh,
    /// Kata Containers on Firecracker.
    KataFc,
    /// The NVIDIA container runtime, for GPU pods.
    Nvidia,
    /// gVisor (`runsc`): a user-space kernel between pods and the host.
    Gvisor,
    /// crun, a runc-compatible runtime written in C.
    Crun,
}

impl RuntimeName {
    /// Every runtime, in documentation order.
    pub const ALL: [RuntimeName; 7] = [
        Self::Runc,
        Self::KataQemu,
        Self::KataClh,
        Self::KataFc,
        Self::Nvidia,
        Self::Gvisor,
        Self::Crun,
    ];

    /// The handler name as written in the spec and in containerd's config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::KataQemu => "kata-qemu",
            Self::KataClh => "kata-clh",
            Self::KataFc => "kata-fc",
            Self::Nvidia => "nvidia",
            Self::Gvisor => "gvisor",
            Self::Crun => "crun",
        }
    }
}

impl std::fmt::Display for RuntimeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mirror for one registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryMirror {
    /// Registry host as images name it, e.g. `docker.io`.
    pub registry: String,
    /// Mirror URL, e.g. `https://mirror.example:5000`.
    pub endpoint: String,
}

/// The offline bundle that hosts get every artifact from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::cli_only("publicKeyFile", crate::rules::Names::File, crate::rules::USE_BUNDLE_KEY_SECRET))]
pub struct BundleSpec {
    /// A path or a `file://` URL; relative paths resolve against the spec file's directory
    /// (the CLI) or the operator's first bundle root. The operator takes only bundles inside
    /// its bundle roots (`--bundle-root`), symbolic links followed; `..` is refused.
    #[schemars(length(max = MAX_BUNDLE_SOURCE_LEN))]
    #[x_kube(validation = crate::rules::no_parent_dir())]
    pub source: String,
    /// Secret that holds the public key the bundle's signature is checked with (operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_ref: Option<LocalObjectRef>,
    /// File with the public key the bundle's signature is checked with, for the CLI only (a
    /// relative path resolves against the spec file's directory; the operator refuses it:
    /// use `publicKeyRef`). `--bundle-public-key` overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<String>,
    /// An image registry kubegrid runs on one Node, filled with the bundle's images; every
    /// host pulls registry.k8s.io, docker.io, quay.io, ghcr.io and nvcr.io images from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<BundleRegistrySpec>,
}

/// The port the bundle registry listens on when the spec names none.
pub const DEFAULT_BUNDLE_REGISTRY_PORT: u16 = 5000;

/// The upstream registries whose pulls go to the bundle registry, and never upstream, when
/// `spec.bundle.registry` is set. kubegrid-plan's list of the same name must match.
pub const BUNDLE_REGISTRY_MIRRORED: &[&str] = &[
    "registry.k8s.io",
    "docker.io",
    "quay.io",
    "ghcr.io",
    "nvcr.io",
];

/// The image registry kubegrid runs from the bundle's `registry` binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleRegistrySpec {
    /// Name of the Node that runs it; other hosts reach it at that Node's address.
    pub host: String,
    /// Port it listens on.
    #[serde(default = "default_bundle_registry_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Serve plain HTTP instead of TLS with a certificate from kubegrid's registry CA.
    #[serde(default)]
    pub plain_http: bool,
}

fn default_bundle_registry_port() -> u16 {
    DEFAULT_BUNDLE_REGISTRY_PORT
}
