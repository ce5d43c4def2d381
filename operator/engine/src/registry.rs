//! The bundle registry (`spec.bundle.registry`): where it runs, its CA and server certificate
//! (kept in the journal per cluster like the cluster's other CAs, so re-applies change nothing
//! on hosts), the certificate sets hosts get, and [`BundleRegistryEndpoint`], what the step
//! that pushes the bundle's images into it needs.

use std::{net::IpAddr, time::Duration};

use kubegrid_api::Manifest;
use kubegrid_pki::{
    generate_registry_ca, registry_ca_files, registry_server_files, registry_server_spec,
};
use kubegrid_plan::{
    BundleRegistry, PkiFile, REGISTRY_CA_SET, REGISTRY_HTPASSWD, REGISTRY_PUSH_SET, REGISTRY_SET,
};

use crate::{
    error::Error,
    kubernetes::pki::{Store, plan_files},
    operation::Run,
    registry_push::{self, PushCredential},
};

/// The journal's name for the registry CA.
const CA_NAME: &str = "registry-ca";
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
    /// The credential the push endpoint (on the next port) asks for; the registry on `port`
    /// is read-only.
    pub push: Option<PushCredential>,
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

    /// `address:push_port` (IPv6 bracketed): where the engine pushes.
    pub fn push_authority(&self) -> String {
        self.registry().push_authority()
    }

    /// The push endpoint's port.
    pub fn push_port(&self) -> u16 {
        self.registry().push_port()
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
            .field("push", &self.push)
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
    let registry = BundleRegistry {
        host: node.name.clone(),
        address: node.address.clone(),
        port: spec.port,
        plain_http: spec.plain_http,
    };
    // Checked here, before any host is contacted: port 65535 leaves no push port.
    registry.validate()?;
    Ok(Some(registry))
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
        push: None,
    };
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
    let push = registry_push::credential(&Store::new(run)).await?;
    run.pki[index].insert(
        REGISTRY_PUSH_SET.to_string(),
        vec![PkiFile {
            path: REGISTRY_HTPASSWD.into(),
            content: push.htpasswd_file(),
            mode: 0o600,
        }],
    );
    endpoint.push = Some(push);
    if registry.plain_http {
        run.registry = Some(endpoint);
        return Ok(());
    }
    let (validity, ca_validity) = run
        .req
        .context
        .kubernetes
        .as_ref()
        .map_or(DEFAULT_VALIDITY_HOURS, |k| {
            (k.cert_validity_hours, k.ca_validity_hours)
        });
    let hours = |h: u64| Duration::from_secs(h * 3600);
    // Losing this CA breaks nothing for long: a new one goes to every host with a new server
    // certificate in the same apply, so unlike the cluster CA no host-side copy is guarded.
    let store = Store::new(run);
    let ca = store
        .stored_or_new_ca(CA_NAME, || generate_registry_ca(hours(ca_validity)))
        .await?;
    let addresses: Vec<IpAddr> = registry.address.parse().into_iter().collect();
    let spec = registry_server_spec(&registry.host, &addresses, hours(validity));
    let server = store
        .leaf(&ca, &format!("registry-server-{}", registry.host), &spec)
        .await?;
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
            push: None,
        };
        assert_eq!(endpoint.url(), "http://[fd00::5]:5000");
        assert_eq!(endpoint.authority(), "[fd00::5]:5000");
        assert_eq!(endpoint.push_authority(), "[fd00::5]:5001");
        assert!(endpoint.plain_http());
        assert_eq!(
            BundleRegistryEndpoint::repository("docker.io/busybox").as_deref(),
            Some("docker.io/library/busybox")
        );
    }
}
