//! What the compiler knows about the cluster and about one host: the input of templates and
//! `when:` predicates. The lead crate fills these from the spec types, so this crate does not
//! depend on them.

use kubegrid_agent::facts::Facts;
use semver::Version;
use serde::Serialize;

use std::collections::BTreeMap;

use crate::{
    error::{Error, Result},
    kubernetes::{INIT_DONE, JOIN_DONE, KubernetesContext},
    registry::{BUNDLE_REGISTRY_MIRRORED, BundleRegistry},
};

/// The sandbox image used when no Kubernetes version picks one.
pub const DEFAULT_SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Where containerd looks for per-registry `hosts.toml` files.
pub const REGISTRY_CONFIG_PATH: &str = "/etc/containerd/certs.d";

/// kubeadm's pinned pause tag per Kubernetes minor (its `constants.PauseVersion`). The sandbox
/// image must match it, or kubeadm warns and offline registries lack the image.
const PAUSE_TAGS: &[((u64, u64), &str)] = &[
    ((1, 29), "3.9"),
    ((1, 30), "3.9"),
    ((1, 31), "3.10"),
    ((1, 32), "3.10"),
    ((1, 33), "3.10"),
    ((1, 34), "3.10.1"),
    ((1, 35), "3.10.1"),
    ((1, 36), "3.10.2"),
];

/// Kata shims kata-deploy ships a handler for (`kata-<shim>`).
const KATA_SHIMS: &[&str] = &[
    "qemu",
    "clh",
    "fc",
    "dragonball",
    "qemu-tdx",
    "qemu-snp",
    "qemu-se",
    "qemu-coco-dev",
    "qemu-nvidia-gpu",
    "qemu-runtime-rs",
    "clh-runtime-rs",
];

/// Cluster-wide inputs of templates and predicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterContext {
    /// Cluster name.
    pub name: String,
    /// The containerd version line ("1.7" is 1.7.0); picks the config format and `when:
    /// {containerd: ...}` predicates compare against it.
    pub containerd: Version,
    /// Where containerd and runc come from; `when: {containerd_source: ...}` tests it.
    pub containerd_source: crate::containerd::ContainerdSource,
    /// Enabled runtime handlers: "runc", "nvidia", "gvisor", "crun", `kata-<shim>` (runc is
    /// always configured).
    pub runtimes: Vec<String>,
    /// The handler CRI uses when a pod names none.
    pub default_runtime: String,
    /// The pod sandbox (pause) image.
    pub sandbox_image: String,
    /// The user's registry mirrors, written as certs.d `hosts.toml` files.
    pub registry_mirrors: Vec<RegistryMirror>,
    /// The registry kubegrid runs from the bundle; when set, every host pulls the
    /// [`BUNDLE_REGISTRY_MIRRORED`] registries from it (see [`ClusterContext::mirrors`]).
    pub bundle_registry: Option<BundleRegistry>,
    /// Kubernetes bootstrap inputs; None for an operation that only prepares hosts.
    pub kubernetes: Option<KubernetesContext>,
    /// The etcd version to install from the bundle (etcd and etcdctl); None: the newest the
    /// bundle has for the host's arch.
    pub etcd_version: Option<Version>,
    /// `Cluster.spec.gpu`; None: the cluster installs no GPU stack.
    pub gpu: Option<crate::gpu::GpuContext>,
    /// `Cluster.spec.serving`; None: kubegrid deploys no serving layer.
    pub serving: Option<crate::serving::ServingContext>,
}

impl ClusterContext {
    /// A runc-only cluster on the given containerd line ("1.7", "2.1" or a full version),
    /// with the default sandbox image and no mirrors.
    pub fn new(name: impl Into<String>, containerd_line: &str) -> Result<Self> {
        Ok(ClusterContext {
            name: name.into(),
            containerd: parse_containerd_line(containerd_line)?,
            containerd_source: Default::default(),
            runtimes: vec!["runc".into()],
            default_runtime: "runc".into(),
            sandbox_image: DEFAULT_SANDBOX_IMAGE.into(),
            registry_mirrors: Vec::new(),
            bundle_registry: None,
            kubernetes: None,
            etcd_version: None,
            gpu: None,
            serving: None,
        })
    }

    /// kubeadm's pause image for a Kubernetes version, so the sandbox image matches what
    /// kubeadm pulls; an unknown minor is an error rather than a guess.
    pub fn sandbox_image_for(kubernetes: &Version) -> Result<String> {
        PAUSE_TAGS
            .iter()
            .find(|((major, minor), _)| *major == kubernetes.major && *minor == kubernetes.minor)
            .map(|(_, tag)| format!("registry.k8s.io/pause:{tag}"))
            .ok_or_else(|| Error::UnknownKubernetesMinor {
                version: kubernetes.to_string(),
                known: PAUSE_TAGS
                    .iter()
                    .map(|((ma, mi), _)| format!("{ma}.{mi}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether `host` runs (or ran) `kubeadm init`.
    pub fn is_init_node(&self, host: &HostContext) -> bool {
        self.kubernetes
            .as_ref()
            .is_some_and(|k| k.init_node == host.name)
    }

    /// Every certs.d mirror: the user's, then the bundle registry's.
    pub fn mirrors(&self) -> Vec<RegistryMirror> {
        let mut all = self.registry_mirrors.clone();
        if let Some(registry) = &self.bundle_registry {
            all.extend(registry.mirrors());
        }
        all
    }

    /// Whether `host` runs the bundle registry.
    pub fn is_bundle_registry_host(&self, host: &HostContext) -> bool {
        self.bundle_registry
            .as_ref()
            .is_some_and(|r| r.host == host.name)
    }

    /// Whether a runtime handler is enabled; runc always is.
    pub fn has_runtime(&self, runtime: &str) -> bool {
        runtime == "runc" || self.runtimes.iter().any(|r| r == runtime)
    }

    /// Whether a `kata-<shim>` handler is enabled.
    pub fn has_kata(&self) -> bool {
        self.runtimes.iter().any(|r| r.starts_with("kata-"))
    }

    /// Checks what templates rely on: known runtime names, a default that is enabled, a
    /// sandbox image, mirror names that are safe as directory names, and a bundle registry
    /// that no user mirror competes with.
    pub fn validate(&self) -> Result<()> {
        let invalid = |problem: String| Err(Error::InvalidContext { problem });
        for runtime in &self.runtimes {
            let known = matches!(runtime.as_str(), "runc" | "nvidia" | "gvisor" | "crun")
                || runtime
                    .strip_prefix("kata-")
                    .is_some_and(|shim| KATA_SHIMS.contains(&shim));
            if !known {
                return invalid(format!(
                    "unknown runtime `{runtime}`; expected runc, nvidia, gvisor, crun or kata-<shim> with shim one of {}",
                    KATA_SHIMS.join(", ")
                ));
            }
        }
        if !self.has_runtime(&self.default_runtime) {
            return invalid(format!(
                "default runtime `{}` is not among the enabled runtimes ({})",
                self.default_runtime,
                self.runtimes.join(", ")
            ));
        }
        if self.sandbox_image.trim().is_empty() {
            return invalid("the sandbox image is empty".into());
        }
        let mut seen = Vec::new();
        for mirror in &self.registry_mirrors {
            mirror.validate()?;
            if seen.contains(&&mirror.registry) {
                return invalid(format!(
                    "registry `{}` has two mirror entries; merge their endpoints",
                    mirror.registry
                ));
            }
            seen.push(&mirror.registry);
        }
        if let Some(registry) = &self.bundle_registry {
            registry.validate()?;
            if let Some(mirror) = self
                .registry_mirrors
                .iter()
                .find(|m| BUNDLE_REGISTRY_MIRRORED.contains(&m.registry.as_str()))
            {
                return invalid(format!(
                    "registry `{}` has a mirror of its own, but the bundle registry on {} serves it; drop the mirror or the bundle registry",
                    mirror.registry, registry.host
                ));
            }
        }
        if let Some(k) = &self.kubernetes {
            k.validate()?;
        }
        if let Some(gpu) = &self.gpu {
            gpu.validate()?;
        }
        Ok(())
    }
}

/// Parses a containerd version line: "1.7" means 1.7.0; a full "1.7.24" is kept as is.
pub fn parse_containerd_line(line: &str) -> Result<Version> {
    let trimmed = line.trim().trim_start_matches('v');
    let full = if trimmed.matches('.').count() == 1 {
        format!("{trimmed}.0")
    } else {
        trimmed.to_string()
    };
    let version = Version::parse(&full).map_err(|e| Error::InvalidContext {
        problem: format!(
            "containerd version line `{line}` is not a version like \"1.7\" or \"2.1\": {e}"
        ),
    })?;
    if !(1..=2).contains(&version.major) {
        return Err(Error::InvalidContext {
            problem: format!(
                "containerd version line `{line}` is not supported; expected a 1.x or 2.x line"
            ),
        });
    }
    Ok(version)
}

/// Pull mirrors for one upstream registry, written to `<certs.d>/<registry>/hosts.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryMirror {
    /// Upstream registry host ("registry.k8s.io", "docker.io"), or "_default" for every
    /// registry not listed.
    pub registry: String,
    /// Mirror URLs tried in order (`https://mirror.local:5000`).
    pub endpoints: Vec<String>,
    /// Upstream to fall back to after the mirrors; None forbids falling back (air-gapped).
    pub server: Option<String>,
    /// CA bundle on the host for the mirrors' TLS certificates.
    pub ca_file: Option<String>,
    /// Skip TLS verification of the mirrors (lab registries with self-signed certs).
    pub skip_verify: bool,
    /// The endpoints' URL paths are the registry API root (containerd's `override_path`):
    /// `https://reg:5000/v2/docker.io` serves docker.io's repositories under a prefix.
    pub override_path: bool,
}

impl RegistryMirror {
    /// Mirrors for `registry` that fall back to the registry itself, as containerd would
    /// reach it without a hosts.toml.
    pub fn new(registry: impl Into<String>, endpoints: Vec<String>) -> Self {
        let registry = registry.into();
        let server = match registry.as_str() {
            "_default" => None,
            "docker.io" => Some("https://registry-1.docker.io".to_string()),
            other => Some(format!("https://{other}")),
        };
        RegistryMirror {
            registry,
            endpoints,
            server,
            ca_file: None,
            skip_verify: false,
            override_path: false,
        }
    }

    /// The registry name becomes a directory under certs.d, so only `host[:port]` characters
    /// are allowed; endpoints must be URLs.
    pub fn validate(&self) -> Result<()> {
        let name_ok = !self.registry.is_empty()
            && self.registry != "."
            && self.registry != ".."
            && self
                .registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !name_ok {
            return Err(Error::InvalidContext {
                problem: format!(
                    "registry mirror name `{}` is not a registry host (letters, digits, '.', '-', '_', ':') or `_default`",
                    self.registry
                ),
            });
        }
        if self.endpoints.is_empty() {
            return Err(Error::InvalidContext {
                problem: format!("registry mirror `{}` has no endpoints", self.registry),
            });
        }
        let urls = self.endpoints.iter().chain(self.server.iter());
        for url in urls {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(['"', '\\', '\n', ' ']);
            if !ok {
                return Err(Error::InvalidContext {
                    problem: format!(
                        "registry mirror `{}` has `{url}`, which is not an http(s) URL",
                        self.registry
                    ),
                });
            }
        }
        Ok(())
    }
}

/// One host as the compiler sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostContext {
    /// Host (Node) name.
    pub name: String,
    /// Roles: "control-plane", "etcd", "worker".
    pub roles: Vec<String>,
    /// Facts gathered from the host.
    pub facts: Facts,
    /// The address kubegrid reaches it at; also the kubelet's node IP and the API server's
    /// advertise address.
    pub address: String,
    /// Kubernetes labels for its Node object.
    pub labels: BTreeMap<String, String>,
    /// Kubernetes taints for its Node object.
    pub taints: Vec<TaintContext>,
    /// Certificate sets kubegrid's PKI issued for the host, by set name ("etcd",
    /// "control-plane"); `pki_files:` tasks write them.
    pub pki: BTreeMap<String, Vec<PkiFile>>,
    /// A GPU Node: Node.spec.gpu is `nvidia`, or `auto` and the facts found NVIDIA devices,
    /// and the cluster's spec has a `gpu` section. `hosts: gpu` phases and `when: {gpu: ..}`
    /// read it.
    pub gpu: bool,
}

/// A certificate or key file to place on a host.
#[derive(Clone, PartialEq, Eq)]
pub struct PkiFile {
    /// Absolute path.
    pub path: std::path::PathBuf,
    /// PEM text.
    pub content: String,
    /// Permission bits (0600 for keys).
    pub mode: u32,
}

/// A taint as kubeadm's `nodeRegistration.taints` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaintContext {
    /// Key.
    pub key: String,
    /// Value; None for a key-only taint.
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

impl HostContext {
    /// Whether the host has a role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the host finished `kubeadm init` or `kubeadm join`.
    pub fn joined(&self) -> bool {
        self.has_path(JOIN_DONE) || self.has_path(INIT_DONE)
    }

    /// Whether `kubeadm init` finished on this host.
    pub fn initialized(&self) -> bool {
        self.has_path(INIT_DONE)
    }

    /// Whether a path the facts phase probed exists.
    pub fn has_path(&self, path: &str) -> bool {
        self.facts.paths.get(path).copied().unwrap_or(false)
    }

    /// The interface that carries the host's address (kube-vip announces the VIP there).
    pub fn interface_for_address(&self) -> Option<&str> {
        self.facts
            .interfaces
            .iter()
            .find(|i| {
                i.addresses
                    .iter()
                    .any(|a| a.split('/').next() == Some(self.address.as_str()))
            })
            .map(|i| i.name.as_str())
    }

    /// The OS family from os-release's ID and ID_LIKE, as `when: {os_family: ...}` sees it.
    pub fn os_family(&self) -> Option<OsFamily> {
        let ids = std::iter::once(&self.facts.os_id).chain(&self.facts.os_like);
        let mut family = None;
        for id in ids {
            match id.as_str() {
                "debian" | "ubuntu" => return Some(OsFamily::Debian),
                "rhel" | "centos" | "fedora" | "rocky" | "almalinux" => {
                    family = Some(OsFamily::Rhel)
                }
                _ => {}
            }
        }
        family
    }
}

// Private keys must not reach logs or panic messages through a Debug of a host context.
impl std::fmt::Debug for PkiFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiFile")
            .field("path", &self.path)
            .field("content", &format_args!("[{} bytes]", self.content.len()))
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// OS families that differ in how kubegrid installs things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsFamily {
    /// Debian, Ubuntu: .deb packages.
    Debian,
    /// RHEL, Rocky, Alma, CentOS, Fedora: .rpm packages.
    Rhel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines_parse_and_bad_ones_are_rejected() {
        assert_eq!(parse_containerd_line("1.7").unwrap(), Version::new(1, 7, 0));
        assert_eq!(
            parse_containerd_line("v2.1.4").unwrap(),
            Version::new(2, 1, 4)
        );
        let err = parse_containerd_line("seven").unwrap_err().to_string();
        assert!(err.contains("`seven`"), "{err}");
        assert!(parse_containerd_line("3.0").is_err());
    }

    #[test]
    fn sandbox_image_follows_kubeadm() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(
            ClusterContext::sandbox_image_for(&v("1.31.4")).unwrap(),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(
            ClusterContext::sandbox_image_for(&v("1.34.0")).unwrap(),
            "registry.k8s.io/pause:3.10.1"
        );
        let err = ClusterContext::sandbox_image_for(&v("1.20.0"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1.20.0") && err.contains("1.31"), "{err}");
    }

    #[test]
    fn validation_names_the_bad_part() {
        let mut c = ClusterContext::new("c", "1.7").unwrap();
        c.validate().unwrap();
        c.runtimes.push("kata-bogus".into());
        assert!(c.validate().unwrap_err().to_string().contains("kata-bogus"));
        c.runtimes = vec!["runc".into()];
        c.default_runtime = "nvidia".into();
        assert!(c.validate().unwrap_err().to_string().contains("`nvidia`"));
        c.default_runtime = "runc".into();
        c.registry_mirrors = vec![RegistryMirror::new("../etc", vec!["https://m".into()])];
        assert!(c.validate().unwrap_err().to_string().contains("../etc"));
    }

    #[test]
    fn os_family_uses_id_like() {
        let mut host = HostContext {
            name: "h".into(),
            roles: vec![],
            facts: Facts::default(),
            ..Default::default()
        };
        assert_eq!(host.os_family(), None);
        host.facts.os_id = "rocky".into();
        host.facts.os_like = vec!["rhel".into(), "centos".into(), "fedora".into()];
        assert_eq!(host.os_family(), Some(OsFamily::Rhel));
        host.facts.os_id = "ubuntu".into();
        host.facts.os_like = vec!["debian".into()];
        assert_eq!(host.os_family(), Some(OsFamily::Debian));
    }
}
