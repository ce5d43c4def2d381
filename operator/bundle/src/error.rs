//! The one error type of this crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong generating keys, signing, verifying or inspecting a bundle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `generate_key` found a file where it would write a key.
    #[error(
        "key file {} already exists; kubegrid never overwrites a key; hint: pick another path or remove the old key deliberately",
        path.display()
    )]
    KeyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The random generator or key parsing inside ring failed while making a key pair.
    #[error("failed to generate an Ed25519 key pair: {problem}")]
    GenerateKey {
        /// What ring reported.
        problem: String,
    },

    /// A key file could not be written.
    #[error("failed to write key file {}", path.display())]
    WriteKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A key file could not be read.
    #[error("failed to read key file {}", path.display())]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A key file was read but is not a key of the expected form.
    #[error("key file {} is malformed: {problem}", path.display())]
    MalformedKey {
        /// The key file.
        path: PathBuf,
        /// What was seen, what was expected, and a hint.
        problem: String,
    },

    /// The bundle's manifest.yaml could not be read.
    #[error("failed to read bundle manifest {}", path.display())]
    ReadManifest {
        /// The manifest file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The bundle's manifest.yaml does not parse, or has a version this crate does not read.
    #[error("bundle manifest {} is invalid: {problem}", path.display())]
    ParseManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// The path given as a bundle is missing, or is not a bundle directory.
    #[error("{} is not a bundle: {problem}; hint: {hint}", dir.display())]
    NotABundle {
        /// The path given.
        dir: PathBuf,
        /// What is there instead.
        problem: String,
        /// What to pass instead.
        hint: String,
    },

    /// The bundle has no manifest.yaml.sig.
    #[error(
        "bundle {} is not signed: {} does not exist; hint: sign it with `kubegrid bundle sign {} --key FILE`",
        dir.display(), path.display(), dir.display()
    )]
    NoSignature {
        /// The bundle directory.
        dir: PathBuf,
        /// The signature file that is missing.
        path: PathBuf,
    },

    /// The signature file could not be read.
    #[error("failed to read signature file {}", path.display())]
    ReadSignature {
        /// The signature file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The signature file is not one `ed25519 <base64>` line.
    #[error("signature file {} is malformed: {problem}", path.display())]
    MalformedSignature {
        /// The signature file.
        path: PathBuf,
        /// What was seen and what was expected.
        problem: String,
    },

    /// The signature is well-formed but does not verify over the manifest with this key.
    #[error(
        "signature {} does not match manifest {} (sha256 {manifest_sha256}) under public key {key_fingerprint} ({}); either the manifest was changed after signing or the bundle was signed with another key; hint: re-copy the bundle, or check which key signed it",
        signature.display(), manifest.display(), key_path.display()
    )]
    SignatureMismatch {
        /// The signature file.
        signature: PathBuf,
        /// The manifest it should cover.
        manifest: PathBuf,
        /// sha256 of the manifest bytes that were checked.
        manifest_sha256: String,
        /// The public key file.
        key_path: PathBuf,
        /// `SHA256:<base64>` of the public key.
        key_fingerprint: String,
    },

    /// manifest.yaml changed between reading it for the signature and verifying artifacts.
    #[error(
        "bundle manifest {} changed while it was being checked; hint: do not modify the bundle during `bundle sign` or `bundle verify`",
        path.display()
    )]
    ManifestChanged {
        /// The manifest file.
        path: PathBuf,
    },

    /// An artifact (or the manifest itself) failed the check that `Bundle::open` makes; the
    /// source names the artifact, its expected and its actual sha256 or size.
    #[error("bundle {} failed verification", dir.display())]
    Artifacts {
        /// The bundle directory.
        dir: PathBuf,
        /// The check that failed.
        #[source]
        source: Box<kubegrid_plan::Error>,
    },

    /// The signature file could not be written.
    #[error("failed to write signature file {}", path.display())]
    WriteSignature {
        /// The signature file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A sources file could not be read.
    #[error("failed to read sources file {}", path.display())]
    ReadSources {
        /// The sources file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A sources file does not parse.
    #[error("sources {origin} do not parse: {problem}")]
    ParseSources {
        /// The file, or "built-in".
        origin: String,
        /// serde's message, with the line.
        problem: String,
    },

    /// A sources file parses but breaks a rule.
    #[error("sources {origin} are invalid: {problem}")]
    InvalidSources {
        /// The file, or "built-in".
        origin: String,
        /// What is wrong, naming the component, release or image.
        problem: String,
    },

    /// The sources have no release for the asked Kubernetes version.
    #[error(
        "no release for Kubernetes {version} in the sources; they have: {known}; hint: add a release to offline-bundle/sources.yaml and pass it with --sources"
    )]
    UnknownRelease {
        /// The asked version.
        version: String,
        /// The versions the sources have.
        known: String,
    },

    /// The sources have no OS packages for the asked distribution.
    #[error("no OS packages for `{distro}` in the sources; they have: {known}")]
    UnknownDistro {
        /// The asked distribution.
        distro: String,
        /// The distributions the sources have.
        known: String,
    },

    /// The build was asked for something that cannot be built (arches, --without).
    #[error("invalid bundle build request: {problem}")]
    BuildRequest {
        /// What is wrong.
        problem: String,
    },

    /// An image is not available for an asked arch.
    #[error(
        "image {image} has no {missing} variant in its pinned index (it has {available}); hint: build for the arches it serves, or pin a digest that serves them all"
    )]
    ImageArch {
        /// `name:tag`.
        image: String,
        /// The asked arches it lacks.
        missing: String,
        /// The arches the sources say it serves.
        available: String,
    },

    /// An image could not be pulled into the bundle's OCI layout (or did not match its pin);
    /// the source names the registry, the blob or both digests.
    #[error("failed to pull image {image} into the bundle")]
    PullImage {
        /// `name:tag`.
        image: String,
        /// What went wrong.
        #[source]
        source: Box<kubegrid_oci::Error>,
    },

    /// The bundle's images/ OCI layout is missing an image the manifest lists, or a blob in
    /// it is missing or does not hash to its name.
    #[error("bundle {} failed verification of its images", dir.display())]
    VerifyImages {
        /// The bundle directory.
        dir: PathBuf,
        /// The check that failed; names the image and the blob.
        #[source]
        source: Box<kubegrid_oci::Error>,
    },

    /// A file verified by a pinned sha256 has no pin for this version and arch.
    #[error(
        "{component} {version} {arch} ({url}) has no sha256 pin, and upstream publishes no checksum file for it; hint: download it from a trusted place, check it, and add `sha256: {{\"{version}\": {{{arch}: <hex>}}}}` to its checksum in the sources, or build without it (--without {component})"
    )]
    MissingPin {
        /// Component.
        component: String,
        /// Component version.
        version: String,
        /// Arch.
        arch: String,
        /// The file's URL.
        url: String,
    },

    /// A `--mirror` or upstream URL cannot be used.
    #[error("invalid URL `{url}`: {problem}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        problem: String,
    },

    /// The HTTP client could not be set up.
    #[error("failed to set up the HTTP client: {problem}")]
    HttpClient {
        /// What reqwest reported.
        problem: String,
    },

    /// A download failed on every mirror after its retries.
    #[error("failed to download {what} ({url}): {problem}")]
    Download {
        /// The artifact.
        what: String,
        /// The upstream URL.
        url: String,
        /// The last error from each URL tried.
        problem: String,
    },

    /// A download does not hash to what its pin or checksum file says.
    #[error(
        "checksum mismatch for {what}: {url} has sha256 {actual}, expected {expected}; the download was discarded; hint: a mirror may serve a stale or tampered copy"
    )]
    ChecksumMismatch {
        /// The artifact.
        what: String,
        /// The URL it was fetched from.
        url: String,
        /// The pinned or published sha256.
        expected: String,
        /// What the download hashed to.
        actual: String,
    },

    /// An upstream checksum file lacks the artifact's entry or is malformed.
    #[error("checksum file {url} for {what}: {problem}")]
    ChecksumFile {
        /// The artifact.
        what: String,
        /// The checksum file's URL.
        url: String,
        /// What is wrong.
        problem: String,
    },

    /// A Debian `Packages` index is unreadable.
    #[error("Debian package index {url}: {problem}")]
    DebIndex {
        /// The index URL.
        url: String,
        /// What is wrong.
        problem: String,
    },

    /// A Debian package is in none of the repositories searched.
    #[error(
        "{origin}: Debian package {package} for {arch} is in none of its repositories ({repos}); versions seen: {available}"
    )]
    DebNotFound {
        /// The component or `os:<distro>` asking for it.
        origin: String,
        /// Package name and the wanted version (`name 1.2-1`, or `name (any version)`).
        package: String,
        /// Arch.
        arch: String,
        /// Index URLs searched.
        repos: String,
        /// The versions the indexes have, or "none".
        available: String,
    },

    /// A downloaded .deb could not be read for the apt repository metadata.
    #[error("failed to read Debian package {}: {problem}", path.display())]
    ReadDeb {
        /// The .deb file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// A member could not be taken out of an archive.
    #[error("failed to extract `{member}` from {}: {problem}", archive.display())]
    Extract {
        /// The archive.
        archive: PathBuf,
        /// The member path.
        member: String,
        /// What is wrong.
        problem: String,
    },

    /// A kubegrid-agent given to the bundle builder cannot go into a bundle.
    #[error("agent {}: {problem}", path.display())]
    Agent {
        /// The agent file given.
        path: PathBuf,
        /// What was seen, what was expected, and a hint.
        problem: String,
    },

    /// A chart could not be rendered into the bundle's manifests.
    #[error("failed to render chart {what} with the bundle's helm: {problem}")]
    RenderChart {
        /// Component, version and URL of the chart.
        what: String,
        /// What was seen, what was expected, and a hint.
        problem: String,
    },

    /// A root file system could not be made of a Debian package's files.
    #[error("failed to make the root file system `{name}` of Debian package {}: {problem}", deb.display())]
    Rootfs {
        /// The rootfs name (sources.yaml `rootfs.name`).
        name: String,
        /// The .deb file.
        deb: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// A file of the build's work directory or output could not be read.
    #[error("failed to read {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A file of the build's work directory or output could not be written.
    #[error("failed to write {}", path.display())]
    WriteFile {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// Packing a bundle directory into a tar.zst failed.
    #[error("failed to pack {} into {}", dir.display(), file.display())]
    Pack {
        /// The bundle directory.
        dir: PathBuf,
        /// The packed file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A packed bundle could not be unpacked, or holds something a bundle must not.
    #[error("failed to unpack {}: {problem}", file.display())]
    Unpack {
        /// The packed file.
        file: PathBuf,
        /// What is wrong, naming the entry.
        problem: String,
    },
}

impl Error {
    /// Whether the error is about the input (a key, a bundle, a signature, a sources file,
    /// build flags) rather than a failure of this machine or of upstream; the CLI exits 2 for
    /// those.
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            Error::GenerateKey { .. }
                | Error::WriteKey { .. }
                | Error::WriteSignature { .. }
                | Error::HttpClient { .. }
                | Error::Download { .. }
                | Error::ChecksumMismatch { .. }
                | Error::ChecksumFile { .. }
                | Error::DebIndex { .. }
                | Error::DebNotFound { .. }
                | Error::ReadDeb { .. }
                | Error::Extract { .. }
                | Error::Rootfs { .. }
                | Error::ReadFile { .. }
                | Error::WriteFile { .. }
                | Error::Pack { .. }
                | Error::PullImage { .. }
        )
    }
}
