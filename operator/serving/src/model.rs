//! Where a model's weights come from: the `model` field of an LLMService, and the grammar of
//! its URI.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The forms [`ModelUri::parse`] accepts, for error hints.
pub(crate) const URI_FORMS: &str =
    "hf://ORG/NAME[@REVISION], s3://BUCKET[/PREFIX], https://HOST/PATH or pvc://CLAIM[/PATH]";

/// The longest URI accepted; also the schema's `maxLength`, which keeps the CEL rule that
/// reads it within the API server's cost budget.
pub(crate) const MAX_URI_LEN: usize = 1024;

/// The most files a model may list; also the schema's `maxItems`, without which the CEL rule
/// on each path exceeds the API server's cost budget.
pub(crate) const MAX_FILES: usize = 1024;

/// The longest file path in a model; also the schema's `maxLength`.
pub(crate) const MAX_PATH_LEN: usize = 256;

/// A model's weights: where they come from, how to check them, and the cache space they may
/// take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::files_unless_hf())]
pub struct ModelSource {
    /// `hf://ORG/NAME@REVISION` (a Hugging Face repository; the revision, `main` when
    /// omitted, is resolved to a commit before anything is downloaded), `s3://BUCKET/PREFIX`,
    /// `https://HOST/PATH` or `pvc://CLAIM/PATH` (a PersistentVolumeClaim in the
    /// LLMService's namespace).
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = crate::rules::model_uri())]
    pub uri: String,
    /// The model's files with their sha256, checked after download. Required except for
    /// `hf://`, whose metadata lists each file's sha256; when given for `hf://`, it must agree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub files: Vec<ModelFile>,
    /// The most node cache space this model may take (a quantity such as `20Gi`); a download
    /// larger than this fails instead of filling the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub size_limit: Option<String>,
}

/// One file of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelFile {
    /// The file's path inside the model, e.g. `model-00001-of-00004.safetensors`.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = crate::rules::relative_path())]
    pub path: String,
    /// Its sha256, 64 lowercase hex digits.
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// Its size in bytes, when known; checked as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub size: Option<i64>,
}

/// A parsed model URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelUri {
    /// A Hugging Face repository at a revision (a branch, a tag or a commit).
    HuggingFace {
        /// The organisation or user.
        org: String,
        /// The repository.
        name: String,
        /// The revision as given; `main` when the URI names none.
        revision: String,
    },
    /// Objects under a prefix of an S3 bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, possibly empty.
        prefix: String,
    },
    /// Files under an HTTPS URL.
    Https {
        /// The whole URL.
        url: String,
    },
    /// Files on a PersistentVolumeClaim of the LLMService's namespace.
    Pvc {
        /// The claim's name.
        claim: String,
        /// The directory inside the volume, possibly empty.
        path: String,
    },
}

impl ModelUri {
    /// Parses `uri`; the error says what is wrong and lists the accepted forms.
    pub fn parse(uri: &str) -> Result<Self> {
        let bad = |reason: &str| Error::ParseModelUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
            hint: URI_FORMS,
        };
        if uri.len() > MAX_URI_LEN {
            return Err(bad(&format!("longer than {MAX_URI_LEN} characters")));
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(bad("no scheme"));
        };
        match scheme {
            "hf" => {
                let (repo, revision) = match rest.split_once('@') {
                    Some((repo, rev)) if is_revision(rev) => (repo, rev),
                    Some(_) => {
                        return Err(bad(
                            "the revision is empty or has characters a git ref cannot",
                        ));
                    }
                    None => (rest, "main"),
                };
                let Some((org, name)) = repo.split_once('/') else {
                    return Err(bad("a Hugging Face repository is ORG/NAME"));
                };
                if !is_hf_part(org) || !is_hf_part(name) {
                    return Err(bad(
                        "ORG and NAME are letters, digits, '-', '_' and '.', not starting with '-' or '.', at most 96 each",
                    ));
                }
                Ok(Self::HuggingFace {
                    org: org.into(),
                    name: name.into(),
                    revision: revision.into(),
                })
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let prefix = prefix.trim_end_matches('/');
                if !is_bucket(bucket) {
                    return Err(bad(
                        "an S3 bucket name is 3 to 63 lowercase letters, digits, '.' and '-'",
                    ));
                }
                if !prefix.is_empty() && !is_relative_path(prefix) {
                    return Err(bad("the key prefix has an empty, '.' or '..' segment"));
                }
                Ok(Self::S3 {
                    bucket: bucket.into(),
                    prefix: prefix.into(),
                })
            }
            "https" => {
                let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if host.is_empty() || host.contains('@') || rest.chars().any(char::is_whitespace) {
                    return Err(bad("an https URL needs a host, and no user info or spaces"));
                }
                Ok(Self::Https { url: uri.into() })
            }
            "pvc" => {
                let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
                if !is_dns_subdomain(claim) {
                    return Err(bad(
                        "a claim name is a DNS subdomain: lowercase letters, digits, '-' and '.'",
                    ));
                }
                if !path.is_empty() && !is_relative_path(path.trim_end_matches('/')) {
                    return Err(bad("the path has an empty, '.' or '..' segment"));
                }
                Ok(Self::Pvc {
                    claim: claim.into(),
                    path: path.trim_end_matches('/').into(),
                })
            }
            "http" => Err(bad(
                "plain http is refused: weights would travel unauthenticated; use https",
            )),
            _ => Err(bad(&format!("unknown scheme {scheme:?}"))),
        }
    }

    /// Whether the source's own metadata gives each file's sha256 (only Hugging Face's does).
    pub fn lists_hashes(&self) -> bool {
        matches!(self, Self::HuggingFace { .. })
    }
}

fn is_hf_part(s: &str) -> bool {
    (1..=96).contains(&s.len())
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A git ref or commit as Hugging Face takes it: no spaces, no `..`, no control characters.
fn is_revision(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && !s.contains("..")
        && !s.starts_with(['/', '-'])
        && !s.ends_with('/')
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !"~^:?*[\\@".contains(c))
}

fn is_bucket(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
}

pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// A relative path whose segments are neither empty, `.` nor `..`: it stays inside the
/// directory it is joined to.
pub fn is_relative_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\0'))
}
