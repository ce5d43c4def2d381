//! Several versions of one binary in a bundle (an e2e bundle with stand-ins for three
//! Kubernetes minors; etcd 3.4 beside 3.5 for an upgrade), and which one a cluster installs:
//! kubeadm, kubelet and kubectl of the cluster's Kubernetes version when the bundle has
//! several, crictl likewise when one of its versions is that, etcd and etcdctl of the
//! cluster's etcd version (the newest when the cluster names none).

use semver::Version;

use super::{Bundle, BundleFile, FileKind};
use crate::{
    context::ClusterContext,
    error::{Error, Result},
};

/// Binaries whose version is the cluster's Kubernetes version.
pub const KUBERNETES_BINARIES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];
/// Binaries whose version is the cluster's etcd version.
pub const ETCD_BINARIES: [&str; 2] = ["etcd", "etcdctl"];

/// A manifest version without a leading `v`.
pub fn bare(v: &str) -> &str {
    v.strip_prefix('v').unwrap_or(v)
}

/// The newest of `versions` by semver; versions that do not parse rank below those that do.
pub fn newest(versions: &[String]) -> Option<&String> {
    versions.iter().max_by_key(|v| Version::parse(bare(v)).ok())
}

impl Bundle {
    /// The versions of the binary `name` the bundle has for a host of `arch`, in manifest
    /// order, each once, without a leading `v`; entries without a version are left out.
    pub fn binary_versions(&self, name: &str, arch: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in self.binaries_named(name, arch) {
            if let Some(v) = f.version.as_deref().map(bare)
                && !out.iter().any(|o| o == v)
            {
                out.push(v.to_string());
            }
        }
        out
    }

    /// The binary `name` of `version` for a host of `arch`; an error naming the versions the
    /// bundle has when it lacks that one.
    pub fn binary_of_version(&self, name: &str, arch: &str, version: &str) -> Result<&BundleFile> {
        let named = self.binaries_named(name, arch);
        if let Some(file) = named
            .iter()
            .find(|f| f.version.as_deref().map(bare) == Some(bare(version)))
        {
            return Ok(file);
        }
        if named.is_empty() {
            // Absent altogether: the usual refusal, which lists what the bundle has.
            return self.binary(name, arch);
        }
        Err(Error::VersionNotInBundle {
            dir: self.dir.clone(),
            what: format!("binary `{name}` for arch {arch}"),
            version: bare(version).to_string(),
            available: self.binary_versions(name, arch).join(", "),
        })
    }

    /// The binary `name` a cluster installs on a host of `arch` (see the module doc).
    pub fn binary_for(
        &self,
        name: &str,
        arch: &str,
        cluster: &ClusterContext,
    ) -> Result<&BundleFile> {
        match pinned_version(self, name, arch, cluster) {
            Some(version) => self.binary_of_version(name, arch, &version),
            None => self.binary(name, arch),
        }
    }

    fn binaries_named(&self, name: &str, arch: &str) -> Vec<&BundleFile> {
        self.manifest
            .files
            .iter()
            .filter(|f| {
                f.kind == FileKind::Binary && f.name.as_deref() == Some(name) && f.arch.serves(arch)
            })
            .collect()
    }
}

/// The version of `name` the cluster asks for, when the choice matters; `None` keeps the one
/// entry a single-version bundle has.
fn pinned_version(
    bundle: &Bundle,
    name: &str,
    arch: &str,
    cluster: &ClusterContext,
) -> Option<String> {
    let versions = bundle.binary_versions(name, arch);
    let kubernetes = cluster.kubernetes.as_ref().map(|k| k.version.to_string());
    if ETCD_BINARIES.contains(&name) {
        return match &cluster.etcd_version {
            Some(v) => Some(v.to_string()),
            None if versions.len() > 1 => newest(&versions).cloned(),
            None => None,
        };
    }
    if versions.len() < 2 {
        return None;
    }
    if KUBERNETES_BINARIES.contains(&name) {
        return kubernetes;
    }
    // crictl follows Kubernetes only when versioned alike (the e2e stand-ins); a real crictl
    // has its own versions, and then the bundle's first is today's choice.
    if name == "crictl" {
        return kubernetes.filter(|k| versions.contains(k));
    }
    None
}
