//! The one error type of the plan crate.

use std::path::PathBuf;

/// Errors from loading playbooks and bundles and from compiling plans. Messages are lowercase
/// fragments that name the thing, what was seen and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A playbook file could not be read.
    #[error("failed to read playbook {}", path.display())]
    ReadPlaybook {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A playbook is not valid YAML or does not match the playbook schema; serde_yaml's
    /// message carries the line and column.
    #[error("playbook `{playbook}` is invalid: {source}")]
    ParsePlaybook {
        /// Playbook name or file.
        playbook: String,
        /// The cause, with its location.
        #[source]
        source: serde_yaml::Error,
    },

    /// A playbook parsed but breaks a rule the schema cannot express.
    #[error("playbook `{playbook}` is invalid: {problem}")]
    InvalidPlaybook {
        /// Playbook name or file.
        playbook: String,
        /// What is wrong, naming the phase and task.
        problem: String,
    },

    /// No embedded playbook has this name.
    #[error("no built-in playbook named `{name}`; built-in playbooks: {known}")]
    UnknownPlaybook {
        /// The name asked for.
        name: String,
        /// The names there are, comma-separated.
        known: String,
    },

    /// A cluster object's template (templates/gpu-objects/) failed to render.
    #[error("failed to render template `{template}` for the cluster: {detail}")]
    RenderClusterObject {
        /// Template name.
        template: String,
        /// Tera's message with its causes.
        detail: String,
    },

    /// A template name that is not in the embedded table.
    #[error("no template named `{name}`; known templates: {known}")]
    UnknownTemplate {
        /// The name asked for.
        name: String,
        /// The names there are, comma-separated.
        known: String,
    },

    /// The embedded templates failed to parse (a bug in a template, caught by the tests).
    #[error("failed to load the built-in templates: {detail}")]
    LoadTemplates {
        /// Tera's message with its causes.
        detail: String,
    },

    /// A template failed to render.
    #[error("failed to render template `{template}` for host {host}: {detail}")]
    RenderTemplate {
        /// Template name.
        template: String,
        /// Host the template was rendered for.
        host: String,
        /// Tera's message with its causes (an undefined variable, a bad filter argument).
        detail: String,
    },

    /// A template rendered into something its module cannot use.
    #[error("template `{template}` rendered an unusable line {line} for host {host}: {problem}")]
    TemplateOutput {
        /// Template name.
        template: String,
        /// Host the template was rendered for.
        host: String,
        /// 1-based line in the rendered text.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },

    /// The cluster context does not make sense (unknown runtime, bad version line, bad mirror).
    #[error("invalid cluster context: {problem}")]
    InvalidContext {
        /// What is wrong, with what was expected.
        problem: String,
    },

    /// No pause image is recorded for this Kubernetes minor.
    #[error(
        "no sandbox (pause) image is recorded for kubernetes {version}; known minors: {known}; hint: set the sandbox image explicitly"
    )]
    UnknownKubernetesMinor {
        /// The version asked about.
        version: String,
        /// Minors the table holds, comma-separated.
        known: String,
    },

    /// The host's OS family has no package format kubegrid installs.
    #[error(
        "host {host} runs `{os}`, which is neither debian- nor rhel-like, so no package format fits; hint: kubegrid installs .deb on debian/ubuntu and .rpm on rhel-like hosts"
    )]
    UnsupportedOs {
        /// Host name.
        host: String,
        /// os-release ID and ID_LIKE.
        os: String,
    },

    /// A bundle's manifest.yaml could not be read.
    #[error("failed to read bundle manifest {}", path.display())]
    ReadManifest {
        /// The manifest file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A bundle's manifest.yaml does not match the manifest schema; the message carries the line.
    #[error("bundle manifest {} is invalid: {source}", path.display())]
    ParseManifest {
        /// The manifest file.
        path: PathBuf,
        /// The cause, with its location.
        #[source]
        source: serde_yaml::Error,
    },

    /// A manifest parsed but one of its entries breaks a rule.
    #[error("bundle manifest {} is invalid: {problem}", path.display())]
    InvalidManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, naming the entry.
        problem: String,
    },

    /// A file the manifest lists is not in the bundle.
    #[error(
        "bundle file {} is missing; the manifest lists it with sha256 {sha256}; hint: rebuild or re-copy the bundle",
        path.display()
    )]
    MissingBundleFile {
        /// The file's full path.
        path: PathBuf,
        /// The sha256 the manifest expects.
        sha256: String,
    },

    /// A bundle file has another size than the manifest says.
    #[error(
        "bundle file {} is corrupt: size is {actual} bytes, the manifest expects {expected}; hint: rebuild or re-copy the bundle",
        path.display()
    )]
    BundleFileSize {
        /// The file's full path.
        path: PathBuf,
        /// Size from the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },

    /// A bundle file's content does not match its sha256 in the manifest.
    #[error(
        "bundle file {} is corrupt: sha256 is {actual}, the manifest expects {expected}; hint: rebuild or re-copy the bundle",
        path.display()
    )]
    BundleFileChecksum {
        /// The file's full path.
        path: PathBuf,
        /// sha256 from the manifest.
        expected: String,
        /// sha256 of the bytes on disk.
        actual: String,
    },

    /// A bundle file could not be read while hashing it.
    #[error("failed to read bundle file {}", path.display())]
    ReadBundleFile {
        /// The file's full path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The bundle has no package file of that name for the host's arch and format.
    #[error(
        "bundle {} has no {format} package `{name}` for arch {arch}; it has: {available}",
        dir.display()
    )]
    PackageNotInBundle {
        /// Bundle directory.
        dir: PathBuf,
        /// Package name.
        name: String,
        /// The host's arch.
        arch: String,
        /// "deb" or "rpm".
        format: String,
        /// Packages the bundle has, as `name version (arch)`, comma-separated.
        available: String,
    },

    /// The bundle has that artifact for the host's arch, but not on the release line the spec
    /// asks for (containerd).
    #[error(
        "bundle {} has no {what} on the {line} line; it has: {available}; hint: use a bundle with that line, or set spec.containerRuntime.containerd.version to a line it has",
        dir.display()
    )]
    NotOnLineInBundle {
        /// Bundle directory.
        dir: PathBuf,
        /// The kind, the name and the host's arch: "archive `containerd` for arch amd64".
        what: String,
        /// The release line asked for, "2.1".
        line: String,
        /// What the bundle has of that name for the arch, as `version (kind arch)`.
        available: String,
    },

    /// The bundle has that binary for the host's arch, but not in the version the cluster
    /// asks for (a bundle with several Kubernetes or etcd versions).
    #[error(
        "bundle {} has no {what} of version {version}; it has: {available}; hint: use a bundle with that version, or set the spec's version to one the bundle has",
        dir.display()
    )]
    VersionNotInBundle {
        /// Bundle directory.
        dir: PathBuf,
        /// The kind, the name and the host's arch: "binary `etcd` for arch amd64".
        what: String,
        /// The version asked for, without `v`.
        version: String,
        /// The versions of that name the bundle has for the arch.
        available: String,
    },

    /// The bundle has no binary or archive of that name for the host's arch.
    #[error(
        "bundle {} has no `{name}` for arch {arch}; it has: {available}; hint: build the bundle with Kubernetes artifacts for that arch",
        dir.display()
    )]
    ArtifactNotInBundle {
        /// Bundle directory.
        dir: PathBuf,
        /// Artifact name ("kubeadm", "cni-plugins").
        name: String,
        /// The host's arch.
        arch: String,
        /// Artifacts of that kind the bundle has.
        available: String,
    },

    /// The bundle has no rootfs for the host's arch.
    #[error(
        "bundle {} has no rootfs for arch {arch}; hint: build the bundle for that arch (offline-bundle/dev-bundle.sh OUTDIR {arch})",
        dir.display()
    )]
    RootfsNotInBundle {
        /// Bundle directory.
        dir: PathBuf,
        /// The host's arch.
        arch: String,
    },

    /// The bundle does not fit the spec: another Kubernetes or containerd version, or
    /// artifacts that the spec's Nodes need are missing. Found before any host is contacted.
    #[error(
        "bundle {} does not fit the spec:{problems}\n  the bundle has: {has}\n  hint: {hint}",
        dir.display()
    )]
    BundleMismatch {
        /// The bundle as the user named it.
        dir: PathBuf,
        /// One `\n  - problem` line per problem.
        problems: String,
        /// What the bundle holds, as `kind name version (arch)`.
        has: String,
        /// Which bundle to build or pass instead.
        hint: String,
    },

    /// A manifest entry is a symlink, or lies outside the bundle directory.
    #[error(
        "bundle artifact {} is {what}; artifacts must be regular files inside the bundle\n  hint: replace the link with a copy of the file (cp --dereference) and sign the bundle again",
        path.display()
    )]
    ArtifactOutsideBundle {
        /// The artifact's path.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },

    /// A phase plan names a blob the bundle does not hold.
    #[error("blob {sha256} is not in bundle {}", dir.display())]
    BlobNotInBundle {
        /// Bundle directory.
        dir: PathBuf,
        /// The blob's sha256.
        sha256: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tera puts the useful part (which variable, which line) in the source chain; flatten it.
pub(crate) fn tera_detail(err: &tera::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cur {
        parts.push(e.to_string());
        cur = e.source();
    }
    parts.join(": ")
}
