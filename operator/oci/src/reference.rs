//! Image references (`registry.k8s.io/pause:3.10`) and how a repository is named on a registry
//! that is not the image's own.

use std::{fmt, str::FromStr};

use crate::{
    digest::Digest,
    error::{Error, Result},
};

/// A parsed image reference: registry, repository, and a tag and/or a digest.
///
/// Docker Hub's defaults apply as containerd and docker apply them: `busybox` is
/// `docker.io/library/busybox:latest`, `foo/bar` is `docker.io/foo/bar:latest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses a reference; a reference without tag and digest gets the tag `latest`.
    pub fn parse(text: &str) -> Result<Self> {
        let parsed: oci_client::Reference = text.parse().map_err(|e: oci_client::ParseError| {
            Error::ParseReference {
                reference: text.to_owned(),
                problem: format!(
                    "{e}; expected [registry/]repository[:tag][@sha256:<hex>], e.g. registry.k8s.io/pause:3.10"
                ),
            }
        })?;
        let digest = parsed
            .digest()
            .map(|d| {
                Digest::parse(d).map_err(|e| Error::ParseReference {
                    reference: text.to_owned(),
                    problem: e.to_string(),
                })
            })
            .transpose()?;
        // oci-spec lets an uppercase first component through when it is not a host name
        // (`UPPER/case` becomes a Docker Hub repository); registries refuse such names.
        let repository = parsed.repository();
        if !repository
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(Error::ParseReference {
                reference: text.to_owned(),
                problem: format!(
                    "repository `{repository}` may hold only lowercase letters, digits and . _ - /"
                ),
            });
        }
        Ok(Self {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            tag: parsed.tag().map(str::to_owned),
            digest,
        })
    }

    /// Builds a reference from parts, e.g. to name an image in another registry.
    pub fn new(
        registry: impl Into<String>,
        repository: impl Into<String>,
        tag: Option<String>,
        digest: Option<Digest>,
    ) -> Self {
        Self {
            registry: registry.into(),
            repository: repository.into(),
            tag,
            digest,
        }
    }

    /// The registry host (with port when given): `registry.k8s.io`, `docker.io`, `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository on that registry: `pause`, `coredns/coredns`, `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Registry and repository without tag or digest: `registry.k8s.io/pause`, the bundle
    /// manifest's image `name`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name a layout's index.json records for this image: `name:tag`, or `name@digest` for
    /// a digest-only reference. containerd imports it as the image name, so it must be the
    /// reference pods use.
    pub fn layout_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{}:{tag}", self.name()),
            (None, Some(digest)) => format!("{}@{digest}", self.name()),
            (None, None) => self.name(),
        }
    }

    /// The same image with the digest replaced (the tag is kept).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

/// How an image's repository is named on a registry that serves it in place of its own
/// registry (an in-cluster registry, a pull-through mirror).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepositoryNaming {
    /// The upstream repository path alone: `registry.k8s.io/pause` -> `pause`,
    /// `docker.io/library/busybox` -> `library/busybox`.
    ///
    /// This is what containerd asks a plain `certs.d/<upstream>/hosts.toml` mirror host for: it
    /// keeps the upstream repository path and only swaps the host
    /// (`GET /v2/pause/manifests/3.10`). Two upstream registries holding the same repository
    /// path collide under this naming, which is why kubegrid's own bundle registry uses
    /// [`RepositoryNaming::WithRegistry`] with `override_path` mirrors instead.
    WithoutRegistry,
    /// The upstream host kept as the first path element: `registry.k8s.io/pause`.
    ///
    /// This is the convention of generic mirrors that front several upstreams (and of
    /// `--mirror` for files): one namespace per upstream host, no collisions. kubegrid's bundle
    /// registry holds images this way; its hosts.toml entries point containerd at
    /// `https://<registry>/v2/<upstream host>` with `override_path = true`.
    WithRegistry,
}

/// The repository `image` gets on a registry that stands in for its own, under `naming`.
pub fn target_repository(image: &ImageRef, naming: RepositoryNaming) -> String {
    match naming {
        RepositoryNaming::WithoutRegistry => image.repository().to_owned(),
        RepositoryNaming::WithRegistry => image.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_defaults_apply() {
        let busybox = ImageRef::parse("busybox").unwrap();
        assert_eq!(busybox.registry(), "docker.io");
        assert_eq!(busybox.repository(), "library/busybox");
        assert_eq!(busybox.tag(), Some("latest"));
        assert_eq!(busybox.to_string(), "docker.io/library/busybox:latest");
        let org = ImageRef::parse("foo/bar:1").unwrap();
        assert_eq!(org.name(), "docker.io/foo/bar");
    }

    #[test]
    fn registry_with_port_tag_and_digest_parse() {
        let digest = Digest::of(b"index");
        let text = format!("127.0.0.1:5000/registry.k8s.io/pause:3.10@{digest}");
        let image = ImageRef::parse(&text).unwrap();
        assert_eq!(image.registry(), "127.0.0.1:5000");
        assert_eq!(image.repository(), "registry.k8s.io/pause");
        assert_eq!(image.tag(), Some("3.10"));
        assert_eq!(image.digest(), Some(&digest));
        assert_eq!(image.to_string(), text);
        assert_eq!(
            image.layout_name(),
            "127.0.0.1:5000/registry.k8s.io/pause:3.10"
        );
        let by_digest = ImageRef::parse(&format!("registry.k8s.io/pause@{digest}")).unwrap();
        assert_eq!(by_digest.tag(), None);
        assert_eq!(
            by_digest.layout_name(),
            format!("registry.k8s.io/pause@{digest}")
        );
    }

    #[test]
    fn bad_references_are_named_in_the_error() {
        for bad in ["", "UPPER/case", "pause@sha256:abc", "a b"] {
            let err = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn target_repository_follows_the_naming() {
        let pause = ImageRef::parse("registry.k8s.io/pause:3.10").unwrap();
        let busybox = ImageRef::parse("busybox:1.36").unwrap();
        let coredns = ImageRef::parse("registry.k8s.io/coredns/coredns:v1.12.0").unwrap();
        let strip = RepositoryNaming::WithoutRegistry;
        assert_eq!(target_repository(&pause, strip), "pause");
        assert_eq!(target_repository(&busybox, strip), "library/busybox");
        assert_eq!(target_repository(&coredns, strip), "coredns/coredns");
        assert_eq!(
            target_repository(&pause, RepositoryNaming::WithRegistry),
            "registry.k8s.io/pause"
        );
    }
}
