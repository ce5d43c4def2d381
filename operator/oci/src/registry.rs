//! Where a registry is and how to talk to it: host, plain HTTP or HTTPS, trusted CAs, and the
//! repository prefix of a mirror URL.

use oci_client::{
    Client, Reference,
    client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol},
    secrets::RegistryAuth,
};

use crate::error::{Error, Result};

/// How to reach a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP: loopback registries in tests, an in-cluster registry the user asked to run
    /// without TLS.
    Http,
    /// HTTPS, trusting the CAs in [`Trust`].
    Https(Trust),
}

/// Which CAs an HTTPS connection trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The system's roots.
    System,
    /// The system's roots plus these PEM certificates (a corporate mirror's CA).
    SystemAnd(Vec<Vec<u8>>),
    /// Only these PEM certificates: kubegrid's own registry CA, so that no public CA can
    /// vouch for the in-cluster registry.
    Only(Vec<Vec<u8>>),
}

/// A registry to pull from or push to.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryEndpoint {
    host: String,
    prefix: String,
    transport: Transport,
    /// HTTP Basic user and password; None for anonymous access.
    basic_auth: Option<(String, String)>,
}

impl std::fmt::Debug for RegistryEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password must never reach logs.
        f.debug_struct("RegistryEndpoint")
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .field("transport", &self.transport)
            .field("basic_auth_user", &self.basic_auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl RegistryEndpoint {
    /// A registry at `host` (`host[:port]`) over `transport`, with no repository prefix.
    pub fn new(host: impl Into<String>, transport: Transport) -> Self {
        Self {
            host: host.into(),
            prefix: String::new(),
            transport,
            basic_auth: None,
        }
    }

    /// An image's own registry as containerd and docker treat it by default: plain HTTP for a
    /// loopback host (`localhost`, `127.0.0.0/8`, `::1`), HTTPS with the system roots otherwise.
    pub fn for_registry(host: &str) -> Self {
        let transport = if is_loopback(host) {
            Transport::Http
        } else {
            Transport::Https(Trust::System)
        };
        Self::new(host, transport)
    }

    /// Parses a mirror URL `http[s]://host[:port][/path]`. A path becomes a repository prefix,
    /// because a registry serves the distribution API at `/v2/` only: `https://harbor/proxy`
    /// means repositories under `proxy/` on `harbor` (Harbor's proxy-cache projects).
    pub fn parse_url(url: &str) -> Result<Self> {
        let bad = |problem: &str| Error::ParseRegistryUrl {
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        let (transport, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (Transport::Http, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Transport::Https(Trust::System), rest)
        } else {
            return Err(bad("the scheme must be http:// or https://"));
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host.contains(['@', '?', '#']) || path.contains(['?', '#']) {
            return Err(bad("credentials, queries and fragments are not supported"));
        }
        let prefix = path.trim_matches('/');
        if prefix.starts_with("v2") && (prefix.len() == 2 || prefix[2..].starts_with('/')) {
            return Err(bad(
                "leave out /v2: the distribution API path is added by the client",
            ));
        }
        Ok(Self {
            host: host.to_owned(),
            prefix: prefix.to_owned(),
            transport,
            basic_auth: None,
        })
    }

    /// The same registry trusting the CAs `trust` names; no effect on a plain HTTP endpoint.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        if let Transport::Https(current) = &mut self.transport {
            *current = trust;
        }
        self
    }

    /// The same registry, accessed with HTTP Basic credentials (a registry that takes
    /// pushes only with a password, such as kubegrid's bundle registry's push endpoint).
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_auth = Some((user.into(), password.into()));
        self
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository prefix from a mirror URL's path, empty for none.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// HTTP or HTTPS and the trusted CAs.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The repository `repository` lives under on this registry: the prefix, if any, prepended.
    pub fn repository(&self, repository: &str) -> String {
        if self.prefix.is_empty() {
            repository.to_owned()
        } else {
            format!("{}/{repository}", self.prefix)
        }
    }

    /// A reference to a tag in `repository` (already prefixed) on this registry.
    pub(crate) fn tag_ref(&self, repository: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_owned())
    }

    /// A reference to a digest in `repository` (already prefixed) on this registry.
    pub(crate) fn digest_ref(&self, repository: &str, digest: &str) -> Reference {
        Reference::with_digest(self.host.clone(), repository.to_owned(), digest.to_owned())
    }

    /// The credentials oci-client sends: Basic when set, else anonymous.
    pub(crate) fn auth(&self) -> RegistryAuth {
        match &self.basic_auth {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// An oci-client client for this registry, with its credentials (or anonymous access)
    /// registered.
    pub(crate) async fn client(&self) -> Result<Client> {
        install_crypto_provider();
        let build_err = |source| Error::BuildClient {
            registry: self.host.clone(),
            source: Box::new(source),
        };
        let pems = |pems: &[Vec<u8>]| {
            pems.iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut config = ClientConfig {
            // Registries kubegrid pushes to are on a LAN; one PUT per blob beats oci-client's
            // default of 4 MiB PATCH round trips.
            use_monolithic_push: true,
            // Index entries are chosen by this crate, never by the client's platform guess.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        match &self.transport {
            Transport::Http => config.protocol = ClientProtocol::Http,
            Transport::Https(Trust::System) => {}
            Transport::Https(Trust::SystemAnd(extra)) => {
                config.extra_root_certificates = pems(extra);
            }
            Transport::Https(Trust::Only(only)) => config.tls_certs_only = pems(only),
        }
        let client = Client::try_from(config).map_err(build_err)?;
        // `resolve_registry` is what oci-client keys stored credentials by (docker.io becomes
        // index.docker.io); without an entry it never asks for an anonymous token.
        let key = self.tag_ref("x", "x");
        client
            .store_auth_if_needed(key.resolve_registry(), &self.auth())
            .await;
        Ok(client)
    }
}

/// Makes ring rustls's process-wide crypto provider unless one is installed already.
///
/// reqwest is built without a bundled provider (its default is aws-lc-rs) because the workspace
/// uses ring; reqwest panics when it builds a TLS client and none is installed.
pub(crate) fn install_crypto_provider() {
    // An error means a provider is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether `host` (`host[:port]`, IPv6 in brackets) names this machine.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    if name == "localhost" {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_default_to_plain_http() {
        for host in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.1.2.3",
        ] {
            assert_eq!(
                RegistryEndpoint::for_registry(host).transport(),
                &Transport::Http,
                "{host}"
            );
        }
        for host in ["registry.k8s.io", "10.0.0.5:5000", "docker.io"] {
            assert_eq!(
                RegistryEndpoint::for_registry(host).transport(),
                &Transport::Https(Trust::System),
                "{host}"
            );
        }
    }

    #[test]
    fn mirror_urls_give_host_scheme_and_prefix() {
        let plain = RegistryEndpoint::parse_url("http://127.0.0.1:5001").unwrap();
        assert_eq!(plain.host(), "127.0.0.1:5001");
        assert_eq!(plain.transport(), &Transport::Http);
        assert_eq!(
            plain.repository("registry.k8s.io/pause"),
            "registry.k8s.io/pause"
        );
        let harbor = RegistryEndpoint::parse_url("https://harbor.corp/proxy/").unwrap();
        assert_eq!(harbor.host(), "harbor.corp");
        assert_eq!(harbor.transport(), &Transport::Https(Trust::System));
        assert_eq!(
            harbor.repository("registry.k8s.io/pause"),
            "proxy/registry.k8s.io/pause"
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@host",
            "http://host/v2/",
            "127.0.0.1:5000",
        ] {
            let err = RegistryEndpoint::parse_url(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn trust_applies_to_https_only() {
        let pem = b"-----BEGIN CERTIFICATE-----".to_vec();
        let https = RegistryEndpoint::new("10.0.0.5:5000", Transport::Https(Trust::System))
            .with_trust(Trust::Only(vec![pem.clone()]));
        assert_eq!(
            https.transport(),
            &Transport::Https(Trust::Only(vec![pem.clone()]))
        );
        let http = RegistryEndpoint::new("10.0.0.5:5000", Transport::Http)
            .with_trust(Trust::Only(vec![pem]));
        assert_eq!(http.transport(), &Transport::Http);
    }
}
