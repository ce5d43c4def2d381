//! One Cluster with its Nodes, and where relative paths in them resolve.

use std::path::{Path, PathBuf};

use crate::{Cluster, Error, Node, Problem, Result, SourceLine};

/// One Cluster and the Nodes that name it, as read from a spec file or from the API server.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    cluster: Cluster,
    nodes: Vec<Node>,
    spec_dir: PathBuf,
    source: Option<Source>,
}

/// Where the resources came from, so problems can point at their documents.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) cluster_line: usize,
    /// Parallel to `Manifest::nodes`.
    pub(crate) node_lines: Vec<usize>,
    /// The documents' texts, for pointing at a field's line.
    pub(crate) docs: Vec<crate::parse::locate::DocText>,
}

impl Manifest {
    /// Builds a manifest from resources that did not come from a file, e.g. from the API
    /// server. Relative paths in them resolve against `spec_dir`.
    ///
    /// Every Node must name `cluster`; the error lists those that do not.
    pub fn from_resources(cluster: Cluster, nodes: Vec<Node>, spec_dir: &Path) -> Result<Self> {
        let name = name_of(&cluster.metadata.name);
        let problems: Vec<Problem> = nodes
            .iter()
            .filter(|node| node.spec.cluster_name != name)
            .map(|node| Problem {
                location: None,
                resource: format!("Node/{}", name_of(&node.metadata.name)),
                field: "spec.clusterName".into(),
                seen: format!("`{}`", node.spec.cluster_name),
                expected: format!("`{name}`, the Cluster it is applied with"),
            })
            .collect();
        if !problems.is_empty() {
            return Err(Error::Invalid { problems });
        }
        Ok(Self {
            cluster,
            nodes,
            spec_dir: absolute(spec_dir),
            source: None,
        })
    }

    pub(crate) fn from_file(
        cluster: Cluster,
        nodes: Vec<Node>,
        spec_dir: PathBuf,
        source: Source,
    ) -> Self {
        Self {
            cluster,
            nodes,
            spec_dir,
            source: Some(source),
        }
    }

    /// The Cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The Cluster's name.
    pub fn name(&self) -> &str {
        name_of(&self.cluster.metadata.name)
    }

    /// The Nodes, in file order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The absolute directory that relative paths in the spec resolve against.
    pub fn spec_dir(&self) -> &Path {
        &self.spec_dir
    }

    /// The spec file, when the manifest was read from one.
    pub fn path(&self) -> Option<&Path> {
        self.source.as_ref().map(|s| s.path.as_path())
    }

    /// Resolves a path written in the spec: a leading `~/` against `$HOME`, a relative path
    /// against [`Manifest::spec_dir`]. The result is absolute.
    pub fn resolve_path(&self, raw: &str) -> PathBuf {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        resolve(&self.spec_dir, raw, home.as_deref())
    }

    /// The bundle directory named by `spec.bundle.source`, absolute, with `file://`
    /// stripped; `None` when the spec names no bundle (the CLI's `--bundle` supplies it).
    pub fn bundle_dir(&self) -> Option<PathBuf> {
        let source = &self.cluster.spec.bundle.as_ref()?.source;
        let raw = source.strip_prefix("file://").unwrap_or(source);
        Some(self.resolve_path(raw))
    }

    /// The public key file named by `spec.bundle.publicKeyFile`, absolute; `None` when the
    /// spec names none.
    pub fn bundle_public_key_file(&self) -> Option<PathBuf> {
        let raw = self
            .cluster
            .spec
            .bundle
            .as_ref()?
            .public_key_file
            .as_ref()?;
        Some(self.resolve_path(raw))
    }

    /// The texts of the documents the resources came from; empty when not from a file.
    pub(crate) fn source_docs(&self) -> &[crate::parse::locate::DocText] {
        self.source.as_ref().map_or(&[], |s| s.docs.as_slice())
    }

    /// Where the Cluster's document starts.
    pub(crate) fn cluster_location(&self) -> Option<SourceLine> {
        self.source.as_ref().map(|s| SourceLine {
            path: s.path.clone(),
            line: s.cluster_line,
        })
    }

    /// Where the i-th Node's document starts.
    pub(crate) fn node_location(&self, index: usize) -> Option<SourceLine> {
        let source = self.source.as_ref()?;
        Some(SourceLine {
            path: source.path.clone(),
            line: *source.node_lines.get(index)?,
        })
    }
}

/// The name from `metadata.name`; parsing guarantees it is set for resources from files.
pub(crate) fn name_of(name: &Option<String>) -> &str {
    name.as_deref().unwrap_or_default()
}

/// Resolves `raw` against `base` and `home` (see [`Manifest::resolve_path`]). Without a
/// home directory a `~/` path stays relative to `base`, where validation then reports it
/// missing.
pub(crate) fn resolve(base: &Path, raw: &str, home: Option<&Path>) -> PathBuf {
    let expanded = match (raw.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if raw == "~" && home.is_some() => home.map(Path::to_path_buf).unwrap_or_default(),
        _ => PathBuf::from(raw),
    };
    base.join(expanded)
}

/// `path` made absolute against the current directory, without touching the file system
/// otherwise; an empty path means the current directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_spec_dir_and_home() {
        let base = Path::new("/specs");
        let home = Some(Path::new("/home/ops"));
        assert_eq!(resolve(base, "keys/id", home), Path::new("/specs/keys/id"));
        assert_eq!(resolve(base, "/etc/id", home), Path::new("/etc/id"));
        assert_eq!(
            resolve(base, "~/.ssh/id", home),
            Path::new("/home/ops/.ssh/id")
        );
        assert_eq!(resolve(base, "~", home), Path::new("/home/ops"));
        assert_eq!(
            resolve(base, "~/.ssh/id", None),
            Path::new("/specs/~/.ssh/id")
        );
    }

    #[test]
    fn absolute_of_an_empty_path_is_the_current_dir() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("")), cwd);
        assert_eq!(absolute(Path::new("a")), cwd.join("a"));
    }
}
