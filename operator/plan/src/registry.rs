//! The bundle registry: an image registry kubegrid runs on one host from the bundle's
//! `registry` binary, which every host's containerd pulls the mirrored registries from.
//!
//! Each upstream's images live under a prefix named after it, so two registries' images of
//! one name never collide: `registry.k8s.io/pause:3.10` is repository
//! `registry.k8s.io/pause` in the bundle registry ([`BundleRegistry::repository`]), and
//! registry.k8s.io's certs.d mirror is `https://<address>:<port>/v2/registry.k8s.io` with
//! containerd's `override_path`.

use serde::Serialize;

use crate::{
    context::RegistryMirror,
    error::{Error, Result},
};

/// The upstream registries whose pulls go to the bundle registry, never upstream, when one
/// is configured. kubegrid-api's list of the same name must match.
pub const BUNDLE_REGISTRY_MIRRORED: &[&str] = &[
    "registry.k8s.io",
    "docker.io",
    "quay.io",
    "ghcr.io",
    "nvcr.io",
];

/// The bundle file (kind binary) the registry runs from.
pub const REGISTRY_BUNDLE_NAME: &str = "registry";
/// Where the registry binary is installed.
pub const REGISTRY_BINARY: &str = "/usr/local/bin/kubegrid-registry";
/// The registry's configuration file.
pub const REGISTRY_CONFIG: &str = "/etc/kubegrid/registry/config.yml";
/// Where the registry keeps images.
pub const REGISTRY_DATA_DIR: &str = "/var/lib/kubegrid/registry";
/// The registry's systemd unit.
pub const REGISTRY_UNIT: &str = "kubegrid-registry.service";
/// The registry CA certificate on every host (kubegrid-pki's `REGISTRY_CA_CERT`).
pub const REGISTRY_CA_CERT: &str = "/etc/kubegrid/pki/registry-ca.crt";
/// The registry's serving certificate (kubegrid-pki's `REGISTRY_CERT`).
pub const REGISTRY_CERT: &str = "/etc/kubegrid/pki/registry.crt";
/// The registry's serving key (kubegrid-pki's `REGISTRY_KEY`).
pub const REGISTRY_KEY: &str = "/etc/kubegrid/pki/registry.key";

/// The push endpoint's configuration file.
pub const REGISTRY_PUSH_CONFIG: &str = "/etc/kubegrid/registry/config-push.yml";
/// The push endpoint's systemd unit.
pub const REGISTRY_PUSH_UNIT: &str = "kubegrid-registry-push.service";
/// The push endpoint's htpasswd file (one bcrypt line, the engine's credential).
pub const REGISTRY_HTPASSWD: &str = "/etc/kubegrid/registry/htpasswd";
/// The user the engine pushes as.
pub const REGISTRY_PUSH_USER: &str = "kubegrid-push";
/// The `pki_files:` set of the registry host that holds the push endpoint's htpasswd file.
pub const REGISTRY_PUSH_SET: &str = "registry-push";

/// The `pki_files:` set every host that pulls through the registry gets: the CA certificate.
pub const REGISTRY_CA_SET: &str = "registry-ca";
/// The `pki_files:` set of the registry host: the CA certificate and the serving pair.
pub const REGISTRY_SET: &str = "registry";

/// A line every certs.d `hosts.toml` that points at the bundle registry carries, so a reset
/// can tell them from the user's own mirrors.
pub const BUNDLE_REGISTRY_MARKER: &str = "# kubegrid: bundle registry";

/// Where the bundle registry runs and how hosts reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleRegistry {
    /// The host (Node name) that runs it.
    pub host: String,
    /// The address other hosts reach it at: the host's address.
    pub address: String,
    /// The port it listens on.
    pub port: u16,
    /// Plain HTTP instead of TLS from kubegrid's registry CA.
    pub plain_http: bool,
}

impl BundleRegistry {
    /// "https", or "http" for plain HTTP.
    pub fn scheme(&self) -> &'static str {
        if self.plain_http { "http" } else { "https" }
    }

    /// `address:port` (IPv6 bracketed): the registry part of image references that name it.
    pub fn authority(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// The URL containerd pulls from, `https://10.0.0.5:5000`.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority())
    }

    /// What the registry binds: every address of the host's family, on the port.
    pub fn listen(&self) -> String {
        if self.address.contains(':') {
            format!("[::]:{}", self.port)
        } else {
            format!("0.0.0.0:{}", self.port)
        }
    }

    /// The port of the push endpoint: the next one. The registry itself is read-only; the
    /// engine pushes the bundle's images through this endpoint, which asks for its
    /// credential. [`BundleRegistry::validate`] keeps it in range.
    pub fn push_port(&self) -> u16 {
        self.port.saturating_add(1)
    }

    /// `address:push_port` (IPv6 bracketed).
    pub fn push_authority(&self) -> String {
        BundleRegistry {
            port: self.push_port(),
            ..self.clone()
        }
        .authority()
    }

    /// What the push endpoint binds: every address of the host's family, on the push port.
    pub fn push_listen(&self) -> String {
        BundleRegistry {
            port: self.push_port(),
            ..self.clone()
        }
        .listen()
    }

    /// The certs.d mirror of `registry` that sends its pulls here, under the registry's
    /// prefix: no `server`, so pulls never fall back upstream; with TLS, verified against
    /// the registry CA.
    pub fn mirror(&self, registry: &str) -> RegistryMirror {
        RegistryMirror {
            registry: registry.to_string(),
            endpoints: vec![format!("{}/v2/{registry}", self.endpoint())],
            server: None,
            ca_file: (!self.plain_http).then(|| REGISTRY_CA_CERT.to_string()),
            skip_verify: false,
            override_path: true,
        }
    }

    /// Whether `mirror` is this registry's mirror for its upstream.
    pub fn serves(&self, mirror: &RegistryMirror) -> bool {
        *mirror == self.mirror(&mirror.registry)
    }

    /// The repository an upstream image is pushed to here, so that a pull of it through
    /// containerd's mirror finds it: the upstream host, then the path, with Docker Hub's
    /// implicit `library/` made explicit (`docker.io/busybox` is
    /// `docker.io/library/busybox`). `name` is a full repository name without tag or digest
    /// (`registry.k8s.io/pause`). None when the host is not one of
    /// [`BUNDLE_REGISTRY_MIRRORED`]: no host's pull would reach it here.
    pub fn repository(name: &str) -> Option<String> {
        let (host, path) = name.split_once('/')?;
        if !BUNDLE_REGISTRY_MIRRORED.contains(&host) || path.is_empty() {
            return None;
        }
        if host == "docker.io" && !path.contains('/') {
            return Some(format!("docker.io/library/{path}"));
        }
        Some(name.to_string())
    }

    /// One mirror per registry in [`BUNDLE_REGISTRY_MIRRORED`].
    pub fn mirrors(&self) -> Vec<RegistryMirror> {
        BUNDLE_REGISTRY_MIRRORED
            .iter()
            .map(|r| self.mirror(r))
            .collect()
    }

    /// A host, an address usable in a URL and a port other than 0.
    pub fn validate(&self) -> Result<()> {
        let invalid = |problem: String| Err(Error::InvalidContext { problem });
        if self.host.trim().is_empty() {
            return invalid("the bundle registry has no host".into());
        }
        let address_ok = !self.address.is_empty()
            && self
                .address
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !address_ok {
            return invalid(format!(
                "the bundle registry's address `{}` (host {}) is not an IP address or host name",
                self.address, self.host
            ));
        }
        if self.port == 0 || self.port == u16::MAX {
            return invalid(format!(
                "the bundle registry on {} has port {}; expected 1-65534 (spec.bundle.registry.port: images are pushed on the next port, which must exist too)",
                self.host, self.port
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(address: &str, plain_http: bool) -> BundleRegistry {
        BundleRegistry {
            host: "reg-1".into(),
            address: address.into(),
            port: 5000,
            plain_http,
        }
    }

    #[test]
    fn urls_bracket_ipv6_and_follow_the_scheme() {
        let v4 = registry("10.0.0.5", false);
        assert_eq!(v4.endpoint(), "https://10.0.0.5:5000");
        assert_eq!(v4.listen(), "0.0.0.0:5000");
        let v6 = registry("fd00::5", true);
        assert_eq!(v6.endpoint(), "http://[fd00::5]:5000");
        assert_eq!(v6.authority(), "[fd00::5]:5000");
        assert_eq!(v6.listen(), "[::]:5000");
        assert_eq!(v6.push_authority(), "[fd00::5]:5001");
        assert_eq!(v6.push_listen(), "[::]:5001");
        assert_eq!(v4.push_port(), 5001);
    }

    #[test]
    fn the_last_port_leaves_no_room_for_the_push_endpoint() {
        let mut r = registry("10.0.0.5", false);
        r.port = u16::MAX;
        let e = r.validate().unwrap_err().to_string();
        assert!(e.contains("65535") && e.contains("next port"), "{e}");
        r.port = u16::MAX - 1;
        r.validate().unwrap();
    }

    #[test]
    fn mirrors_never_fall_back_and_trust_the_ca_only_with_tls() {
        let tls = registry("10.0.0.5", false);
        for m in tls.mirrors() {
            assert_eq!(m.server, None);
            assert_eq!(m.ca_file.as_deref(), Some(REGISTRY_CA_CERT));
            assert_eq!(
                m.endpoints,
                [format!("https://10.0.0.5:5000/v2/{}", m.registry)]
            );
            assert!(m.override_path && tls.serves(&m));
            m.validate().unwrap();
        }
        let user = RegistryMirror::new("docker.io", vec!["https://10.0.0.5:5000".into()]);
        assert!(!tls.serves(&user));
        let plain = registry("10.0.0.5", true).mirrors();
        let names: Vec<_> = plain.iter().map(|m| m.registry.as_str()).collect();
        assert_eq!(names, BUNDLE_REGISTRY_MIRRORED);
        assert!(plain.iter().all(|m| m.ca_file.is_none()));
    }

    #[test]
    fn repositories_keep_the_upstream_host_as_prefix() {
        let repo = BundleRegistry::repository;
        assert_eq!(
            repo("registry.k8s.io/pause").as_deref(),
            Some("registry.k8s.io/pause")
        );
        assert_eq!(
            repo("docker.io/busybox").as_deref(),
            Some("docker.io/library/busybox")
        );
        assert_eq!(
            repo("docker.io/library/busybox").as_deref(),
            Some("docker.io/library/busybox")
        );
        assert_eq!(
            repo("nvcr.io/nvidia/k8s-device-plugin").as_deref(),
            Some("nvcr.io/nvidia/k8s-device-plugin")
        );
        assert_eq!(repo("gcr.io/x/y"), None);
        assert_eq!(repo("busybox"), None);
    }

    #[test]
    fn bad_addresses_and_port_zero_are_refused() {
        assert!(registry("10.0.0.5\"", false).validate().is_err());
        let mut zero = registry("10.0.0.5", false);
        zero.port = 0;
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("port 0"), "{err}");
    }
}
