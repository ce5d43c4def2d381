//! The cluster's certificates: CAs and leaves kept in the journal per cluster, reused while
//! they still fit (same SANs, not near expiry) so re-applies change nothing on hosts.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf, time::Duration};

use kubegrid_journal::StoredCert;
use kubegrid_pki::{
    Ca, EtcdMember, ExternalEtcdClient, IssuedCert, LeafSpec, admin_client_spec,
    apiserver_etcd_client_spec, ca_cert_hash, control_plane_ca_files, etcd_healthcheck_client_spec,
    etcd_member_files, etcd_peer_spec, etcd_server_spec, needs_renewal, read_expiry,
    time::OffsetDateTime,
};
use kubegrid_plan::{KubernetesContext, PkiFile};

use crate::{
    error::Error,
    operation::{Mode, Run},
};

/// A stored leaf this close to expiry is issued again instead of reused.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// What [`issue`] hands the rest of the operation.
pub struct Issued {
    /// `sha256:<hex>` of the Kubernetes CA's public key.
    pub ca_cert_hash: String,
    /// Certificate sets per host index, for `pki_files:` tasks.
    pub per_host: Vec<BTreeMap<String, Vec<PkiFile>>>,
    /// The admin client certificate for the kubeconfig.
    pub admin: IssuedCert,
    /// The Kubernetes CA certificate.
    pub ca_pem: String,
}

/// The cluster's certificates in the journal: CAs and leaves are loaded from there and
/// reused, or issued and (by an apply, not a plan) stored.
pub(crate) struct Store<'a> {
    run: &'a Run,
    save: bool,
}

impl<'a> Store<'a> {
    /// The store for `run`; only an apply saves what it issues.
    pub(crate) fn new(run: &'a Run) -> Self {
        Store {
            run,
            save: run.req.mode == Mode::Apply,
        }
    }

    fn cluster(&self) -> &str {
        &self.run.req.cluster
    }

    /// The CA kept as `name`, or a new one from `generate`, with no check of the hosts: for a
    /// CA whose loss only means reissuing every certificate under it in the same apply.
    pub(crate) async fn stored_or_new_ca(
        &self,
        name: &str,
        generate: impl FnOnce() -> Result<Ca, kubegrid_pki::Error>,
    ) -> Result<Ca, Error> {
        if let Some(s) = self.run.journal.cert(self.cluster(), name).await? {
            return Ca::from_pem(&s.cert_pem, &s.key_pem).map_err(|e| pki_error(name, e));
        }
        let ca = generate().map_err(|e| pki_error(name, e))?;
        self.put(name, ca.cert_pem(), ca.key_pem()).await?;
        Ok(ca)
    }

    /// The CA kept as `name`, or a new one. A host that already has a CA certificate at
    /// `host_path` while the journal has none belongs to a cluster whose CA kubegrid lost (or
    /// never made): writing a new CA there would break every certificate, so it is refused.
    async fn ca(
        &self,
        name: &str,
        common_name: &str,
        validity: Duration,
        host_path: &str,
    ) -> Result<Ca, Error> {
        if let Some(s) = self.run.journal.cert(self.cluster(), name).await? {
            return Ca::from_pem(&s.cert_pem, &s.key_pem).map_err(|e| pki_error(name, e));
        }
        let holder = (0..self.run.req.hosts.len()).find(|&i| {
            self.run.facts[i]
                .as_ref()
                .is_some_and(|f| f.paths.get(host_path).copied().unwrap_or(false))
        });
        if let Some(i) = holder {
            return Err(Error::CaNotInJournal {
                cluster: self.cluster().to_string(),
                host: self.run.req.hosts[i].target.host.clone(),
                ca: name.to_string(),
                path: host_path.to_string(),
                journal: self.run.journal.path().to_path_buf(),
            });
        }
        let ca = Ca::generate(common_name, validity).map_err(|e| pki_error(name, e))?;
        self.put(name, ca.cert_pem(), ca.key_pem()).await?;
        Ok(ca)
    }

    /// The leaf kept as `name` while it still covers `spec`'s names and is not close to
    /// expiry; otherwise a new one from `ca`.
    pub(crate) async fn leaf(
        &self,
        ca: &Ca,
        name: &str,
        spec: &LeafSpec,
    ) -> Result<IssuedCert, Error> {
        if let Some(s) = self.run.journal.cert(self.cluster(), name).await? {
            let fits = covers_sans(&s.cert_pem, spec)
                && !needs_renewal(&s.cert_pem, RENEW_BEFORE, OffsetDateTime::now_utc())
                    .unwrap_or(true);
            if fits {
                return Ok(IssuedCert {
                    cert_pem: s.cert_pem,
                    key_pem: s.key_pem,
                });
            }
        }
        let issued = ca.issue(spec).map_err(|e| pki_error(name, e))?;
        self.put(name, &issued.cert_pem, &issued.key_pem).await?;
        Ok(issued)
    }

    /// Plans leave the journal as it was; their certificates live only for the dry run.
    /// What the journal keeps as `name` for this cluster.
    pub(crate) async fn stored(&self, name: &str) -> Result<Option<StoredCert>, Error> {
        Ok(self.run.journal.cert(self.cluster(), name).await?)
    }

    /// Keeps `cert_pem` and `key_pem` as `name` (an apply only; a plan keeps nothing).
    pub(crate) async fn put(&self, name: &str, cert_pem: &str, key_pem: &str) -> Result<(), Error> {
        if !self.save {
            return Ok(());
        }
        let stored = StoredCert {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        };
        Ok(self
            .run
            .journal
            .put_cert(self.cluster(), name, &stored)
            .await?)
    }
}

/// Where the init node's CA files wait for `kubeadm init`, which copies them into
/// `/etc/kubernetes/pki` (see the install playbook's control-plane-init phase).
const PKI_STAGING: &str = "/etc/kubernetes/kubegrid/pki";

/// The control-plane files moved from kubeadm's directory to the staging one.
fn staged(files: Vec<PkiFile>) -> Vec<PkiFile> {
    files
        .into_iter()
        .map(|f| PkiFile {
            path: match f.path.strip_prefix("/etc/kubernetes/pki") {
                Ok(rest) => std::path::Path::new(PKI_STAGING).join(rest),
                Err(_) => f.path,
            },
            ..f
        })
        .collect()
}

/// Whether a stored certificate names at least the SANs wanted now. A superset is fine: a
/// certificate is only issued again when it lacks a name clients may use.
fn covers_sans(cert_pem: &str, spec: &LeafSpec) -> bool {
    let Ok(info) = read_expiry(cert_pem) else {
        return false;
    };
    spec.dns_names.iter().all(|d| {
        info.dns_names
            .iter()
            .any(|have| have.eq_ignore_ascii_case(d))
    }) && spec
        .ip_addresses
        .iter()
        .all(|ip| info.ip_addresses.contains(ip))
}

pub(crate) fn pki_error(name: &str, source: kubegrid_pki::Error) -> Error {
    Error::Pki {
        what: name.to_string(),
        source: Box::new(source),
    }
}

pub(crate) fn plan_files(files: Vec<kubegrid_pki::PkiFile>) -> Vec<PkiFile> {
    files
        .into_iter()
        .map(|f| PkiFile {
            path: PathBuf::from(f.path),
            content: f.content,
            mode: f.mode,
        })
        .collect()
}

/// Loads or creates the CAs, issues what each host needs, and returns it.
pub async fn issue(run: &Run, k: &KubernetesContext) -> Result<Issued, Error> {
    let store = Store::new(run);
    let (validity, ca_validity) = (
        Duration::from_secs(k.cert_validity_secs),
        Duration::from_secs(k.ca_validity_secs),
    );
    let kube_ca = store
        .ca(
            "kubernetes-ca",
            kubegrid_pki::KUBERNETES_CA_COMMON_NAME,
            ca_validity,
            kubegrid_plan::CLUSTER_CA_CERT,
        )
        .await?;
    let admin = store
        .leaf(&kube_ca, "admin", &admin_client_spec(validity))
        .await?;
    let mut per_host = vec![BTreeMap::new(); run.req.hosts.len()];
    let mut etcd_client = None;
    if k.etcd.is_external() {
        let etcd_ca = store
            .ca(
                "etcd-ca",
                kubegrid_pki::ETCD_CA_COMMON_NAME,
                ca_validity,
                kubegrid_plan::ETCD_CA_CERT,
            )
            .await?;
        let health = store
            .leaf(
                &etcd_ca,
                "etcd-healthcheck-client",
                &etcd_healthcheck_client_spec(validity),
            )
            .await?;
        let apiserver = store
            .leaf(
                &etcd_ca,
                "apiserver-etcd-client",
                &apiserver_etcd_client_spec(validity),
            )
            .await?;
        for (i, h) in run.req.hosts.iter().enumerate() {
            if !h.has_role("etcd") {
                continue;
            }
            let member = etcd_member(h);
            let hostname = run.facts[i].as_ref().map(|f| f.hostname.clone());
            let with_hostname = |mut spec: LeafSpec| {
                if let Some(name) = hostname.as_ref().filter(|n| !n.is_empty())
                    && !spec.dns_names.contains(name)
                {
                    spec.dns_names.push(name.clone());
                }
                spec
            };
            let server = with_hostname(etcd_server_spec(&member, validity));
            let peer = with_hostname(etcd_peer_spec(&member, validity));
            let node = &h.target.host;
            let certs = kubegrid_pki::EtcdMemberCerts {
                server: store
                    .leaf(&etcd_ca, &format!("etcd-server-{node}"), &server)
                    .await?,
                peer: store
                    .leaf(&etcd_ca, &format!("etcd-peer-{node}"), &peer)
                    .await?,
            };
            per_host[i].insert(
                "etcd".to_string(),
                plan_files(etcd_member_files(etcd_ca.cert_pem(), &certs, &health)),
            );
        }
        etcd_client = Some((etcd_ca.cert_pem().to_string(), apiserver));
    }
    let mut control_plane = staged(plan_files(control_plane_ca_files(
        &kube_ca,
        etcd_client
            .as_ref()
            .map(|(ca_pem, client)| ExternalEtcdClient {
                etcd_ca_cert_pem: ca_pem,
                apiserver_etcd_client: client,
            }),
    )));
    control_plane.extend(staged(plan_files(
        own_signers(&store, k, ca_validity).await?,
    )));
    for (i, h) in run.req.hosts.iter().enumerate() {
        if h.target.host == k.init_node {
            per_host[i].insert("control-plane".to_string(), control_plane.clone());
        }
    }
    let ca_cert_hash =
        ca_cert_hash(kube_ca.cert_pem()).map_err(|e| pki_error("kubernetes-ca", e))?;
    Ok(Issued {
        ca_cert_hash,
        per_host,
        admin,
        ca_pem: kube_ca.cert_pem().to_string(),
    })
}

/// The front-proxy CA and the service-account key, which kubeadm would otherwise make
/// itself: kubegrid makes them for a new cluster and keeps them in the journal, so it can
/// renew what they sign and rotate them. A cluster initialized before kubegrid kept them
/// keeps kubeadm's (nothing is staged for it: kubeadm never overwrites its own, and a staged
/// copy that differs would only mislead).
async fn own_signers(
    store: &Store<'_>,
    k: &KubernetesContext,
    ca_validity: Duration,
) -> Result<Vec<kubegrid_pki::PkiFile>, Error> {
    use kubegrid_pki::layout::kubeadm::{
        FRONT_PROXY_CA_CERT, FRONT_PROXY_CA_KEY, SERVICE_ACCOUNT_KEY, SERVICE_ACCOUNT_PUB,
    };
    let mut files = Vec::new();
    let front_proxy = match store.stored(FRONT_PROXY_CA).await? {
        Some(s) => {
            Some(Ca::from_pem(&s.cert_pem, &s.key_pem).map_err(|e| pki_error(FRONT_PROXY_CA, e))?)
        }
        None if !k.initialized => Some(
            store
                .stored_or_new_ca(FRONT_PROXY_CA, || {
                    Ca::generate(kubegrid_pki::FRONT_PROXY_CA_COMMON_NAME, ca_validity)
                })
                .await?,
        ),
        None => None,
    };
    if let Some(ca) = front_proxy {
        files.push(kubegrid_pki::PkiFile::new(
            FRONT_PROXY_CA_CERT,
            ca.cert_pem(),
        ));
        files.push(kubegrid_pki::PkiFile::new(FRONT_PROXY_CA_KEY, ca.key_pem()));
    }
    let sa = match store.stored(SERVICE_ACCOUNT).await? {
        Some(s) => Some((s.key_pem, s.cert_pem)),
        None if !k.initialized => {
            let (key, public) = kubegrid_pki::generate_service_account_key()
                .map_err(|e| pki_error(SERVICE_ACCOUNT, e))?;
            store.put(SERVICE_ACCOUNT, &public, &key).await?;
            Some((key, public))
        }
        None => None,
    };
    if let Some((key, public)) = sa {
        files.push(kubegrid_pki::PkiFile::new(SERVICE_ACCOUNT_KEY, &key));
        files.push(kubegrid_pki::PkiFile::new(SERVICE_ACCOUNT_PUB, &public));
    }
    Ok(files)
}

/// The journal's name for the front-proxy CA.
const FRONT_PROXY_CA: &str = "front-proxy-ca";
/// The journal's name for the service-account key pair (the public key PEM is kept as the
/// entry's certificate).
const SERVICE_ACCOUNT: &str = "service-account";

/// The member as its SANs see it: the Node's address, which etcd listens and advertises on
/// (loopback is added by the PKI). Addresses that come and go on the host's interfaces (a
/// VIP, CNI bridges, temporary IPv6) are left out, so they never force a re-issue.
fn etcd_member(h: &crate::operation::HostSpec) -> EtcdMember {
    EtcdMember {
        name: h.target.host.clone(),
        addresses: h.target.address.parse::<IpAddr>().into_iter().collect(),
    }
}
