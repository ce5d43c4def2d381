//! kubegrid's plan compiler: playbooks, tera templates and the offline bundle manifest,
//! turned into typed agent tasks.
//!
//! - A [`Playbook`] (embedded from playbooks/, or loaded from a directory while developing)
//!   lists phases of typed tasks with typed `when:` predicates.
//! - Templates from templates/ are embedded ([`TEMPLATES`]) and rendered on the engine side
//!   with the [`ClusterContext`] and the [`HostContext`] (facts included).
//! - A [`Bundle`] is a verified offline-bundle directory; packages and the test rootfs
//!   resolve against it for the host's arch.
//! - [`compile`] turns all of that into one [`PhasePlan`] per phase for one host.
//!
//! No network, no SSH and no spec types here: the engine gathers facts and glues the spec to
//! the context structs.

mod bundle;
mod cluster_objects;
mod compile;
mod containerd;
mod context;
mod error;
mod gpu;
mod gpu_host;
mod keda;
mod kube_modules;
mod kubernetes;
pub mod needs;
mod playbook;
mod predicate;
mod reboot;
mod registry;
mod runtimes;
mod serving;
mod templates;

pub use bundle::{
    Arch, Bundle, BundleFile, ETCD_BINARIES, FileKind, IMAGES_DIR, KUBERNETES_BINARIES,
    MANIFEST_FILE, MANIFEST_VERSION, MANIFEST_VERSION_2, MANIFEST_VERSIONS, Manifest,
    ManifestImage, is_sha256_digest, is_sha256_hex, read_manifest, sha256_file,
};
pub use compile::{
    CONFLICTING_PACKAGES, CONFLICTING_PATHS, PREFLIGHT_DISKS, PhasePlan, compile, facts_probes,
    vip_probe,
};
pub use containerd::{
    CONTAINERD, ContainerdSource, containerd_file, containerd_problem, containerd_versions,
    on_line, pinned_line, version_line,
};
pub use context::{
    ClusterContext, DEFAULT_SANDBOX_IMAGE, HostContext, OsFamily, PkiFile, REGISTRY_CONFIG_PATH,
    RegistryMirror, TaintContext, parse_containerd_line,
};
pub use error::{Error, Result};
pub use gpu::{
    CRUN_RUNTIME_LABEL, DCGM_EXPORTER_IMAGE, DEVICE_PLUGIN_IMAGE, DEVICE_PLUGINS, DRIVER_SOURCES,
    FABRIC_MANAGER_MODES, GPU_COUNT_LABEL, GPU_DRIVER_LABEL, GPU_OBJECT_TEMPLATES,
    GPU_OBJECTS_NAMESPACE, GPU_OPERATOR_CHART, GPU_OPERATOR_CHART_REPO, GPU_OPERATOR_CHART_VERSION,
    GPU_PRESENT_LABEL, GPU_PRODUCT_LABEL, GVISOR_RUNTIME_LABEL, GpuContext, GpuImages, GpuObjects,
    ImageRef, KATA_RUNTIME_LABEL, MIG_STRATEGIES, cluster_objects, dcgm_exporter, device_plugin,
    gpu_node_labels, gpu_operator_values, kata_node_labels, label_value, runtime_classes,
    runtime_node_labels, runtime_overhead,
};
pub use gpu_host::{
    CDI_SPEC, DriverSource, FABRIC_MANAGER_UNIT, NOUVEAU_BLACKLIST, NvidiaRunfileSpec,
    PERSISTENCED_UNIT, fabric_manager_required,
};
pub use keda::{KEDA_COMPONENT, KEDA_KINDS, KedaContext};
pub use kubernetes::{
    ADMIN_CONF, API_SERVER_BIND_PORT, CLUSTER_CA_CERT, ETCD_CA_CERT, ETCD_CLIENT_PORT,
    ETCD_PEER_PORT, ETCD_UNIT, EtcdContext, EtcdMember, INIT_DONE, JOIN_DONE, JoinSecrets,
    KUBE_VIP_IMAGE, KUBEGRID_ETC, KUBELET_CONF, KUBERNETES_PATHS, KubernetesContext, etcd_peer_url,
};
pub use playbook::{
    ArchiveSpec, Batch, BinariesSpec, CheckSpec, CniManifestSpec, CommandSpec, FileSpec,
    HostSelector, Mode, Module, PLAYBOOKS, PackagesSpec, Phase, PkiFilesSpec, Playbook,
    RegistryHostsSpec, TaskSpec, TemplatedFileSpec, UnitSpec,
};
pub use predicate::{Role, When};
pub use reboot::{DEFAULT_REBOOT_TIMEOUT, RebootPlan, RebootSpec};
pub use registry::{
    BUNDLE_REGISTRY_MARKER, BUNDLE_REGISTRY_MIRRORED, BundleRegistry, REGISTRY_BINARY,
    REGISTRY_BUNDLE_NAME, REGISTRY_CA_CERT, REGISTRY_CA_SET, REGISTRY_CERT, REGISTRY_CONFIG,
    REGISTRY_DATA_DIR, REGISTRY_HTPASSWD, REGISTRY_KEY, REGISTRY_PUSH_CONFIG, REGISTRY_PUSH_SET,
    REGISTRY_PUSH_UNIT, REGISTRY_PUSH_USER, REGISTRY_SET, REGISTRY_UNIT,
};
pub use runtimes::{
    CRUN_BINARY, KATA_SHIM_BINARY, NVIDIA_RUNTIME_BINARY, RUNSC_BINARY, RUNSC_WRAPPER, SkipReason,
    SkippedRuntime, describe_kvm, host_runtimes, runtime_binary, runtime_probe_paths, vm_capable,
};
pub use serving::{KUBEGRID_IMAGE_COMPONENT, ServingContext};
pub use templates::{
    CILIUM_IMAGE, CILIUM_OPERATOR_IMAGE, TEMPLATES, Template, kubelet_may_set_label, render,
    template,
};
