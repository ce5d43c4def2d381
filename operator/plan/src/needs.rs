//! What a bundle must hold for an operation, worked out from the spec alone so a bundle that
//! cannot serve the Nodes is refused before any host is contacted. Host facts are unknown at
//! that point, so a task whose `when:` depends on them (OS family, whether a host joined yet)
//! counts as needed, and a package may be a deb or an rpm.

use std::{fmt, path::Path};

use crate::{
    bundle::{Arch, FileKind, Manifest},
    context::{ClusterContext, HostContext},
    error::{Error, Result},
    playbook::{CheckSpec, Module, Playbook},
    predicate::When,
};

/// One artifact a host needs from the bundle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Artifact {
    /// A package (deb or rpm) of this name.
    Package(String),
    /// An executable of this name.
    Binary(String),
    /// An executable of this name in this version (without `v`): etcd and etcdctl when the
    /// cluster names its etcd version.
    VersionedBinary(String, String),
    /// An archive of this name.
    Archive(String),
    /// The test-container root filesystem.
    Rootfs,
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Artifact::Package(n) => write!(f, "package {n}"),
            Artifact::Binary(n) => write!(f, "binary {n}"),
            Artifact::VersionedBinary(n, v) => write!(f, "binary {n} {v}"),
            Artifact::Archive(n) => write!(f, "archive {n}"),
            Artifact::Rootfs => f.write_str("rootfs"),
        }
    }
}

impl Artifact {
    /// Whether the bundle has this artifact for a host of `arch`.
    pub fn found_in(&self, manifest: &Manifest, arch: &str) -> bool {
        manifest.files.iter().any(|f| {
            f.arch.serves(arch)
                && match self {
                    Artifact::Package(n) => {
                        matches!(f.kind, FileKind::Deb | FileKind::Rpm)
                            && f.name.as_deref() == Some(n)
                    }
                    Artifact::Binary(n) => {
                        f.kind == FileKind::Binary && f.name.as_deref() == Some(n)
                    }
                    Artifact::VersionedBinary(n, v) => {
                        f.kind == FileKind::Binary
                            && f.name.as_deref() == Some(n)
                            && f.version.as_deref().map(crate::bundle::bare) == Some(v.as_str())
                    }
                    Artifact::Archive(n) => {
                        f.kind == FileKind::Archive && f.name.as_deref() == Some(n)
                    }
                    Artifact::Rootfs => f.kind == FileKind::Rootfs,
                }
        })
    }
}

/// An artifact and the first phase that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The phase.
    pub phase: String,
    /// The artifact.
    pub artifact: Artifact,
}

/// The phases an operation runs: all of them, or those up to and including `until`.
pub fn phases_until<'a>(playbook: &'a Playbook, until: Option<&str>) -> &'a [crate::Phase] {
    let end = until
        .and_then(|u| playbook.phases.iter().position(|p| p.name == u))
        .map_or(playbook.phases.len(), |i| i + 1);
    &playbook.phases[..end]
}

/// Every artifact `host` needs from the bundle in the phases up to `until`, each once.
pub fn needs(
    playbook: &Playbook,
    until: Option<&str>,
    cluster: &ClusterContext,
    host: &HostContext,
) -> Vec<Need> {
    let mut out: Vec<Need> = Vec::new();
    for phase in phases_until(playbook, until) {
        if !phase.hosts.selects(cluster, host) {
            continue;
        }
        for task in &phase.tasks {
            if task
                .when
                .as_ref()
                .is_some_and(|w| may_hold(w, cluster, host) == Some(false))
            {
                continue;
            }
            for artifact in artifacts(&task.module)
                .into_iter()
                .map(|a| pinned(a, cluster))
            {
                if !out.iter().any(|n| n.artifact == artifact) {
                    out.push(Need {
                        phase: phase.name.clone(),
                        artifact,
                    });
                }
            }
        }
    }
    out
}

/// Whether a Kubernetes binary (kubeadm) is among `needs`: then the bundle's Kubernetes
/// version must be the spec's.
pub fn needs_kubernetes(needs: &[Need]) -> bool {
    needs
        .iter()
        .any(|n| n.artifact == Artifact::Binary("kubeadm".into()))
}

fn artifacts(module: &Module) -> Vec<Artifact> {
    match module {
        Module::Packages(p) => p.bundle.iter().cloned().map(Artifact::Package).collect(),
        Module::Binaries(b) => b.bundle.iter().cloned().map(Artifact::Binary).collect(),
        Module::Archive(a) => vec![Artifact::Archive(a.bundle.clone())],
        Module::Check(CheckSpec::ContainerRuns { .. } | CheckSpec::GpuContainer { .. }) => {
            vec![Artifact::Rootfs]
        }
        Module::NvidiaRunfile(r) => vec![Artifact::Binary(r.bundle.clone())],
        _ => Vec::new(),
    }
}

/// etcd and etcdctl in the cluster's etcd version when it names one, as compiling picks them.
/// Kubernetes binaries stay unversioned here: the engine's bundle check compares the spec's
/// Kubernetes version with the bundle's on its own.
fn pinned(artifact: Artifact, cluster: &ClusterContext) -> Artifact {
    match (artifact, &cluster.etcd_version) {
        (Artifact::Binary(n), Some(v)) if crate::bundle::ETCD_BINARIES.contains(&n.as_str()) => {
            Artifact::VersionedBinary(n, v.to_string())
        }
        (a, _) => a,
    }
}

/// `when:` with what only the host can tell unknown: Some(answer) when the spec decides it,
/// None when it depends on facts gathered after connecting.
fn may_hold(when: &When, cluster: &ClusterContext, host: &HostContext) -> Option<bool> {
    match when {
        When::OsFamily(_) | When::Joined(_) | When::Initialized(_) | When::JoinsPending(_) => None,
        // Facts decide these (NVIDIA devices, NVSwitches, a loaded nouveau).
        When::Gpu(_) | When::Nvswitch(_) | When::NouveauLoaded(_) => None,
        When::Arch(_) if host.facts.arch.is_empty() => None,
        // Whether a host can create a VM is a fact; without a kata handler the answer is no.
        When::Kata(_) if cluster.has_kata() => None,
        When::All(all) => {
            let answers: Vec<Option<bool>> =
                all.iter().map(|w| may_hold(w, cluster, host)).collect();
            if answers.contains(&Some(false)) {
                Some(false)
            } else if answers.iter().all(|a| *a == Some(true)) {
                Some(true)
            } else {
                None
            }
        }
        When::Any(any) => {
            let answers: Vec<Option<bool>> =
                any.iter().map(|w| may_hold(w, cluster, host)).collect();
            if answers.contains(&Some(true)) {
                Some(true)
            } else if answers.iter().all(|a| *a == Some(false)) {
                Some(false)
            } else {
                None
            }
        }
        When::Not(inner) => may_hold(inner, cluster, host).map(|b| !b),
        other => Some(other.eval(cluster, host)),
    }
}

/// One Node as the up-front bundle check sees it.
#[derive(Debug, Clone)]
pub struct NodeNeeds {
    /// Node name.
    pub name: String,
    /// The arch the spec declares; None when the spec leaves it to the host's facts.
    pub arch: Option<String>,
    /// What the Node needs (from [`needs`]).
    pub needs: Vec<Need>,
}

/// Arches a Node of undeclared arch may turn out to have.
const KNOWN_ARCHES: [&str; 2] = ["amd64", "arm64"];

/// Lines saying what each Node lacks in the bundle, grouped by Nodes that lack the same; empty
/// when every Node is served. A Node without a declared arch is served when one arch has all
/// it needs.
pub fn missing(manifest: &Manifest, nodes: &[NodeNeeds]) -> Vec<String> {
    // (arch label, missing list) -> Node names, in the order Nodes first show each.
    let mut groups: Vec<((String, String), Vec<&str>)> = Vec::new();
    for node in nodes {
        let arches: Vec<&str> = match &node.arch {
            Some(a) => vec![a.as_str()],
            None => KNOWN_ARCHES.to_vec(),
        };
        let lacks: Vec<(&str, Vec<&Need>)> = arches
            .iter()
            .map(|arch| {
                let lacking = node
                    .needs
                    .iter()
                    .filter(|n| !n.artifact.found_in(manifest, arch))
                    .collect();
                (*arch, lacking)
            })
            .collect();
        if lacks.iter().any(|(_, l)| l.is_empty()) {
            continue;
        }
        // The arch that comes closest says the most about what to add.
        let Some((arch, lacking)) = lacks.into_iter().min_by_key(|(_, l)| l.len()) else {
            continue;
        };
        let mut label = if node.arch.is_some() {
            arch.to_string()
        } else {
            format!("arch not declared; closest: {arch}")
        };
        if !manifest
            .files
            .iter()
            .any(|f| f.arch != Arch::All && f.arch.serves(arch))
        {
            label.push_str(&format!("; the bundle has no files for {arch}"));
        }
        // In phase order, each phase once: "in phase a: x, y; in phase b: z".
        let mut by_phase: Vec<(&str, Vec<String>)> = Vec::new();
        for n in &lacking {
            match by_phase.iter_mut().find(|(p, _)| *p == n.phase) {
                Some((_, list)) => list.push(n.artifact.to_string()),
                None => by_phase.push((&n.phase, vec![n.artifact.to_string()])),
            }
        }
        let list = by_phase
            .iter()
            .map(|(phase, list)| format!("in phase {phase}: {}", list.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        let key = (label, list);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(&node.name),
            None => groups.push((key, vec![&node.name])),
        }
    }
    groups
        .into_iter()
        .map(|((label, list), names)| {
            let (noun, verb) = if names.len() == 1 {
                ("Node", "needs")
            } else {
                ("Nodes", "need")
            };
            format!("{noun} {} ({label}) {verb}, {list}", names.join(", "))
        })
        .collect()
}

/// Most entries [`listing`] shows; a bundle with OS packages holds hundreds.
const LISTING_MAX: usize = 40;

/// "kind name version (arch)" for every file in the bundle, for error messages.
pub fn listing(manifest: &Manifest) -> String {
    if manifest.files.is_empty() {
        return "no files".into();
    }
    let mut entries: Vec<String> = manifest
        .files
        .iter()
        .map(|f| {
            let mut s = f.kind.as_str().to_string();
            if let Some(n) = &f.name {
                s.push(' ');
                s.push_str(n);
            }
            if let Some(v) = &f.version {
                s.push(' ');
                s.push_str(v);
            }
            format!("{s} ({})", f.arch.as_str())
        })
        .collect();
    entries.sort();
    entries.dedup();
    let more = entries.len().saturating_sub(LISTING_MAX);
    entries.truncate(LISTING_MAX);
    if more > 0 {
        entries.push(format!("and {more} more"));
    }
    entries.join(", ")
}

/// The arches the bundle has files for (architecture-independent files aside).
pub fn arches(manifest: &Manifest) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = manifest
        .files
        .iter()
        .filter(|f| f.arch != Arch::All)
        .map(|f| f.arch.as_str())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The bundle's Kubernetes version: the manifest's `kubernetes`, else kubeadm's version;
/// without the leading `v`.
pub fn kubernetes_version(manifest: &Manifest) -> Option<String> {
    manifest
        .kubernetes
        .clone()
        .or_else(|| {
            manifest
                .files
                .iter()
                .find(|f| f.kind == FileKind::Binary && f.name.as_deref() == Some("kubeadm"))
                .and_then(|f| f.version.clone())
        })
        .map(|v| v.strip_prefix('v').unwrap_or(&v).to_string())
}

/// The refusal for a bundle that does not fit the spec: every problem on its own line, what
/// the bundle has, and a hint.
pub fn mismatch(dir: &Path, problems: Vec<String>, manifest: &Manifest, hint: String) -> Error {
    Error::BundleMismatch {
        dir: dir.to_path_buf(),
        problems: problems
            .iter()
            .map(|p| format!("\n  - {p}"))
            .collect::<String>(),
        has: listing(manifest),
        hint,
    }
}

/// Checks the result of [`missing`] and the version lines together; Ok when there is nothing.
pub fn refuse_if_any(
    dir: &Path,
    problems: Vec<String>,
    manifest: &Manifest,
    hint: impl FnOnce() -> String,
) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(mismatch(dir, problems, manifest, hint()))
    }
}

#[cfg(test)]
mod tests;
