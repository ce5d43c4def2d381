//! The crate's one error type and the validation problems it carries.

use std::{fmt, path::PathBuf};

use crate::text::{EXCERPT_CHARS, excerpt};

/// Everything that can go wrong reading, parsing or validating a spec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec file could not be read.
    #[error("failed to read spec file {}", path.display())]
    ReadSpec {
        /// The spec file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML or does not match the schema of its kind.
    #[error("{}:{line}:{column}: {message}", path.display())]
    ParseSpec {
        /// The spec file.
        path: PathBuf,
        /// 1-based line in the whole file.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, with the field path where known.
        message: String,
    },
    /// A document is not a kubegrid Cluster or Node.
    #[error(
        "{}:{line}: document {document} has apiVersion {} and kind {}; expected apiVersion \
         {API_VERSION} with kind Cluster or Node",
        path.display(),
        shown(api_version),
        shown(kind)
    )]
    UnknownKind {
        /// The spec file.
        path: PathBuf,
        /// 1-based number of the document among the file's non-empty documents.
        document: usize,
        /// 1-based line of the offending key in the whole file.
        line: usize,
        /// The apiVersion seen.
        api_version: Option<String>,
        /// The kind seen.
        kind: Option<String>,
    },
    /// The file holds no Cluster.
    #[error(
        "{} holds no Cluster; expected one document with apiVersion {API_VERSION} and kind \
         Cluster",
        path.display()
    )]
    NoCluster {
        /// The spec file.
        path: PathBuf,
    },
    /// The file holds several Clusters and none was selected.
    #[error(
        "{} holds {} Clusters ({}); expected one, or select one by name",
        path.display(),
        names.len(),
        quoted_names(names)
    )]
    SeveralClusters {
        /// The spec file.
        path: PathBuf,
        /// The Clusters' names, in file order.
        names: Vec<String>,
    },
    /// The selected Cluster is not in the file.
    #[error(
        "{} holds no Cluster named {}; it holds: {}",
        path.display(),
        excerpt(name, EXCERPT_CHARS),
        if available.is_empty() { "none".to_string() } else { quoted_names(available) }
    )]
    UnknownCluster {
        /// The spec file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The Clusters in the file.
        available: Vec<String>,
    },
    /// The spec parsed but breaks one or more rules.
    #[error("{}", list(problems))]
    Invalid {
        /// Every problem found, in a stable order.
        problems: Vec<Problem>,
    },
    /// A CRD could not be rendered as YAML.
    #[error("failed to render CRD {name} as YAML")]
    RenderCrd {
        /// The CRD's name, e.g. `clusters.kubegrid.io`.
        name: String,
        /// The cause.
        #[source]
        source: serde_yaml::Error,
    },
}

/// The apiVersion of both kinds.
pub const API_VERSION: &str = "kubegrid.io/v1alpha1";

fn shown(value: &Option<String>) -> String {
    value.as_ref().map_or_else(
        || "(missing)".to_string(),
        |v| format!("`{}`", excerpt(v, EXCERPT_CHARS)),
    )
}

/// Names from a file, each escaped and cut short.
fn quoted_names(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| excerpt(n, EXCERPT_CHARS)).collect();
    names.join(", ")
}

/// The longest `seen` or `expected` a problem shows: they quote the user's values.
const MAX_PART_CHARS: usize = 400;

fn list(problems: &[Problem]) -> String {
    let mut out = match problems.len() {
        1 => "the spec has 1 problem:".to_string(),
        n => format!("the spec has {n} problems:"),
    };
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

/// One broken rule: which resource and field, what was seen and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The line of the field, or else of the resource's document, when it came from a file.
    pub location: Option<SourceLine>,
    /// `Kind/name` of the resource, e.g. `Node/gpu-1`.
    pub resource: String,
    /// Field path within the resource, e.g. `spec.ssh.privateKeyFile`.
    pub field: String,
    /// What the spec holds.
    pub seen: String,
    /// What it should hold.
    pub expected: String,
}

/// A line of a spec file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    /// The spec file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.location {
            write!(f, "{}:{}: ", at.path.display(), at.line)?;
        }
        // Every part can hold what the spec holds (a name, a label), so each is escaped
        // and cut short before it reaches a terminal.
        write!(
            f,
            "{} {}: got {}; expected {}",
            excerpt(&self.resource, EXCERPT_CHARS + 8),
            excerpt(&self.field, EXCERPT_CHARS * 2),
            excerpt(&self.seen, MAX_PART_CHARS),
            excerpt(&self.expected, MAX_PART_CHARS)
        )
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_problem_on_its_own_line() {
        let problem = |resource: &str, line| Problem {
            location: Some(SourceLine {
                path: "c.yaml".into(),
                line,
            }),
            resource: resource.into(),
            field: "spec.address".into(),
            seen: "an empty string".into(),
            expected: "an IP address or DNS name".into(),
        };
        let err = Error::Invalid {
            problems: vec![problem("Node/a", 7), problem("Node/b", 14)],
        };
        assert_eq!(
            err.to_string(),
            "the spec has 2 problems:\n  \
             c.yaml:7: Node/a spec.address: got an empty string; expected an IP address or DNS name\n  \
             c.yaml:14: Node/b spec.address: got an empty string; expected an IP address or DNS name"
        );
    }
}
