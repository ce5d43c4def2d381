//! kubeadm's `certs` phase, as the STAND-IN kubeadm runs it in `init` and in a control-plane
//! `join`: every certificate of `/etc/kubernetes/pki` under the CA on the host (kubegrid stages
//! `ca.crt`/`ca.key` there; a missing CA is generated, as upstream does). As upstream, a
//! certificate and key already on disk are kept when the CA signed the certificate (and, for
//! serving certificates, its SANs hold the ones kubeadm wants); otherwise the command fails.
//! With external etcd nothing under `pki/etcd` is generated (kubegrid provides it).

use std::{fs, net::IpAddr, path::Path, time::Duration};

use serde_json::Value;

use super::host;
use crate::{
    Ctx, Error,
    checks::{first_ip, host_port, parse_cidr_list, parse_duration},
    io_error,
    kubeadm_config::Facts,
    pki::{self, CertInfo, LeafSpec, Signer},
    yaml::at,
};

/// kubeadm's `certificatesDir`.
pub const PKI_DIR: &str = "/etc/kubernetes/pki";

/// What the certs and kubeconfig phases need from the configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `nodeRegistration.name` (else the host name).
    pub node_name: String,
    /// The local API endpoint's advertise address.
    pub advertise: Option<IpAddr>,
    /// The local API endpoint's port.
    pub bind_port: u16,
    /// `https://<controlPlaneEndpoint>`.
    pub server: String,
    /// The host of `controlPlaneEndpoint`.
    pub endpoint_host: Option<String>,
    /// The first address of the service subnet.
    pub service_ip: IpAddr,
    /// `networking.dnsDomain`.
    pub dns_domain: String,
    /// `apiServer.certSANs`.
    pub cert_sans: Vec<String>,
    /// `certificateValidityPeriod`.
    pub validity: Duration,
    /// `caCertificateValidityPeriod`.
    pub ca_validity: Duration,
    /// `clusterName`.
    pub cluster_name: String,
    /// kubeadm runs etcd on this node (stacked etcd).
    pub stacked_etcd: bool,
}

impl Plan {
    /// The plan from a checked config's facts and documents. A joining control plane has no
    /// ClusterConfiguration (upstream reads it from the kubeadm-config ConfigMap; the stand-in
    /// has no cluster), so it gets kubeadm's defaults for the subnet, domain and validity.
    pub fn new(facts: &Facts, docs: &Value) -> Plan {
        let docs: Vec<&Value> = docs
            .as_array()
            .map(|d| d.iter().collect())
            .unwrap_or_default();
        let kind = |k: &str| docs.iter().copied().find(|d| d["kind"] == k);
        let cluster = kind("ClusterConfiguration");
        let local = kind("InitConfiguration")
            .and_then(|d| at(d, "localAPIEndpoint"))
            .or_else(|| {
                kind("JoinConfiguration").and_then(|d| at(d, "controlPlane.localAPIEndpoint"))
            });
        let get = |path: &str| cluster.and_then(|c| at(c, path)).and_then(Value::as_str);
        let server = facts
            .server
            .clone()
            .unwrap_or_else(|| "https://127.0.0.1:6443".into());
        let endpoint_host = server
            .strip_prefix("https://")
            .and_then(|ep| host_port(ep, false).ok())
            .map(|(h, _)| h);
        let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        Plan {
            node_name: facts
                .node_name
                .clone()
                .unwrap_or_else(|| hostname.trim().to_lowercase()),
            advertise: local
                .and_then(|l| l["advertiseAddress"].as_str())
                .and_then(|a| a.parse().ok()),
            bind_port: local
                .and_then(|l| l["bindPort"].as_u64())
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(6443),
            server,
            endpoint_host,
            service_ip: get("networking.serviceSubnet")
                .and_then(|s| parse_cidr_list(s).ok())
                .and_then(|c| c.first().copied())
                .map_or(IpAddr::from([10, 96, 0, 1]), first_ip),
            dns_domain: get("networking.dnsDomain")
                .unwrap_or("cluster.local")
                .to_string(),
            cert_sans: cluster
                .and_then(|c| at(c, "apiServer.certSANs"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            validity: get("certificateValidityPeriod")
                .and_then(parse_duration)
                .unwrap_or(pki::LEAF_VALIDITY),
            ca_validity: get("caCertificateValidityPeriod")
                .and_then(parse_duration)
                .unwrap_or(pki::CA_VALIDITY),
            cluster_name: get("clusterName").unwrap_or("kubernetes").to_string(),
            stacked_etcd: facts.local_etcd && cluster.is_some(),
        }
    }

    /// The apiserver's serving certificate, with kubeadm's SANs.
    pub fn apiserver(&self) -> LeafSpec {
        let mut spec = LeafSpec {
            cn: "kube-apiserver".into(),
            server: true,
            ..LeafSpec::default()
        };
        spec.dns = vec![
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            format!("kubernetes.default.svc.{}", self.dns_domain),
            self.node_name.clone(),
        ];
        spec.ips = vec![self.service_ip];
        spec.ips.extend(self.advertise);
        for name in self.endpoint_host.iter().chain(&self.cert_sans) {
            match name.parse::<IpAddr>() {
                Ok(ip) if !spec.ips.contains(&ip) => spec.ips.push(ip),
                Err(_) if !spec.dns.contains(name) => spec.dns.push(name.clone()),
                _ => {}
            }
        }
        spec
    }

    /// A stacked etcd member's server or peer certificate.
    fn etcd_member(&self) -> LeafSpec {
        let mut ips: Vec<IpAddr> = self.advertise.into_iter().collect();
        ips.extend([
            IpAddr::from([127, 0, 0, 1]),
            "::1".parse().unwrap_or(IpAddr::from([0u8; 16])),
        ]);
        LeafSpec {
            cn: self.node_name.clone(),
            dns: vec![self.node_name.clone(), "localhost".into()],
            ips,
            server: true,
            client: true,
            ..LeafSpec::default()
        }
    }
}

/// A host path under `PKI_DIR`.
pub fn pki_path(name: &str) -> String {
    format!("{PKI_DIR}/{name}")
}

/// Reads a host file, `None` when it does not exist.
pub fn read_optional(ctx: &Ctx, path: &str) -> Result<Option<String>, Error> {
    let full = ctx.host_path(path);
    match fs::read_to_string(&full) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", &full)(e)),
    }
}

/// The CA `<base>.crt`/`<base>.key`: loaded when on disk, generated (as kubeadm) when absent.
pub fn ensure_ca(
    ctx: &Ctx,
    name: &str,
    base: &str,
    cn: &str,
    validity: Duration,
) -> Result<Signer, Error> {
    let (crt, key) = (
        pki_path(&format!("{base}.crt")),
        pki_path(&format!("{base}.key")),
    );
    match (read_optional(ctx, &crt)?, read_optional(ctx, &key)?) {
        (Some(c), Some(k)) => {
            ctx.say(&format!(
                "[certs] Using existing {name} certificate authority"
            ));
            Signer::from_pem(name, &c, &k)
        }
        (None, None) => {
            ctx.say(&format!(
                "[certs] Generating \"{name}\" certificate and key"
            ));
            let ca = Signer::generate(cn, validity)?;
            host::write(ctx, &crt, &ca.cert_pem, 0o644)?;
            host::write(ctx, &key, &ca.key_pem, 0o600)?;
            Ok(ca)
        }
        (Some(_), None) => Err(Error::Invalid(format!(
            "[certs] {crt} exists but {key} does not: an external {name} (kubeadm's external CA mode) is not simulated by the stand-in; hint: stage both files"
        ))),
        (None, Some(_)) => Err(Error::Invalid(format!(
            "[certs] {key} exists but {crt} does not; hint: stage both files of the {name}"
        ))),
    }
}

/// The leaf `<base>.crt`/`<base>.key` for `spec` under `ca`: kept when on disk and valid for
/// it, issued otherwise.
pub fn ensure_leaf(
    ctx: &Ctx,
    name: &str,
    base: &str,
    ca: &Signer,
    spec: &LeafSpec,
    validity: Duration,
) -> Result<(), Error> {
    let (crt, key) = (
        pki_path(&format!("{base}.crt")),
        pki_path(&format!("{base}.key")),
    );
    if let (Some(c), Some(_)) = (read_optional(ctx, &crt)?, read_optional(ctx, &key)?) {
        if !ca.signed(&c) {
            return Err(Error::Invalid(format!(
                "[certs] certificate {name} ({crt}) is not signed by corresponding CA; hint: remove it and its key to have them generated"
            )));
        }
        let have = CertInfo::parse(&c)?;
        let missing: Vec<String> = spec
            .dns
            .iter()
            .filter(|d| !have.dns.contains(d))
            .cloned()
            .chain(
                spec.ips
                    .iter()
                    .filter(|i| !have.ips.contains(i))
                    .map(ToString::to_string),
            )
            .collect();
        if !missing.is_empty() {
            return Err(Error::Invalid(format!(
                "[certs] certificate {name} ({crt}) is invalid: it lacks the SANs {missing:?}"
            )));
        }
        ctx.say(&format!(
            "[certs] Using existing {name} certificate and key on disk"
        ));
        return Ok(());
    }
    ctx.say(&format!(
        "[certs] Generating \"{name}\" certificate and key"
    ));
    if spec.server && !spec.dns.is_empty() {
        ctx.say(&format!(
            "[certs] {name} serving cert is signed for DNS names {:?} and IPs {:?}",
            spec.dns,
            spec.ips.iter().map(ToString::to_string).collect::<Vec<_>>()
        ));
    }
    let (cert_pem, key_pem) = ca.issue(spec, validity)?;
    host::write(ctx, &key, &key_pem, 0o600)?;
    host::write(ctx, &crt, &cert_pem, 0o644)
}

/// kubeadm's `certs` phase on a control-plane node. Returns the cluster CA, which the
/// kubeconfig phase signs with.
pub fn certs_phase(ctx: &Ctx, plan: &Plan) -> Result<Signer, Error> {
    ctx.say(&format!(
        "[certs] Using certificateDir folder \"{PKI_DIR}\""
    ));
    let ca = ensure_ca(ctx, "ca", "ca", "kubernetes", plan.ca_validity)?;
    ensure_leaf(
        ctx,
        "apiserver",
        "apiserver",
        &ca,
        &plan.apiserver(),
        plan.validity,
    )?;
    let kubelet_client =
        LeafSpec::client("kube-apiserver-kubelet-client", &["kubeadm:cluster-admins"]);
    ensure_leaf(
        ctx,
        "apiserver-kubelet-client",
        "apiserver-kubelet-client",
        &ca,
        &kubelet_client,
        plan.validity,
    )?;
    let front = ensure_ca(
        ctx,
        "front-proxy-ca",
        "front-proxy-ca",
        "front-proxy-ca",
        plan.ca_validity,
    )?;
    let front_client = LeafSpec::client("front-proxy-client", &[]);
    ensure_leaf(
        ctx,
        "front-proxy-client",
        "front-proxy-client",
        &front,
        &front_client,
        plan.validity,
    )?;
    if plan.stacked_etcd {
        let etcd = ensure_ca(ctx, "etcd/ca", "etcd/ca", "etcd-ca", plan.ca_validity)?;
        let member = plan.etcd_member();
        ensure_leaf(
            ctx,
            "etcd/server",
            "etcd/server",
            &etcd,
            &member,
            plan.validity,
        )?;
        ensure_leaf(ctx, "etcd/peer", "etcd/peer", &etcd, &member, plan.validity)?;
        let health = LeafSpec::client("kube-etcd-healthcheck-client", &[]);
        ensure_leaf(
            ctx,
            "etcd/healthcheck-client",
            "etcd/healthcheck-client",
            &etcd,
            &health,
            plan.validity,
        )?;
        let client = LeafSpec::client("kube-apiserver-etcd-client", &[]);
        ensure_leaf(
            ctx,
            "apiserver-etcd-client",
            "apiserver-etcd-client",
            &etcd,
            &client,
            plan.validity,
        )?;
    } else {
        ctx.say("[certs] External etcd mode: Skipping etcd/ca certificate authority generation");
    }
    if read_optional(ctx, &pki_path("sa.key"))?.is_some() {
        ctx.say("[certs] Using the existing \"sa\" key");
    } else {
        ctx.say("[certs] Generating \"sa\" key and public key");
        let (key, public) = pki::key_pair_pem()?;
        host::write(ctx, &pki_path("sa.key"), &key, 0o600)?;
        host::write(ctx, &pki_path("sa.pub"), &public, 0o644)?;
    }
    Ok(ca)
}

/// Whether this host has the cluster CA pair kubegrid stages before a control-plane join.
pub fn has_cluster_ca(ctx: &Ctx) -> bool {
    ["ca.crt", "ca.key"]
        .iter()
        .all(|f| Path::new(&ctx.host_path(&pki_path(f))).is_file())
}

#[cfg(test)]
mod tests;
