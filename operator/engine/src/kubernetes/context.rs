//! The spec's Kubernetes settings as the compiler sees them, and what only the hosts' facts
//! can decide: which control-plane host runs `kubeadm init`, and what is already done.

use kubegrid_api::{Manifest, Role};
use kubegrid_plan::{EtcdContext, EtcdMember, JoinSecrets, KUBE_VIP_IMAGE, KubernetesContext};

use super::{pki, secrets};
use crate::{error::Error, operation::Run};

/// The cluster DNS domain kubeadm defaults to.
const DNS_DOMAIN: &str = "cluster.local";

/// What the spec says about Kubernetes. Fields only facts can settle (the init node when a
/// cluster exists, what is initialised and joined, the CA hash) are provisional until
/// [`prepare`] runs after the facts phase.
pub fn kubernetes_context(manifest: &Manifest) -> Result<KubernetesContext, kubegrid_plan::Error> {
    let invalid = |problem: String| kubegrid_plan::Error::InvalidContext { problem };
    let spec = &manifest.cluster().spec;
    let version = kubegrid_api::parse_kubernetes_version(&spec.kubernetes_version)
        .map_err(|e| invalid(format!("kubernetesVersion: {e}")))?;
    let endpoint = &spec.control_plane_endpoint;
    let endpoint_host = endpoint
        .vip
        .clone()
        .or_else(|| endpoint.address.clone())
        .ok_or_else(|| invalid("controlPlaneEndpoint has neither address nor vip".into()))?;
    let (validity, ca_validity) = spec.certificate_validity().map_err(invalid)?;
    let hosts = manifest.hosts();
    let etcd_members: Vec<EtcdMember> = hosts
        .iter()
        .filter(|h| h.roles.contains(&Role::Etcd))
        .map(|h| EtcdMember {
            name: h.name.clone(),
            address: h.address.clone(),
        })
        .collect();
    let init_node = hosts
        .iter()
        .find(|h| h.roles.contains(&Role::ControlPlane))
        .map(|h| h.name.clone())
        .ok_or_else(|| invalid("no Node has the control-plane role".into()))?;
    let cni_manifest = match &spec.network.cni_manifest {
        Some(raw) => {
            let path = manifest.resolve_path(raw);
            Some(std::fs::read_to_string(&path).map_err(|e| {
                invalid(format!(
                    "spec.network.cniManifest: cannot read {}: {e}",
                    path.display()
                ))
            })?)
        }
        None => None,
    };
    Ok(KubernetesContext {
        kubeadm_api: KubernetesContext::kubeadm_api_for(&version),
        version,
        endpoint_host,
        endpoint_port: endpoint.port,
        vip: endpoint.vip.clone(),
        pod_cidr: spec.network.pod_cidr.to_string(),
        service_cidr: spec.network.service_cidr.to_string(),
        dns_domain: DNS_DOMAIN.into(),
        cni: spec.network.cni.clone(),
        cni_manifest,
        etcd: if etcd_members.is_empty() {
            EtcdContext::stacked()
        } else {
            EtcdContext::external(etcd_members)
        },
        init_node,
        initialized: false,
        joins_pending: true,
        // kubeadm takes whole hours: a validity below one hour (tests only, see
        // spec.certificates) gives kubeadm's own leaves one hour.
        cert_validity_hours: validity.as_secs().div_ceil(3600).max(1),
        ca_validity_hours: ca_validity.as_secs().div_ceil(3600).max(1),
        cert_validity_secs: validity.as_secs(),
        ca_validity_secs: ca_validity.as_secs(),
        join: JoinSecrets {
            token: secrets::bootstrap_token(),
            certificate_key: secrets::certificate_key(),
            ca_cert_hash: String::new(),
        },
        kube_vip_image: KUBE_VIP_IMAGE.into(),
    })
}

/// Settles the Kubernetes context from the facts and issues the cluster's certificates:
/// the init node is a control-plane host that already ran `kubeadm init`, else the first
/// control-plane Node of the spec. In apply mode new certificates are stored in the journal;
/// a plan issues them in memory only.
pub async fn prepare(run: &mut Run) -> Result<(), Error> {
    let Some(mut k) = run.req.context.kubernetes.clone() else {
        return Ok(());
    };
    let has = |i: usize, path: &str| {
        run.facts[i]
            .as_ref()
            .is_some_and(|f| f.paths.get(path).copied().unwrap_or(false))
    };
    let control_planes: Vec<usize> = (0..run.req.hosts.len())
        .filter(|&i| run.req.hosts[i].has_role("control-plane"))
        .collect();
    let installed = run
        .journal
        .installed_version(&run.req.cluster)
        .await?
        .is_some();
    // The Node that ran init may have left the spec: then a control-plane Node that joined
    // the running cluster stands in for it (it never runs init; see the playbook).
    let init = control_planes
        .iter()
        .find(|&&i| has(i, kubegrid_plan::INIT_DONE))
        .or_else(|| {
            control_planes
                .iter()
                .find(|&&i| installed && has(i, kubegrid_plan::JOIN_DONE))
        });
    if let Some(&i) = init {
        k.init_node = run.req.hosts[i].target.host.clone();
        k.initialized = true;
    }
    k.joins_pending = (0..run.req.hosts.len()).any(|i| {
        let h = &run.req.hosts[i];
        (h.has_role("control-plane") || h.has_role("worker"))
            && !has(i, kubegrid_plan::JOIN_DONE)
            && !has(i, kubegrid_plan::INIT_DONE)
    });
    let issued = pki::issue(run, &k).await?;
    // Every host that passed preflight is about to be changed: remember it now, so that a
    // host whose join fails half-way can still be reset once it leaves the spec.
    if run.req.mode == crate::operation::Mode::Apply {
        for i in run.live() {
            let h = &run.req.hosts[i];
            let record = super::remove::MemberRecord::of(h).to_json();
            run.journal
                .put_member(&run.req.cluster, &h.target.host, &record)
                .await?;
        }
    }
    k.join.ca_cert_hash = issued.ca_cert_hash;
    run.pki = issued.per_host;
    run.admin_client = Some(issued.admin);
    run.kubernetes_ca_pem = Some(issued.ca_pem);
    let mut redactor = run.journal.redactor().clone();
    for secret in k.join.redactions() {
        redactor.add_secret(secret);
    }
    run.journal.set_redactor(redactor);
    run.req.context.kubernetes = Some(k);
    Ok(())
}

/// Why hosts cannot join: the init node failed (or never ran) in this operation, and no
/// earlier operation finished init. None when joining can go ahead.
pub fn init_failed(run: &Run) -> Option<String> {
    let k = run.req.context.kubernetes.as_ref()?;
    let i = run
        .req
        .hosts
        .iter()
        .position(|h| h.target.host == k.init_node)?;
    let report = &run.reports[i];
    (!report.ok).then(|| {
        format!(
            "not joined: init node {} failed in {}",
            k.init_node,
            report.failed_phase.as_deref().unwrap_or("an earlier phase")
        )
    })
}
