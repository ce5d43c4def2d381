//! The one error type of this crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a registry client call failed with: oci-client's error, boxed because it is large and
/// every `Result` of this crate would carry its size.
pub type RegistryError = Box<oci_client::errors::OciDistributionError>;

/// Everything that can go wrong reading, writing, pulling into or pushing from an OCI layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference did not parse.
    #[error("invalid image reference `{reference}`: {problem}")]
    ParseReference {
        /// The text given.
        reference: String,
        /// What was wrong and what was expected.
        problem: String,
    },

    /// A digest did not parse.
    #[error("invalid digest `{digest}`: {problem}; expected sha256:<64 lowercase hex digits>")]
    ParseDigest {
        /// The text given.
        digest: String,
        /// What was wrong.
        problem: String,
    },

    /// A registry or mirror URL did not parse.
    #[error(
        "invalid registry URL `{url}`: {problem}; expected http[s]://host[:port][/path], e.g. http://127.0.0.1:5001"
    )]
    ParseRegistryUrl {
        /// The text given.
        url: String,
        /// What was wrong.
        problem: String,
    },

    /// A layout directory or its fixed files could not be created.
    #[error("failed to create OCI layout at {}", path.display())]
    CreateLayout {
        /// The file or directory being created.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A directory is not an OCI image layout kubegrid can use.
    #[error("{} is not an OCI image layout: {problem}; hint: create it with Layout::create or point at a bundle's images/ directory", path.display())]
    OpenLayout {
        /// The layout directory.
        path: PathBuf,
        /// What was seen and what was expected.
        problem: String,
    },

    /// index.json could not be read or parsed.
    #[error("failed to read the layout index {}: {problem}", path.display())]
    ReadIndex {
        /// The index.json path.
        path: PathBuf,
        /// The cause.
        problem: String,
    },

    /// index.json could not be written.
    #[error("failed to write the layout index {}", path.display())]
    WriteIndex {
        /// The index.json path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A blob file could not be written.
    #[error("failed to write blob {}", path.display())]
    WriteBlob {
        /// The blob (or its temporary file) being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A blob file could not be read.
    #[error("failed to read blob {}", path.display())]
    ReadBlob {
        /// The blob file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The byte stream of a blob broke off (network error, or oci-client's own digest check).
    #[error("failed to receive blob {blob}")]
    ReceiveBlob {
        /// The blob's digest.
        blob: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// Content received or read does not hash to the digest it was asked for under.
    #[error("blob {blob} hashes to {actual}; the content is corrupt or was substituted")]
    BlobDigestMismatch {
        /// The expected digest (the blob's name).
        blob: String,
        /// What the content hashes to.
        actual: String,
    },

    /// A digest given to `verify` is not in index.json.
    #[error("image {digest} is not listed in {}; hint: the layout is not the one the manifest was written with, or the image was never pulled", index.display())]
    VerifyImageMissing {
        /// The digest looked for.
        digest: String,
        /// The index.json searched.
        index: PathBuf,
    },

    /// A blob reachable from an image is not in the layout.
    #[error("image {image}: blob {blob} is missing ({} does not exist); hint: the layout is incomplete, pull the image again", path.display())]
    VerifyBlobMissing {
        /// The image's name in index.json.
        image: String,
        /// The missing blob's digest.
        blob: String,
        /// Where it should be.
        path: PathBuf,
    },

    /// A blob reachable from an image does not hash to its name or has the wrong size.
    #[error("image {image}: blob {blob} is corrupt: {problem}; hint: delete {} and pull the image again", path.display())]
    VerifyBlobCorrupt {
        /// The image's name in index.json.
        image: String,
        /// The blob's digest.
        blob: String,
        /// The blob file.
        path: PathBuf,
        /// What was seen and what was expected.
        problem: String,
    },

    /// A manifest or index blob is not valid JSON of the expected shape.
    #[error("image {image}: manifest {blob} does not parse: {problem}")]
    ParseManifest {
        /// The image's name.
        image: String,
        /// The manifest's digest.
        blob: String,
        /// The parser's complaint.
        problem: String,
    },

    /// A registry client could not be built (bad CA PEM, TLS setup).
    #[error(
        "failed to set up a client for registry {registry}; hint: check the CA certificate PEM"
    )]
    BuildClient {
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },

    /// A registry did not answer `GET /v2/` as a registry does.
    #[error(
        "registry {registry} is not answering at {url}: {problem}; hint: check that it runs, the address and port, and plain HTTP versus TLS and its CA"
    )]
    PingRegistry {
        /// The registry host.
        registry: String,
        /// The URL asked.
        url: String,
        /// What happened.
        problem: String,
    },

    /// Fetching a manifest from a registry failed.
    #[error(
        "failed to fetch manifest {reference} of image {image} from registry {registry}; hint: check that the registry answers and holds the repository and tag"
    )]
    FetchManifest {
        /// The image as asked for.
        image: String,
        /// The tag or digest fetched.
        reference: String,
        /// The registry host asked.
        registry: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },

    /// The image's top manifest is not the pinned one.
    #[error(
        "image {image} resolves to {seen} upstream, but the pin is {expected}; refusing it; hint: the tag was moved or the mirror serves something else, check and update the pin deliberately"
    )]
    PinMismatch {
        /// The image.
        image: String,
        /// What the registry served.
        seen: String,
        /// The pin.
        expected: String,
    },

    /// A manifest fetched by digest does not hash to that digest.
    #[error(
        "image {image}: registry {registry} served manifest {manifest} with content hashing to {actual}"
    )]
    ManifestDigestMismatch {
        /// The image.
        image: String,
        /// The registry host.
        registry: String,
        /// The digest asked for.
        manifest: String,
        /// What the content hashes to.
        actual: String,
    },

    /// A wanted architecture is not in the image.
    #[error("image {image} has no linux/{arch} image (it has: {}); hint: drop {arch} from the wanted arches or pick an image that is built for it", available.join(", "))]
    MissingArch {
        /// The image.
        image: String,
        /// The missing architecture.
        arch: String,
        /// The linux architectures the image has.
        available: Vec<String>,
    },

    /// An index entry or a top manifest is a kind this crate cannot store.
    #[error(
        "image {image}: manifest {manifest} has media type {media_type}; expected an OCI/Docker image manifest or index"
    )]
    UnsupportedManifest {
        /// The image.
        image: String,
        /// The manifest digest.
        manifest: String,
        /// Its media type.
        media_type: String,
    },

    /// Pulling one blob of an image failed.
    #[error("failed to pull blob {blob} of image {image} from registry {registry}")]
    PullBlob {
        /// The image.
        image: String,
        /// The blob digest.
        blob: String,
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },

    /// The registry request for a blob failed before any byte arrived.
    #[error("the registry request failed")]
    FetchBlob {
        /// The cause.
        #[source]
        source: RegistryError,
    },

    /// The image to push is not in the layout.
    #[error("image {image} is not in the layout {}; hint: the layout holds: {}", layout.display(), held.join(", "))]
    PushImageNotInLayout {
        /// The image's layout name.
        image: String,
        /// The layout directory.
        layout: PathBuf,
        /// The names the layout holds.
        held: Vec<String>,
    },

    /// Asking a registry whether it has a blob or manifest failed.
    #[error(
        "failed to ask registry {registry} whether repository {repository} has {digest}; hint: check that the registry answers and that its TLS/CA settings match"
    )]
    CheckRegistry {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The blob or manifest digest.
        digest: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },

    /// Uploading a blob failed.
    #[error("failed to push blob {blob} of image {image} to {target}")]
    PushBlob {
        /// The image's layout name.
        image: String,
        /// The blob digest.
        blob: String,
        /// The registry host and repository.
        target: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },

    /// Uploading a manifest or index failed.
    #[error("failed to push manifest {manifest} of image {image} to {target}")]
    PushManifest {
        /// The image's layout name.
        image: String,
        /// The manifest digest.
        manifest: String,
        /// The registry host, repository and tag or digest it was pushed under.
        target: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },

    /// A binary given to an image build could not be read.
    #[error("failed to read the {arch} binary {}", path.display())]
    ReadImageBinary {
        /// The architecture it was given for.
        arch: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A binary given to an image build cannot run in a minimal image of that architecture.
    #[error("the {arch} binary {} cannot go into the image: {problem}; hint: {hint}", path.display())]
    UnfitImageBinary {
        /// The architecture it was given for.
        arch: String,
        /// The file.
        path: PathBuf,
        /// What was seen and what was expected.
        problem: String,
        /// What to do about it.
        hint: String,
    },

    /// The image build was asked for nothing sensible (no binary, an architecture twice).
    #[error("image build: {problem}")]
    ImageSpec {
        /// What was wrong and what was expected.
        problem: String,
    },

    /// A file that goes into the image (CA certificates) could not be read.
    #[error("failed to read {}, which goes into the image as {target}", path.display())]
    ReadImageFile {
        /// The file on this machine.
        path: PathBuf,
        /// Where it goes in the image.
        target: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
