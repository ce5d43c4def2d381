//! The bundle registry (`spec.bundle.registry`): where it runs, its CA and server certificate
//! (kept in the journal per cluster like the cluster's other CAs, so re-applies change nothing
//! on hosts), the certificate sets hosts get, and [`BundleRegistryEndpoint`], what the step
//! that pushes the bundle's images into it needs.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use kubegrid_api::Manifest;
use kubegrid_journal::StoredCert;
use kubegrid_pki::{
    Ca, IssuedCert, generate_registry_ca, matches_sans, needs_renewal, registry_ca_files,
    registry_server_files, registry_server_spec, time::OffsetDateTime,
};
use kubegrid_plan::{BundleRegistry, PkiFile, REGISTRY_CA_SET, REGISTRY_SET};

use crate::{
    error::Error,
    operation::{Mode, Run},
};

/// The journal's name for the registry CA.
const CA_NAME: &str = "registry-ca";
/// A stored server certificate this close to expiry is issued again instead of reused.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Lifetimes when the operation has no Kubernetes settings to take them from (kubeadm's).
const DEFAULT_VALIDITY_HOURS: (u64, u64) = (8760, 87600);

/// How to reach the bundle registry once the `registry` phase has started it: what pushing
/// the bundle's images needs. [`prepare`] puts it in [`Run::registry`].
#[derive(Clone, PartialEq, Eq)]
pub struct BundleRegistryEndpoint {
    /// The Node that runs it.
    pub host: String,
    /// That Node's address, which every host (and the engine) dials.
    pub address: String,
    /// The port it listens on.
    pub port: u16,
    /// "https", or "http" when the spec asks for plain HTTP.
    pub scheme: &'static str,
    /// The registry CA certificate (PEM) its server certificate chains to; None for plain
    /// HTTP. Trust only this for the push, not the system roots.
    pub ca_pem: Option<String>,
}

impl BundleRegistryEndpoint {
    /// `address:port` (IPv6 bracketed): the registry part of image references pushed there.
    pub fn authority(&self) -> String {
        self.registry().authority()
    }

    /// The base URL, `https://10.0.0.5:5000`.
    pub fn url(&self) -> String {
        self.registry().endpoint()
    }

    /// The repository the bundle image `name` (full, without tag: `registry.k8s.io/pause`)
    /// is pushed to, so that hosts' pulls of it through containerd's mirrors find it:
    /// `registry.k8s.io/pause` again, `docker.io/library/busybox` for `docker.io/busybox`.
    /// None when no host pulls `name`'s registry through this one.
    pub fn repository(name: &str) -> Option<String> {
        BundleRegistry::repository(name)
    }

    /// Whether it serves plain HTTP.
    pub fn plain_http(&self) -> bool {
        self.scheme == "http"
    }

    fn registry(&self) -> BundleRegistry {
        BundleRegistry {
            host: self.host.clone(),
            address: self.address.clone(),
            port: self.port,
            plain_http: self.scheme == "http",
        }
    }
}

impl std::fmt::Debug for BundleRegistryEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleRegistryEndpoint")
            .field("host", &self.host)
            .field("url", &self.url())
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .finish()
    }
}

/// The compiler's view of `spec.bundle.registry`: the Node it names, at that Node's address.
/// None when the spec runs no registry; an error when the Node is not in the spec (which
/// validation reports first).
pub fn bundle_registry(
    manifest: &Manifest,
) -> Result<Option<BundleRegistry>, kubegrid_plan::Error> {
    let Some(spec) = manifest
        .cluster()
        .spec
        .bundle
        .as_ref()
        .and_then(|b| b.registry.as_ref())
    else {
        return Ok(None);
    };
    let hosts = manifest.hosts();
    let node = hosts
        .iter()
        .find(|h| h.name == spec.host)
        .ok_or_else(|| kubegrid_plan::Error::InvalidContext {
            problem: format!(
                "spec.bundle.registry.host names `{}`, which is not a Node of this cluster (Nodes: {})",
                spec.host,
                hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    Ok(Some(BundleRegistry {
        host: node.name.clone(),
        address: node.address.clone(),
        port: spec.port,
        plain_http: spec.plain_http,
    }))
}

/// Loads or creates the registry CA and the registry host's server certificate (TLS only),
/// adds the `registry-ca` set to every host's certificates and the `registry` set to the
/// registry host's, and records the endpoint in [`Run::registry`]. A plan issues in memory
/// only; an apply stores what it issued in the journal.
pub async fn prepare(run: &mut Run) -> Result<(), Error> {
    let Some(registry) = run.req.context.bundle_registry.clone() else {
        run.registry = None;
        return Ok(());
    };
    let mut endpoint = BundleRegistryEndpoint {
        host: registry.host.clone(),
        address: registry.address.clone(),
        port: registry.port,
        scheme: registry.scheme(),
        ca_pem: None,
    };
    if registry.plain_http {
        run.registry = Some(endpoint);
        return Ok(());
    }
    let index = run
        .req
        .hosts
        .iter()
        .position(|h| h.target.host == registry.host)
        .ok_or_else(|| Error::Compile {
            host: registry.host.clone(),
            source: Box::new(kubegrid_plan::Error::InvalidContext {
                problem: format!(
                    "the bundle registry runs on {}, which is not among the operation's hosts",
                    registry.host
                ),
            }),
        })?;
    let (validity, ca_validity) = run
        .req
        .context
        .kubernetes
        .as_ref()
        .map_or(DEFAULT_VALIDITY_HOURS, |k| {
            (k.cert_validity_hours, k.ca_validity_hours)
        });
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let save = run.req.mode == Mode::Apply;
    let ca = load_or_create_ca(run, save, hours(ca_validity)).await?;
    let addresses: Vec<IpAddr> = registry.address.parse().into_iter().collect();
    let spec = registry_server_spec(&registry.host, &addresses, hours(validity));
    let name = format!("registry-server-{}", registry.host);
    let stored = run.journal.cert(&run.req.cluster, &name).await?;
    let reusable = stored.filter(|s| {
        matches_sans(&s.cert_pem, &spec.dns_names, &spec.ip_addresses).unwrap_or(false)
            && !needs_renewal(&s.cert_pem, RENEW_BEFORE, OffsetDateTime::now_utc()).unwrap_or(true)
    });
    let server = match reusable {
        Some(s) => IssuedCert {
            cert_pem: s.cert_pem,
            key_pem: s.key_pem,
        },
        None => {
            let issued = ca.issue(&spec).map_err(|e| pki_error(&name, e))?;
            put(run, save, &name, &issued.cert_pem, &issued.key_pem).await?;
            issued
        }
    };
    let every_host = plan_files(registry_ca_files(ca.cert_pem()));
    for sets in &mut run.pki {
        sets.insert(REGISTRY_CA_SET.to_string(), every_host.clone());
    }
    run.pki[index].insert(
        REGISTRY_SET.to_string(),
        plan_files(registry_server_files(ca.cert_pem(), &server)),
    );
    endpoint.ca_pem = Some(ca.cert_pem().to_string());
    run.registry = Some(endpoint);
    Ok(())
}

/// Losing this CA breaks nothing for long: a new one goes to every host with a new server
/// certificate in the same apply, so unlike the cluster CA no host-side copy is guarded.
async fn load_or_create_ca(run: &Run, save: bool, validity: Duration) -> Result<Ca, Error> {
    if let Some(s) = run.journal.cert(&run.req.cluster, CA_NAME).await? {
        return Ca::from_pem(&s.cert_pem, &s.key_pem).map_err(|e| pki_error(CA_NAME, e));
    }
    let ca = generate_registry_ca(validity).map_err(|e| pki_error(CA_NAME, e))?;
    put(run, save, CA_NAME, ca.cert_pem(), ca.key_pem()).await?;
    Ok(ca)
}

async fn put(
    run: &Run,
    save: bool,
    name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(), Error> {
    if !save {
        return Ok(());
    }
    let stored = StoredCert {
        cert_pem: cert_pem.to_string(),
        key_pem: key_pem.to_string(),
    };
    Ok(run
        .journal
        .put_cert(&run.req.cluster, name, &stored)
        .await?)
}

fn pki_error(name: &str, source: kubegrid_pki::Error) -> Error {
    Error::Pki {
        what: name.to_string(),
        source: Box::new(source),
    }
}

fn plan_files(files: Vec<kubegrid_pki::PkiFile>) -> Vec<PkiFile> {
    files
        .into_iter()
        .map(|f| PkiFile {
            path: PathBuf::from(f.path),
            content: f.content,
            mode: f.mode,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec, the compiler and the PKI each name these; they must agree.
    #[test]
    fn crates_agree_on_the_served_registries_and_the_registry_paths() {
        assert_eq!(
            kubegrid_api::BUNDLE_REGISTRY_MIRRORED,
            kubegrid_plan::BUNDLE_REGISTRY_MIRRORED
        );
        assert_eq!(
            kubegrid_plan::REGISTRY_CA_CERT,
            kubegrid_pki::REGISTRY_CA_CERT
        );
        assert_eq!(kubegrid_plan::REGISTRY_CERT, kubegrid_pki::REGISTRY_CERT);
        assert_eq!(kubegrid_plan::REGISTRY_KEY, kubegrid_pki::REGISTRY_KEY);
    }

    #[test]
    fn endpoint_urls_follow_the_scheme() {
        let endpoint = BundleRegistryEndpoint {
            host: "reg-1".into(),
            address: "fd00::5".into(),
            port: 5000,
            scheme: "http",
            ca_pem: None,
        };
        assert_eq!(endpoint.url(), "http://[fd00::5]:5000");
        assert_eq!(endpoint.authority(), "[fd00::5]:5000");
        assert!(endpoint.plain_http());
        assert_eq!(
            BundleRegistryEndpoint::repository("docker.io/busybox").as_deref(),
            Some("docker.io/library/busybox")
        );
    }
}
