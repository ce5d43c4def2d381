//! The static pod manifests the STAND-IN kubeadm writes in kubeadm's layout
//! (`/etc/kubernetes/manifests/<pod>.yaml`, a Pod whose container image carries the control
//! plane's version and kubeadm's certificate and kubeconfig flags), and the
//! ClusterConfiguration copy it keeps for `upgrade apply`. The stand-in kubelet runs none of
//! these pods (it only serves a STAND-IN kube-apiserver's TLS and health endpoints while the
//! apiserver manifest exists); the files exist so that whoever reads a control-plane Node's
//! version or certificate files from its manifests (as kubegrid's upgrade and certificate
//! renewal do) sees what real kubeadm would have left.

use std::fs;

use serde_json::{Value, json};

use super::host::{self, HEADER};
use crate::{Ctx, Error, checks::KubeVersion, io_error};

/// Where kubeadm keeps the static pod manifests.
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
/// The control-plane pods kubeadm writes on every control-plane Node.
pub const CONTROL_PLANE_PODS: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
/// The registry kubeadm's default images come from.
const IMAGE_REPOSITORY: &str = "registry.k8s.io";
/// Where the stand-in keeps the ClusterConfiguration `kubeadm init` was given (real kubeadm
/// keeps it in the kubeadm-config ConfigMap; the stand-in has no cluster to keep it in).
pub const CLUSTER_COPY: &str = "/etc/kubernetes/kubegrid-standin/cluster.yaml";

/// The etcd image tag kubeadm pins for a Kubernetes minor (kubeadm's `SupportedEtcdVersion`
/// table, cmd/kubeadm/app/constants).
pub fn etcd_image_tag(version: &KubeVersion) -> &'static str {
    match version.minor {
        ..=31 => "3.5.15-0",
        32 => "3.5.16-0",
        33 => "3.5.21-0",
        _ => "3.6.4-0",
    }
}

/// The path of `pod`'s manifest.
pub fn path(pod: &str) -> String {
    format!("{MANIFESTS_DIR}/{pod}.yaml")
}

/// The certificate and kubeconfig flags of `pod`'s command, with kubeadm's default paths
/// (trimmed to those: which file each component reads is what kubegrid's certificate
/// renewal and the stand-in kube-apiserver go by).
pub fn command(pod: &str) -> Vec<String> {
    let pki = "/etc/kubernetes/pki";
    let flags: Vec<(&str, String)> = match pod {
        "kube-apiserver" => vec![
            ("secure-port", "6443".into()),
            ("client-ca-file", format!("{pki}/ca.crt")),
            ("tls-cert-file", format!("{pki}/apiserver.crt")),
            ("tls-private-key-file", format!("{pki}/apiserver.key")),
            (
                "kubelet-client-certificate",
                format!("{pki}/apiserver-kubelet-client.crt"),
            ),
            (
                "kubelet-client-key",
                format!("{pki}/apiserver-kubelet-client.key"),
            ),
            ("etcd-cafile", format!("{pki}/etcd/ca.crt")),
            ("etcd-certfile", format!("{pki}/apiserver-etcd-client.crt")),
            ("etcd-keyfile", format!("{pki}/apiserver-etcd-client.key")),
            (
                "proxy-client-cert-file",
                format!("{pki}/front-proxy-client.crt"),
            ),
            (
                "proxy-client-key-file",
                format!("{pki}/front-proxy-client.key"),
            ),
            (
                "requestheader-client-ca-file",
                format!("{pki}/front-proxy-ca.crt"),
            ),
            ("service-account-key-file", format!("{pki}/sa.pub")),
            ("service-account-signing-key-file", format!("{pki}/sa.key")),
        ],
        "kube-controller-manager" => vec![
            (
                "kubeconfig",
                "/etc/kubernetes/controller-manager.conf".into(),
            ),
            (
                "authentication-kubeconfig",
                "/etc/kubernetes/controller-manager.conf".into(),
            ),
            (
                "authorization-kubeconfig",
                "/etc/kubernetes/controller-manager.conf".into(),
            ),
            ("client-ca-file", format!("{pki}/ca.crt")),
            ("cluster-signing-cert-file", format!("{pki}/ca.crt")),
            ("cluster-signing-key-file", format!("{pki}/ca.key")),
            (
                "requestheader-client-ca-file",
                format!("{pki}/front-proxy-ca.crt"),
            ),
            ("root-ca-file", format!("{pki}/ca.crt")),
            ("service-account-private-key-file", format!("{pki}/sa.key")),
        ],
        "kube-scheduler" => vec![
            ("kubeconfig", "/etc/kubernetes/scheduler.conf".into()),
            (
                "authentication-kubeconfig",
                "/etc/kubernetes/scheduler.conf".into(),
            ),
            (
                "authorization-kubeconfig",
                "/etc/kubernetes/scheduler.conf".into(),
            ),
        ],
        "etcd" => vec![
            ("cert-file", format!("{pki}/etcd/server.crt")),
            ("key-file", format!("{pki}/etcd/server.key")),
            ("trusted-ca-file", format!("{pki}/etcd/ca.crt")),
            ("client-cert-auth", "true".into()),
            ("peer-cert-file", format!("{pki}/etcd/peer.crt")),
            ("peer-key-file", format!("{pki}/etcd/peer.key")),
            ("peer-trusted-ca-file", format!("{pki}/etcd/ca.crt")),
            ("peer-client-cert-auth", "true".into()),
        ],
        _ => Vec::new(),
    };
    std::iter::once(pod.to_string())
        .chain(flags.into_iter().map(|(k, v)| format!("--{k}={v}")))
        .collect()
}

/// One static pod manifest for `pod` running `image`, as kubeadm lays it out (trimmed to the
/// fields readers look at).
pub fn pod_manifest(pod: &str, image: &str) -> String {
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod,
            "namespace": "kube-system",
            "labels": {"component": pod, "tier": "control-plane"},
        },
        "spec": {
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "containers": [{"name": pod, "image": image, "command": command(pod)}],
        },
    });
    format!(
        "{HEADER}# A static pod manifest generated by the kubegrid STAND-IN kubeadm in kubeadm's layout; the stand-in kubelet runs none of these pods, except that it serves a STAND-IN kube-apiserver (TLS and health endpoints only) while kube-apiserver.yaml exists.\n{}",
        serde_yaml::to_string(&manifest).unwrap_or_default()
    )
}

/// Writes the control-plane manifests for `version`, and etcd's when `etcd` (kubeadm's stacked
/// etcd) with the etcd kubeadm pins for that minor.
pub fn write(ctx: &Ctx, version: &KubeVersion, etcd: bool) -> Result<(), Error> {
    for pod in CONTROL_PLANE_PODS {
        let image = format!("{IMAGE_REPOSITORY}/{pod}:{version}");
        host::write(ctx, &path(pod), &pod_manifest(pod, &image), 0o600)?;
    }
    if etcd {
        let image = format!("{IMAGE_REPOSITORY}/etcd:{}", etcd_image_tag(version));
        host::write(ctx, &path("etcd"), &pod_manifest("etcd", &image), 0o600)?;
    }
    ctx.say(&format!(
        "[control-plane] Wrote static Pod manifests for {version} to {MANIFESTS_DIR}"
    ));
    Ok(())
}

/// Whether this host has kubeadm's stacked etcd manifest.
pub fn has_stacked_etcd(ctx: &Ctx) -> bool {
    ctx.host_path(&path("etcd")).exists()
}

/// The control plane's version on this host: the tag of the apiserver manifest's image; `None`
/// when the host has no apiserver manifest (a worker, or nothing installed).
pub fn control_plane_version(ctx: &Ctx) -> Result<Option<KubeVersion>, Error> {
    let file = ctx.host_path(&path("kube-apiserver"));
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", &file)(e)),
    };
    let image = serde_yaml::from_str::<Value>(&text).ok().and_then(|doc| {
        doc["spec"]["containers"][0]["image"]
            .as_str()
            .map(String::from)
    });
    let tag = image
        .as_deref()
        .and_then(|i| i.rsplit_once(':'))
        .map(|(_, t)| t);
    match tag.and_then(KubeVersion::parse) {
        Some(v) => Ok(Some(v)),
        None => Err(Error::Invalid(format!(
            "{}: no kube-apiserver image with a version tag (found {}); expected image: {IMAGE_REPOSITORY}/kube-apiserver:vX.Y.Z",
            path("kube-apiserver"),
            image.map_or_else(|| "no image".to_string(), |i| format!("`{i}`"))
        ))),
    }
}

/// Keeps init's ClusterConfiguration on the host, for `upgrade apply`'s external etcd check.
pub fn save_cluster_config(ctx: &Ctx, doc: &Value) -> Result<(), Error> {
    let yaml = serde_yaml::to_string(doc).unwrap_or_default();
    host::write(ctx, CLUSTER_COPY, &format!("{HEADER}{yaml}"), 0o600)
}

/// The ClusterConfiguration kept by [`save_cluster_config`]; `None` when this host has none
/// (it joined the cluster rather than initializing it).
pub fn cluster_config(ctx: &Ctx) -> Result<Option<Value>, Error> {
    let file = ctx.host_path(CLUSTER_COPY);
    match fs::read_to_string(&file) {
        Ok(text) => serde_yaml::from_str::<Value>(&text)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("{CLUSTER_COPY} is not valid YAML: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", &file)(e)),
    }
}
