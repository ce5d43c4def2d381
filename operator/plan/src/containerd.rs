//! Where containerd comes from and which of a bundle's containerd entries serves a spec: a
//! bundle may carry containerd as a release archive and as OS packages, in several versions.
//! The spec's `source` picks the kind and its release line (major.minor) the version.

use serde::Deserialize;

use crate::{
    bundle::{BundleFile, FileKind, Manifest},
    context::ClusterContext,
};

/// The bundle name of containerd, as a package and as an archive.
pub const CONTAINERD: &str = "containerd";

/// Where containerd and runc come from (`spec.containerRuntime.source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerdSource {
    /// Upstream's release archive unpacked into /usr/local, runc as /usr/local/sbin/runc and
    /// kubegrid's own systemd unit.
    #[default]
    Archive,
    /// The bundle's .deb or .rpm packages.
    Packages,
}

impl ContainerdSource {
    /// As the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerdSource::Archive => "archive",
            ContainerdSource::Packages => "packages",
        }
    }

    /// Whether a bundle file of `kind` is containerd from this source.
    pub fn takes(self, kind: FileKind) -> bool {
        match self {
            ContainerdSource::Archive => kind == FileKind::Archive,
            ContainerdSource::Packages => matches!(kind, FileKind::Deb | FileKind::Rpm),
        }
    }

    /// What this source installs from, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ContainerdSource::Archive => "a release archive (kind archive)",
            ContainerdSource::Packages => "OS packages (kind deb or rpm)",
        }
    }
}

/// The upstream major.minor of a bundle entry's version: Debian's epoch ("1:") and suffixes
/// ("~ds1-1+deb12u3") aside, so "1.6.20~ds1-1+deb12u3" is (1, 6) and "2.1.9" is (2, 1).
pub fn version_line(version: &str) -> Option<(u64, u64)> {
    let upstream = version.rsplit_once(':').map_or(version, |(_, v)| v);
    let upstream = upstream.strip_prefix('v').unwrap_or(upstream);
    let mut parts = upstream.split(['.', '~', '+', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The release line a bundle entry named `name` must be on for this cluster: containerd's
/// follows the spec; other names take whatever the bundle carries.
pub fn pinned_line(cluster: &ClusterContext, name: &str) -> Option<(u64, u64)> {
    (name == CONTAINERD).then_some((cluster.containerd.major, cluster.containerd.minor))
}

/// Whether `file` is on `line` (always, without a line).
pub fn on_line(file: &BundleFile, line: Option<(u64, u64)>) -> bool {
    line.is_none_or(|l| file.version.as_deref().and_then(version_line) == Some(l))
}

/// The bundle's containerd of the cluster's source (archive or packages) on its line, for a
/// host of `arch`: the version an upgrade moves containerd to.
pub fn containerd_file<'a>(
    cluster: &ClusterContext,
    bundle: &'a Manifest,
    arch: &str,
) -> Option<&'a BundleFile> {
    let line = (cluster.containerd.major, cluster.containerd.minor);
    bundle.files.iter().find(|f| {
        f.name.as_deref() == Some(CONTAINERD)
            && cluster.containerd_source.takes(f.kind)
            && f.arch.serves(arch)
            && on_line(f, Some(line))
    })
}

/// Every containerd version the bundle carries of the cluster's source, for `arch`.
pub fn containerd_versions(cluster: &ClusterContext, bundle: &Manifest, arch: &str) -> Vec<String> {
    bundle
        .files
        .iter()
        .filter(|f| {
            f.name.as_deref() == Some(CONTAINERD)
                && cluster.containerd_source.takes(f.kind)
                && f.arch.serves(arch)
        })
        .filter_map(|f| f.version.clone())
        .collect()
}

/// What is wrong with the bundle's containerd for the spec's source and line, naming every
/// containerd the bundle has; None when an entry of the source's kind is on the line (for the
/// arch each Node needs, which [`crate::needs::missing`] checks). Checked before any host is
/// contacted.
pub fn containerd_problem(cluster: &ClusterContext, bundle: &Manifest) -> Option<String> {
    let source = cluster.containerd_source;
    let line = (cluster.containerd.major, cluster.containerd.minor);
    let all: Vec<&BundleFile> = bundle
        .files
        .iter()
        .filter(|f| f.name.as_deref() == Some(CONTAINERD))
        .collect();
    if all
        .iter()
        .any(|f| source.takes(f.kind) && on_line(f, Some(line)))
    {
        return None;
    }
    let seen = if all.is_empty() {
        "no containerd at all".to_string()
    } else {
        let mut seen: Vec<String> = all
            .iter()
            .map(|f| {
                format!(
                    "containerd {} ({} {}, {})",
                    f.version.as_deref().unwrap_or("without a version"),
                    f.kind.as_str(),
                    f.arch.as_str(),
                    f.path.display()
                )
            })
            .collect();
        seen.sort();
        seen.dedup();
        seen.join(", ")
    };
    let other = match source {
        ContainerdSource::Archive => ContainerdSource::Packages,
        ContainerdSource::Packages => ContainerdSource::Archive,
    };
    let mut hint = format!(
        "use a bundle with containerd {}.{} as {}",
        line.0,
        line.1,
        source.describe()
    );
    let lines_of = |s: ContainerdSource| -> Vec<String> {
        let mut v: Vec<String> = all
            .iter()
            .filter(|f| s.takes(f.kind))
            .filter_map(|f| f.version.as_deref().and_then(version_line))
            .map(|(a, b)| format!("{a}.{b}"))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let same = lines_of(source);
    if !same.is_empty() {
        hint.push_str(&format!(
            ", or set spec.containerRuntime.containerd.version to {}",
            same.join(" or ")
        ));
    }
    if all
        .iter()
        .any(|f| other.takes(f.kind) && on_line(f, Some(line)))
    {
        hint.push_str(&format!(
            ", or set spec.containerRuntime.source to {} (the bundle has {}.{} that way)",
            other.as_str(),
            line.0,
            line.1
        ));
    }
    Some(format!(
        "spec.containerRuntime asks for containerd {}.{} from {} (source: {}), but the bundle has {seen}; hint: {hint}",
        line.0,
        line.1,
        source.describe(),
        source.as_str(),
    ))
}

#[cfg(test)]
mod tests;
