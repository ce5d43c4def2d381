//! What a Cluster may reach when the operator acts on it: Secrets and ConfigMaps of its own
//! namespace, by reference, and bundles inside the operator's bundle roots. A field that
//! names a file or an environment variable would name the operator pod's own (its service
//! account token, its database URL), so the operator refuses every such field; the CRDs'
//! CEL rules (`rules::cli_only`, `rules::no_parent_dir`) say the same at `kubectl apply`.
//!
//! The CLI trusts its local user with files and variables, but cannot read Secrets or
//! ConfigMaps, so it refuses `cniManifestRef` (and counts no Secret as a credential).

use std::{
    io::ErrorKind,
    path::{Component, Path, PathBuf},
};

use super::{Checker, Subject, ValidateFor};
use crate::{
    Error, Manifest, Problem, Result,
    cluster::MAX_BUNDLE_SOURCE_LEN,
    manifest::{name_of, resolve},
    rules::{
        Names, USE_BASTION_KEY, USE_BUNDLE_KEY_SECRET, USE_CNI_CONFIGMAP, USE_KEY_SECRET,
        USE_PASSWORD_SECRET, WHY_NO_PARENT_DIR, cli_only_message,
    },
    ssh::{BastionSpec, ConfigMapKeyRef, SecretKeyRef},
};

/// The longest excerpt of a refused value that a problem quotes.
const EXCERPT: usize = 60;
/// The longest excerpt of a resolved path that a problem shows.
const PATH_EXCERPT: usize = 200;

impl Manifest {
    /// Checks only the rules that confine a Cluster to its namespace in the operator, and
    /// returns [`Error::Invalid`] naming every refused field: `spec.network.cniManifest`,
    /// `ssh.privateKeyFile`, `ssh.passwordEnv` and `ssh.bastion.privateKeyFile` (Cluster and
    /// Nodes), `spec.bundle.publicKeyFile`, and a `..` in `spec.bundle.source`.
    ///
    /// [`Manifest::validate`] for [`ValidateFor::Operator`] runs these too; an operation that
    /// skips the rest of validation (a reset) runs them alone, so that nothing it does reads
    /// the operator's files or environment. Nothing here touches the file system.
    pub fn check_confined(&self) -> Result<()> {
        let mut check = Checker {
            manifest: self,
            target: ValidateFor::Operator,
            installed: false,
            problems: Vec::new(),
        };
        check.confinement();
        check.into_result()
    }

    /// The bundle directory named by `spec.bundle.source`, canonical (every symbolic link
    /// followed), when it lies inside one of `roots`; `Ok(None)` when the spec names no
    /// bundle. A relative source resolves against [`Manifest::spec_dir`], and `~` is not
    /// expanded (the operator's home is not the tenant's).
    ///
    /// Refused with [`Error::Invalid`] on `spec.bundle.source`: a path outside every root,
    /// a `..` component, or a path inside a root that leads outside through a symbolic
    /// link. Only directory entries are looked up (`realpath`); no file is opened. A
    /// source that does not exist yet but lies inside a root is returned as written, for
    /// the caller to report as missing.
    pub fn confined_bundle_dir(&self, roots: &[PathBuf]) -> Result<Option<PathBuf>> {
        let Some(bundle) = &self.cluster().spec.bundle else {
            return Ok(None);
        };
        let source = bundle.source.as_str();
        let raw = source.strip_prefix("file://").unwrap_or(source);
        let refuse = |seen: String, expected: String| Error::Invalid {
            problems: vec![Problem {
                location: self.cluster_location(),
                resource: format!("Cluster/{}", self.name()),
                field: "spec.bundle.source".into(),
                seen,
                expected,
            }],
        };
        let listed = roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let expected = || {
            format!(
                "a bundle directory inside one of the operator's bundle roots ({listed}; the \
                 operator's --bundle-root, the chart's bundles volume)"
            )
        };
        if has_parent_dir(raw) {
            return Err(refuse(
                format!("`{}`, which has a `..` component", excerpt(source)),
                WHY_NO_PARENT_DIR.replacen("must not", "a path that does not", 1),
            ));
        }
        let path = resolve(self.spec_dir(), raw, None);
        let inside = |p: &Path, canonical: bool| {
            roots.iter().any(|root| {
                let root = if canonical {
                    std::fs::canonicalize(root).unwrap_or_else(|_| root.clone())
                } else {
                    root.clone()
                };
                p.starts_with(&root)
            })
        };
        if !inside(&path, false) {
            return Err(refuse(
                format!(
                    "`{}`, which is {}, outside the bundle roots",
                    excerpt(source),
                    shortened(&path.display().to_string(), PATH_EXCERPT)
                ),
                expected(),
            ));
        }
        match std::fs::canonicalize(&path) {
            Ok(real) if inside(&real, true) => Ok(Some(real)),
            Ok(real) => Err(refuse(
                format!(
                    "`{}`, which leads through a symbolic link to {}, outside the bundle roots",
                    excerpt(source),
                    shortened(&real.display().to_string(), PATH_EXCERPT)
                ),
                expected(),
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Some(path)),
            Err(e) => Err(refuse(
                format!(
                    "`{}`, whose real path cannot be found: {e}",
                    excerpt(source)
                ),
                expected(),
            )),
        }
    }
}

impl Checker<'_> {
    /// The confinement rules for the target: the operator refuses fields that name its own
    /// files and variables; the CLI refuses the ConfigMap reference it cannot read.
    pub(super) fn confinement(&mut self) {
        match self.target {
            ValidateFor::Operator => self.operator_confinement(),
            ValidateFor::Cli => self.cli_references(),
        }
    }

    fn operator_confinement(&mut self) {
        let at = self.cluster_subject();
        let spec = &self.manifest.cluster().spec;
        if let Some(raw) = &spec.network.cni_manifest {
            self.cli_only(
                &at,
                "spec.network.cniManifest",
                raw,
                Names::File,
                USE_CNI_CONFIGMAP,
            );
        }
        if let Some(r) = &spec.network.cni_manifest_ref {
            self.config_map_ref(&at, "spec.network.cniManifestRef", r);
        }
        if let Some(bundle) = &spec.bundle {
            if let Some(raw) = &bundle.public_key_file {
                self.cli_only(
                    &at,
                    "spec.bundle.publicKeyFile",
                    raw,
                    Names::File,
                    USE_BUNDLE_KEY_SECRET,
                );
            }
            let source = &bundle.source;
            if source.chars().count() > MAX_BUNDLE_SOURCE_LEN {
                self.report(
                    &at,
                    "spec.bundle.source",
                    format!("{} characters", source.chars().count()),
                    format!("a path of at most {MAX_BUNDLE_SOURCE_LEN} characters"),
                );
            } else if has_parent_dir(source) {
                self.report(
                    &at,
                    "spec.bundle.source",
                    format!("`{}`, which has a `..` component", excerpt(source)),
                    WHY_NO_PARENT_DIR.replacen("must not", "a path that does not", 1),
                );
            }
        }
        let ssh = &spec.ssh;
        self.ssh_fields(
            &at,
            ssh.private_key_file.as_deref(),
            ssh.password_env.as_deref(),
            ssh.bastion.as_ref(),
        );
        if let Some(r) = &ssh.password_secret_ref {
            self.secret_ref(&at, "spec.ssh.passwordSecretRef", r);
        }
        for (index, node) in self.manifest.nodes().iter().enumerate() {
            let Some(own) = &node.spec.ssh else {
                continue;
            };
            let at = Subject {
                resource: format!("Node/{}", name_of(&node.metadata.name)),
                location: self.manifest.node_location(index),
            };
            self.ssh_fields(
                &at,
                own.private_key_file.as_deref(),
                own.password_env.as_deref(),
                own.bastion.as_ref(),
            );
            if let Some(r) = &own.password_secret_ref {
                self.secret_ref(&at, "spec.ssh.passwordSecretRef", r);
            }
        }
    }

    fn ssh_fields(
        &mut self,
        at: &Subject,
        key_file: Option<&str>,
        password_env: Option<&str>,
        bastion: Option<&BastionSpec>,
    ) {
        if let Some(raw) = key_file {
            self.cli_only(
                at,
                "spec.ssh.privateKeyFile",
                raw,
                Names::File,
                USE_KEY_SECRET,
            );
        }
        if let Some(var) = password_env {
            self.cli_only(
                at,
                "spec.ssh.passwordEnv",
                var,
                Names::Variable,
                USE_PASSWORD_SECRET,
            );
        }
        if let Some(raw) = bastion.and_then(|b| b.private_key_file.as_deref()) {
            self.cli_only(
                at,
                "spec.ssh.bastion.privateKeyFile",
                raw,
                Names::File,
                USE_BASTION_KEY,
            );
        }
    }

    /// Reports a field that names a file or a variable of the operator's own pod.
    fn cli_only(&mut self, at: &Subject, field: &str, value: &str, names: Names, hint: &str) {
        let name = field.rsplit('.').next().unwrap_or(field);
        self.report(
            at,
            field,
            format!("`{}`", excerpt(value)),
            format!("no {name}: {}", cli_only_message(name, names, hint)),
        );
    }

    fn secret_ref(&mut self, at: &Subject, field: &str, r: &SecretKeyRef) {
        if r.name.trim().is_empty() {
            self.report(
                at,
                &format!("{field}.name"),
                "an empty string",
                "the name of a Secret",
            );
        }
        if r.key.as_ref().is_some_and(|k| k.trim().is_empty()) {
            self.report(
                at,
                &format!("{field}.key"),
                "an empty string",
                "a key of the Secret, or no key field for the default",
            );
        }
    }

    fn config_map_ref(&mut self, at: &Subject, field: &str, r: &ConfigMapKeyRef) {
        if r.name.trim().is_empty() {
            self.report(
                at,
                &format!("{field}.name"),
                "an empty string",
                "the name of a ConfigMap",
            );
        }
        if r.key.trim().is_empty() {
            self.report(
                at,
                &format!("{field}.key"),
                "an empty string",
                "the ConfigMap key that holds the manifest, e.g. cni.yaml",
            );
        }
    }

    /// The CLI reads no ConfigMaps: a ConfigMap reference cannot give it a CNI manifest.
    fn cli_references(&mut self) {
        let at = self.cluster_subject();
        if let Some(r) = &self.manifest.cluster().spec.network.cni_manifest_ref {
            self.report(
                &at,
                "spec.network.cniManifestRef",
                format!(
                    "ConfigMap `{}`, which the kubegrid CLI cannot read (ConfigMaps are for \
                     the operator)",
                    excerpt(&r.name)
                ),
                "cniManifest with the path of the manifest file",
            );
        }
    }

    /// The collected problems as a result.
    pub(super) fn into_result(self) -> Result<()> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                problems: self.problems,
            })
        }
    }
}

/// Whether a path has a `..` component; the same language as the CEL rule's
/// `PARENT_DIR_REGEX`.
fn has_parent_dir(raw: &str) -> bool {
    Path::new(raw)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
}

/// At most [`EXCERPT`] characters of user input, one line.
fn excerpt(value: &str) -> String {
    shortened(value, EXCERPT)
}

/// At most `max` characters of `value`, control characters blanked.
fn shortened(value: &str, max: usize) -> String {
    let line: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() <= max {
        line
    } else {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    }
}
