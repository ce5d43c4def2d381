//! kubegrid's `Cluster` and `Node` resources (`kubegrid.io/v1alpha1`): the types, reading
//! them from multi-document YAML with file:line:column errors, semantic validation, and
//! resolving each Node into a host to connect to.
//!
//! The CLI reads the same YAML that `kubectl apply` takes; the types derive
//! [`kube::CustomResource`], so the operator installs them as CRDs unchanged
//! ([`crds`], as `kubegrid crd` prints them). The CRDs' CEL rules mirror checks that also
//! run in code: [`Manifest::validate`] on create, [`Cluster::validate_update`] and
//! [`Node::validate_update`] on update.
//!
//! ```no_run
//! # fn main() -> Result<(), kubegrid_api::Error> {
//! let manifest = kubegrid_api::load(std::path::Path::new("cluster.yaml"))?;
//! for host in manifest.hosts() {
//!     println!("{} {}@{} port {}", host.name, host.user, host.address, host.port);
//! }
//! # Ok(())
//! # }
//! ```

pub mod certificates;
mod cluster;
pub mod cni;
pub mod conditions;
mod crd;
mod error;
pub mod gpu;
mod hosts;
mod manifest;
mod node;
mod parse;
mod rules;
pub mod serving;
mod ssh;
mod status;
mod status_gpu;
mod text;
mod validate;
pub mod version;

pub use certificates::{
    CERTIFICATES_EXPIRING, CertificatePolicy, ROTATE_CA_ANNOTATION, SHORT_CERTIFICATES_ENV,
    status::{
        CertificateExpiry, CertificatesStatus, FlaggedCertificate, NodeCertificates,
        RotationStatus, ServedCertificate,
    },
};
pub use cluster::{
    BUNDLE_REGISTRY_MIRRORED, BundleRegistrySpec, BundleSpec, CertificatesSpec, Cluster,
    ClusterSpec, ContainerRuntimeSpec, ContainerdSource, ContainerdSpec, ControlPlaneEndpoint,
    DEFAULT_API_SERVER_PORT, DEFAULT_BUNDLE_REGISTRY_PORT, DEFAULT_CNI, DeletionPolicy, EtcdSpec,
    MAX_BUNDLE_SOURCE_LEN, NetworkSpec, RegistryMirror, RuntimeName, UpgradeSpec,
};
pub use crd::{CustomResourceDefinition, crd_file_name, crd_yaml, crds};
pub use error::{API_VERSION, Error, Problem, Result, SourceLine};
pub use gpu::{
    DevicePluginKind, DriverSource, FabricManagerMode, GpuDriverSpec, GpuSpec, MigSpec,
    MigStrategy, NodeGpu, ToolkitSpec,
};
pub use hosts::{BastionTarget, HostTarget};
pub use manifest::Manifest;
pub use node::{Arch, Node, NodeSpec, Role, Taint, TaintEffect};
pub use parse::{Documents, load, load_installed, parse, parse_all};
pub use serving::{DEFAULT_SERVING_NAMESPACE, ServingSpec, ServingStatus};
pub use ssh::{
    BastionSpec, ConfigMapKeyRef, DEFAULT_PASSWORD_KEY, DEFAULT_SECRET_KEY, DEFAULT_SSH_PORT,
    DEFAULT_SSH_USER, LocalObjectRef, NodeSshSpec, SecretKeyRef, SshSpec,
};
pub use status::{
    ClusterPhase, ClusterStatus, Condition, GpuFacts, NodeCounts, NodeFacts, NodePhase, NodeStatus,
    NodeVersions, OperationKind, OperationStatus, PhaseTiming,
};
pub use status_gpu::{KvmState, NodeGpuStatus, SecureBootState, fabric_summary, mig_summary};
pub use validate::ValidateFor;
pub use version::{
    MAX_KUBERNETES_VERSION_LEN, MAX_UPGRADE_UNAVAILABLE, SUPPORTED_CONTAINERD_LINES,
    SUPPORTED_ETCD_LINES, SUPPORTED_KUBERNETES_MINORS, parse_kubernetes_version,
};
