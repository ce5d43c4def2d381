//! kubeadm's `kubeconfig` phase, as the STAND-IN kubeadm runs it: kubeconfigs with embedded
//! credentials (`client-certificate-data`, `client-key-data`, `certificate-authority-data`)
//! signed by the cluster CA on the host. As upstream, a kubeconfig already on disk is kept
//! when its CA data and server are the ones kubeadm would write, and refused otherwise.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::{
    certs::{Plan, read_optional},
    host::{self, HEADER},
};
use crate::{
    Ctx, Error,
    pki::{self, LeafSpec, Signer},
};

/// Where kubeadm writes its kubeconfigs.
pub const KUBE_DIR: &str = "/etc/kubernetes";

/// One kubeconfig kubeadm writes: file name, user (the certificate's CN), groups, and whether
/// it points at the local API endpoint rather than the control-plane endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// File name under `/etc/kubernetes`.
    pub file: &'static str,
    /// Certificate CN and kubeconfig user (`None`: `system:node:<node>`).
    pub user: Option<&'static str>,
    /// Certificate organizations.
    pub groups: &'static [&'static str],
    /// Points at the local API endpoint (controller-manager and scheduler, as kubeadm 1.31).
    pub local: bool,
}

/// admin.conf.
pub const ADMIN: Kind = Kind {
    file: "admin.conf",
    user: Some("kubernetes-admin"),
    groups: &["kubeadm:cluster-admins"],
    local: false,
};
/// super-admin.conf.
pub const SUPER_ADMIN: Kind = Kind {
    file: "super-admin.conf",
    user: Some("kubernetes-super-admin"),
    groups: &["system:masters"],
    local: false,
};
/// controller-manager.conf.
pub const CONTROLLER_MANAGER: Kind = Kind {
    file: "controller-manager.conf",
    user: Some("system:kube-controller-manager"),
    groups: &[],
    local: true,
};
/// scheduler.conf.
pub const SCHEDULER: Kind = Kind {
    file: "scheduler.conf",
    user: Some("system:kube-scheduler"),
    groups: &[],
    local: true,
};
/// kubelet.conf.
pub const KUBELET: Kind = Kind {
    file: "kubelet.conf",
    user: None,
    groups: &["system:nodes"],
    local: false,
};

/// A kubeconfig for `user` at `server` trusting `ca_pem`, with the client pair when given.
pub fn render(
    cluster: &str,
    server: &str,
    ca_pem: Option<&str>,
    user: &str,
    client: Option<(&str, &str)>,
    note: &str,
) -> String {
    let mut cluster_entry = json!({"server": server});
    if let Some(ca) = ca_pem {
        cluster_entry["certificate-authority-data"] = json!(STANDARD.encode(ca));
    }
    let user_entry = match client {
        Some((cert, key)) => json!({
            "client-certificate-data": STANDARD.encode(cert),
            "client-key-data": STANDARD.encode(key),
        }),
        None => json!({}),
    };
    let context = format!("{user}@{cluster}");
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": user_entry}],
    });
    format!(
        "{HEADER}{note}{}",
        serde_yaml::to_string(&config).unwrap_or_default()
    )
}

/// The base64 field `field` of the first `section` entry (`clusters`/`users`) of a kubeconfig,
/// decoded.
pub fn embedded(text: &str, section: &str, inner: &str, field: &str) -> Option<String> {
    let doc: Value = serde_yaml::from_str(text).ok()?;
    let b64 = doc[section][0][inner][field].as_str()?;
    STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Writes the kubeconfig `kind` for this node, signed by `ca`; kept when on disk and matching.
pub fn ensure(ctx: &Ctx, plan: &Plan, ca: &Signer, kind: Kind) -> Result<(), Error> {
    let path = format!("{KUBE_DIR}/{}", kind.file);
    let server = match (kind.local, plan.advertise) {
        (true, Some(ip)) => format!("https://{}:{}", bracket(ip), plan.bind_port),
        _ => plan.server.clone(),
    };
    if let Some(text) = read_optional(ctx, &path)? {
        let doc: Value = serde_yaml::from_str(&text).unwrap_or(Value::Null);
        let ca_data = embedded(&text, "clusters", "cluster", "certificate-authority-data");
        let same_ca = ca_data
            .as_deref()
            .map(pki::certificates)
            .and_then(|c| c.into_iter().next())
            .is_some_and(|first| first == ca.cert_pem);
        if !same_ca {
            return Err(Error::Invalid(format!(
                "[kubeconfig] a kubeconfig file {path:?} exists already but has got the wrong CA cert; hint: remove it to have it written"
            )));
        }
        if doc["clusters"][0]["cluster"]["server"].as_str() != Some(server.as_str()) {
            return Err(Error::Invalid(format!(
                "[kubeconfig] a kubeconfig file {path:?} exists already but has an unexpected API Server URL: expected {server}; hint: remove it to have it written"
            )));
        }
        ctx.say(&format!(
            "[kubeconfig] Using existing kubeconfig file: {path:?}"
        ));
        return Ok(());
    }
    let user = kind
        .user
        .map_or_else(|| format!("system:node:{}", plan.node_name), String::from);
    let spec = LeafSpec::client(&user, kind.groups);
    let (cert, key) = ca.issue(&spec, plan.validity)?;
    ctx.say(&format!(
        "[kubeconfig] Writing {:?} kubeconfig file",
        kind.file
    ));
    host::write(
        ctx,
        &path,
        &render(
            &plan.cluster_name,
            &server,
            Some(&ca.cert_pem),
            &user,
            Some((&cert, &key)),
            "",
        ),
        0o600,
    )
}

/// A joining worker's kubelet.conf. Upstream's comes from TLS bootstrap (the cluster signs the
/// kubelet's CSR); the stand-in has no cluster to sign it, so it holds no client credentials,
/// and the CA data only when the discovery CA file is on the host.
pub fn worker_kubelet_conf(ctx: &Ctx, plan: &Plan, ca_file: &str) -> Result<(), Error> {
    let ca = read_optional(ctx, ca_file)?;
    let user = format!("system:node:{}", plan.node_name);
    let note = "# STAND-IN: upstream's kubelet.conf holds the client certificate the cluster signs during TLS bootstrap; the stand-in has no cluster to sign it, so this one holds no client credentials.\n";
    host::write(
        ctx,
        &format!("{KUBE_DIR}/{}", KUBELET.file),
        &render(
            &plan.cluster_name,
            &plan.server,
            ca.as_deref(),
            &user,
            None,
            note,
        ),
        0o600,
    )
}

/// `ip` as it goes in a URL.
fn bracket(ip: std::net::IpAddr) -> String {
    if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}
