//! Reading multi-document spec files in `kubectl apply` shape, with file:line:column errors.
//!
//! The file is split into documents here rather than by serde_yaml's multi-document
//! deserializer. That one does report lines of the whole file, but each of its documents
//! can be deserialized only once, and each document is parsed twice here: for its kind,
//! then as the typed resource. Parsing a document alone gives lines relative to the
//! document, so the split records where each starts and errors add that offset.

pub(crate) mod guard;
pub(crate) mod locate;
pub(crate) mod wording;

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, de::IgnoredAny};

use crate::{
    API_VERSION, Cluster, ClusterSpec, ClusterStatus, Error, Manifest, Node, NodeSpec, NodeStatus,
    Problem, Result, SourceLine, ValidateFor,
    manifest::{Source, absolute, name_of},
    text::excerpt,
};
use locate::DocText;

/// The largest spec file read. A thousand-Node spec is well under 1 MiB.
pub(crate) const MAX_SPEC_BYTES: u64 = 16 << 20;

/// The longest parse message shown; serde quotes values, which can be megabytes long.
const MAX_MESSAGE_CHARS: usize = 300;

/// Reads, parses and validates (for the CLI) a spec file that holds exactly one Cluster.
pub fn load(path: &Path) -> Result<Manifest> {
    let manifest = Documents::read(path)?.select(None)?;
    manifest.validate(ValidateFor::Cli)?;
    Ok(manifest)
}

/// [`load`] for a cluster that is already installed: validated with
/// [`Manifest::validate_installed`].
pub fn load_installed(path: &Path) -> Result<Manifest> {
    let manifest = Documents::read(path)?.select(None)?;
    manifest.validate_installed(ValidateFor::Cli)?;
    Ok(manifest)
}

/// Parses a spec that holds exactly one Cluster and its Nodes. `origin` is the file the
/// text came from: errors name it and relative paths resolve against its directory.
///
/// The result is not validated yet; call [`Manifest::validate`].
pub fn parse(text: &str, origin: &Path) -> Result<Manifest> {
    parse_all(text, origin)?.select(None)
}

/// Parses a spec that may hold several Clusters; pick one with [`Documents::select`].
pub fn parse_all(text: &str, origin: &Path) -> Result<Documents> {
    let parent = origin.parent().unwrap_or(Path::new(""));
    let mut docs = Documents {
        path: origin.to_path_buf(),
        spec_dir: absolute(parent),
        clusters: Vec::new(),
        nodes: Vec::new(),
        docs: Vec::new(),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    guard::text(text).map_err(|r| refused(origin, r))?;
    let chunks = split(text);
    for (number, chunk) in chunks.iter().filter(|c| !c.is_empty()).enumerate() {
        docs.add(chunk, number + 1)?;
    }
    Ok(docs)
}

/// Every Cluster and Node of a spec file, before one Cluster is selected.
#[derive(Clone, Debug)]
pub struct Documents {
    path: PathBuf,
    spec_dir: PathBuf,
    /// With the line each document starts on.
    clusters: Vec<(Cluster, usize)>,
    nodes: Vec<(Node, usize)>,
    /// Every Cluster's and Node's text, for finding a field's line.
    docs: Vec<DocText>,
}

impl Documents {
    /// Reads and parses a spec file.
    pub fn read(path: &Path) -> Result<Self> {
        let read_error = |source| Error::ReadSpec {
            path: path.to_path_buf(),
            source,
        };
        // Bounded, since `-f` may name a device or a pipe that never ends.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes))
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_SPEC_BYTES {
            return Err(Error::ParseSpec {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!(
                    "more than {} MiB; expected a spec file of Cluster and Node documents",
                    MAX_SPEC_BYTES >> 20
                ),
            });
        }
        let text = guard::utf8(&bytes).map_err(|r| refused(path, r))?;
        parse_all(text, path)
    }

    /// The Clusters' names, in file order.
    pub fn cluster_names(&self) -> Vec<&str> {
        self.clusters
            .iter()
            .map(|(c, _)| name_of(&c.metadata.name))
            .collect()
    }

    /// The Cluster named `name` with its Nodes; with `None`, the file's only Cluster.
    ///
    /// Nodes of other Clusters in the file are left out; a Node that names a Cluster the
    /// file does not hold is an error, since it would silently never be installed.
    pub fn select(self, name: Option<&str>) -> Result<Manifest> {
        let names: Vec<String> = self.cluster_names().into_iter().map(String::from).collect();
        let chosen = match name {
            None if names.len() > 1 => {
                return Err(Error::SeveralClusters {
                    path: self.path,
                    names,
                });
            }
            None => names.first().cloned().ok_or_else(|| Error::NoCluster {
                path: self.path.clone(),
            })?,
            Some(name) if !names.iter().any(|n| n == name) => {
                return Err(Error::UnknownCluster {
                    path: self.path,
                    name: name.to_string(),
                    available: names,
                });
            }
            Some(name) => name.to_string(),
        };
        let at = |line| {
            Some(SourceLine {
                path: self.path.clone(),
                line,
            })
        };
        let mut problems = Vec::new();
        let mut same_name = self
            .clusters
            .iter()
            .filter(|(c, _)| name_of(&c.metadata.name) == chosen);
        let (cluster, cluster_line) =
            same_name.next().cloned().ok_or_else(|| Error::NoCluster {
                path: self.path.clone(),
            })?;
        for (_, line) in same_name {
            problems.push(Problem {
                location: at(*line),
                resource: format!("Cluster/{chosen}"),
                field: "metadata.name".into(),
                seen: format!(
                    "a second Cluster named `{chosen}` (the first is on line {cluster_line})"
                ),
                expected: "unique Cluster names".into(),
            });
        }
        let mut nodes = Vec::new();
        let mut node_lines = Vec::new();
        for (node, line) in self.nodes {
            if node.spec.cluster_name == chosen {
                nodes.push(node);
                node_lines.push(line);
            } else if !names.contains(&node.spec.cluster_name) {
                problems.push(Problem {
                    location: at(line),
                    resource: format!("Node/{}", name_of(&node.metadata.name)),
                    field: "spec.clusterName".into(),
                    seen: format!(
                        "`{}`, which no Cluster in the file is named",
                        node.spec.cluster_name
                    ),
                    expected: format!("the name of a Cluster in the file: {}", names.join(", ")),
                });
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid { problems });
        }
        let mut docs = self.docs;
        docs.retain(|d| d.first_line == cluster_line || node_lines.contains(&d.first_line));
        let source = Source {
            path: self.path,
            cluster_line,
            node_lines,
            docs,
        };
        Ok(Manifest::from_file(cluster, nodes, self.spec_dir, source))
    }

    fn add(&mut self, chunk: &Chunk, number: usize) -> Result<()> {
        let head: Head = chunk.parse(&self.path)?;
        let line = chunk.first_content_line();
        if matches!(head.kind.as_deref(), Some("Cluster" | "Node")) {
            self.docs.push(DocText {
                first_line: line,
                offset: chunk.offset,
                text: chunk.text.clone(),
            });
        }
        match (head.api_version.as_deref(), head.kind.as_deref()) {
            (Some(API_VERSION), Some("Cluster")) => {
                let doc: Typed<ClusterSpec, ClusterStatus> = chunk.parse(&self.path)?;
                let metadata = self.named(chunk, doc.metadata)?;
                let cluster = Cluster {
                    metadata,
                    spec: doc.spec,
                    status: doc.status,
                };
                self.clusters.push((cluster, line));
            }
            (Some(API_VERSION), Some("Node")) => {
                let doc: Typed<NodeSpec, NodeStatus> = chunk.parse(&self.path)?;
                let metadata = self.named(chunk, doc.metadata)?;
                let node = Node {
                    metadata,
                    spec: doc.spec,
                    status: doc.status,
                };
                self.nodes.push((node, line));
            }
            (api_version, _) => {
                // Point at whichever of the two keys is wrong.
                let key = if api_version == Some(API_VERSION) {
                    "kind"
                } else {
                    "apiVersion"
                };
                return Err(Error::UnknownKind {
                    path: self.path.clone(),
                    document: number,
                    line: chunk.key_line(key).unwrap_or(line),
                    api_version: head.api_version,
                    kind: head.kind,
                });
            }
        }
        Ok(())
    }

    /// Checks that `metadata.name` is set: resources are told apart by it.
    fn named(&self, chunk: &Chunk, metadata: ObjectMeta) -> Result<ObjectMeta> {
        if metadata.name.as_deref().is_some_and(|n| !n.is_empty()) {
            return Ok(metadata);
        }
        Err(Error::ParseSpec {
            path: self.path.clone(),
            line: chunk
                .key_line("metadata")
                .unwrap_or_else(|| chunk.first_content_line()),
            column: 1,
            message: "metadata.name: missing; expected the resource's name".into(),
        })
    }
}

/// Just enough of a document to know what it is.
#[derive(Deserialize)]
#[serde(expecting = "a mapping with apiVersion, kind, metadata and spec")]
struct Head {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

/// A whole document of a known kind. Unknown top-level keys are refused here, since the
/// resource types kube derives ignore them.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with apiVersion, kind, metadata and spec"
)]
struct Typed<S, St> {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: ObjectMeta,
    spec: S,
    status: Option<St>,
}

/// One YAML document of the file.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Lines before the chunk's first line.
    pub(crate) offset: usize,
    /// The document's lines, with its `---` marker blanked so columns stay true.
    pub(crate) text: String,
}

impl Chunk {
    /// Only blank lines and comments.
    pub(crate) fn is_empty(&self) -> bool {
        self.text.lines().all(|l| {
            let l = l.trim_start();
            l.is_empty() || l.starts_with('#')
        })
    }

    pub(crate) fn first_content_line(&self) -> usize {
        let skipped = self
            .text
            .lines()
            .take_while(|l| {
                let l = l.trim_start();
                l.is_empty() || l.starts_with('#')
            })
            .count();
        self.offset + skipped + 1
    }

    /// The file line of a top-level `key:` in block style.
    fn key_line(&self, key: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
            .map(|i| self.offset + i + 1)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T> {
        serde_yaml::from_str(&self.text).map_err(|err| self.error(path, &err))
    }

    /// A serde_yaml error with its location moved from the document to the file.
    fn error(&self, path: &Path, err: &serde_yaml::Error) -> Error {
        let mut message = err.to_string();
        let (line, column) = match err.location() {
            Some(at) => {
                // The message repeats the location; the error shows it once, in front.
                let suffix = format!(" at line {} column {}", at.line(), at.column());
                if let Some(start) = message.find(&suffix) {
                    message.replace_range(start..start + suffix.len(), "");
                }
                (at.line() + self.offset, at.column())
            }
            None => (self.first_content_line(), 1),
        };
        Error::ParseSpec {
            path: path.to_path_buf(),
            line,
            column,
            message: excerpt(
                &wording::plain(&shift_lines(&message, self.offset)),
                MAX_MESSAGE_CHARS,
            ),
        }
    }
}

/// A text the guard refused, as a parse error.
fn refused(path: &Path, refusal: guard::Refusal) -> Error {
    Error::ParseSpec {
        path: path.to_path_buf(),
        line: refusal.line,
        column: refusal.column,
        message: refusal.message(),
    }
}

/// Adds `offset` to every `line N` that libyaml leaves in a message (e.g. "while parsing a
/// block mapping at line 3 column 1").
fn shift_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Splits YAML text at `---` document markers (and `...` end markers). Per the YAML spec
/// these always end a document when they start a line and are followed by a blank, so no
/// scalar can contain one.
pub(crate) fn split(text: &str) -> Vec<Chunk> {
    let is_marker = |line: &str| {
        (line.starts_with("---") || line.starts_with("..."))
            && line[3..].chars().next().is_none_or(char::is_whitespace)
    };
    let mut chunks = vec![Chunk {
        offset: 0,
        text: String::new(),
    }];
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line) {
            chunks.push(Chunk {
                offset: index,
                text: format!("   {}", &line[3..]),
            });
        } else if let Some(chunk) = chunks.last_mut() {
            chunk.text.push_str(line);
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_line_offsets_and_blanks_markers() {
        let chunks = split("a: 1\n---\nb: 2\n--- # c\n...\n---\n");
        let texts: Vec<_> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            ["a: 1\n", "   \nb: 2\n", "    # c\n", "   \n", "   \n"]
        );
        let offsets: Vec<_> = chunks.iter().map(|c| c.offset).collect();
        assert_eq!(offsets, [0, 1, 3, 4, 5]);
        assert!(!chunks[1].is_empty());
        assert!(chunks[2].is_empty());
        assert_eq!(chunks[1].first_content_line(), 3);
        assert_eq!(chunks[1].key_line("b"), Some(3));
    }

    #[test]
    fn markers_need_a_blank_after_them() {
        let chunks = split("a: |\n ---x\n----\n");
        assert_eq!(chunks.len(), 1);
    }

    #[test]
    fn libyaml_lines_in_messages_are_shifted() {
        assert_eq!(
            shift_lines("did not find key, while parsing at line 3 column 1", 10),
            "did not find key, while parsing at line 13 column 1"
        );
        assert_eq!(shift_lines("no lines here", 4), "no lines here");
    }
}
