//! The Kubernetes API during a certificates operation: the per-Node readiness wait after a
//! control-plane restart (`/readyz` on that Node's own API server, with the admin
//! certificate), and the cluster CA's copies the API serves (`kube-root-ca.crt` in every
//! namespace, `cluster-info` in kube-public).

use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use crate::kubernetes::server_url;

/// How long a Node's API server may take to answer `/readyz` after its restart (kubeadm
/// waits up to four minutes for a control plane to come up).
pub const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// How to ask a Node's own API server whether it is ready.
#[derive(Clone)]
pub struct ReadyCheck {
    /// The cluster's name (the kubeconfig's).
    pub cluster: String,
    /// The API server's port on every control-plane Node (kubeadm's `bindPort`).
    pub port: u16,
    /// The CA certificates the API servers' serving certificates verify against.
    pub ca_pem: String,
    /// The admin client certificate and key.
    pub admin: kubegrid_pki::IssuedCert,
    /// How long to wait.
    pub timeout: Duration,
}

impl ReadyCheck {
    /// Waits until `https://<address>:<port>/readyz` answers 200, or the timeout passes.
    pub async fn wait(&self, address: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let last = match self.once(address).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not answer /readyz with 200 within {}s; last: {last}",
                    server_url(address, self.port),
                    self.timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// One `/readyz` request.
    pub async fn once(&self, address: &str) -> Result<(), String> {
        let kubeconfig = kubegrid_pki::kubeconfig(
            &self.cluster,
            &server_url(address, self.port),
            &self.ca_pem,
            kubegrid_pki::ADMIN_USER,
            &self.admin,
        )
        .map_err(|e| e.to_string())?;
        let client = kubegrid_cluster::connect(&kubeconfig)
            .await
            .map_err(|e| e.to_string())?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = tokio::time::timeout(Duration::from_secs(5), client.request_text(request))
            .await
            .map_err(|_| "no answer within 5s".to_string())?
            .map_err(|e| e.to_string())?;
        if text.trim() == "ok" {
            Ok(())
        } else {
            Err(format!("answered `{}`", text.trim()))
        }
    }
}

/// Puts `ca_pem` (one CA or a trust bundle) into every `kube-root-ca.crt` ConfigMap and into
/// `cluster-info`'s kubeconfig, so Pods and joining Nodes trust what the API servers present.
/// Returns how many ConfigMaps changed.
pub async fn publish_ca(client: &Client, ca_pem: &str) -> Result<usize, String> {
    let all: Api<ConfigMap> = Api::all(client.clone());
    let roots = all
        .list(&ListParams::default().fields("metadata.name=kube-root-ca.crt"))
        .await
        .map_err(|e| format!("listing the kube-root-ca.crt ConfigMaps: {e}"))?;
    let mut changed = 0;
    let params = PatchParams::default();
    for cm in roots {
        let current = cm.data.as_ref().and_then(|d| d.get("ca.crt"));
        if current.map(String::as_str) == Some(ca_pem) {
            continue;
        }
        let ns = cm.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        api.patch(
            "kube-root-ca.crt",
            &params,
            &Patch::Merge(json!({"data": {"ca.crt": ca_pem}})),
        )
        .await
        .map_err(|e| format!("updating {ns}/kube-root-ca.crt: {e}"))?;
        changed += 1;
    }
    let public: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let info = public
        .get_opt("cluster-info")
        .await
        .map_err(|e| format!("reading kube-public/cluster-info: {e}"))?;
    if let Some(text) = info
        .as_ref()
        .and_then(|cm| cm.data.as_ref())
        .and_then(|d| d.get("kubeconfig"))
    {
        let updated = with_ca_data(text, ca_pem)
            .map_err(|e| format!("kube-public/cluster-info's kubeconfig: {e}"))?;
        if &updated != text {
            public
                .patch(
                    "cluster-info",
                    &params,
                    &Patch::Merge(json!({"data": {"kubeconfig": updated}})),
                )
                .await
                .map_err(|e| format!("updating kube-public/cluster-info: {e}"))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// `kubeconfig` with every cluster's `certificate-authority-data` set to `ca_pem`.
pub fn with_ca_data(kubeconfig: &str, ca_pem: &str) -> Result<String, String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(kubeconfig).map_err(|e| e.to_string())?;
    let data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let clusters = doc
        .get_mut("clusters")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .ok_or("it lists no clusters")?;
    for c in clusters {
        if let Some(cluster) = c
            .get_mut("cluster")
            .and_then(serde_yaml::Value::as_mapping_mut)
        {
            cluster.insert(
                "certificate-authority-data".into(),
                serde_yaml::Value::String(data.clone()),
            );
        }
    }
    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_gets_the_new_ca_data_and_keeps_the_rest() {
        let text = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: T0xE\n    server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\n";
        let out = with_ca_data(text, "NEW").unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        let c = &doc["clusters"][0]["cluster"];
        assert_eq!(c["certificate-authority-data"], "TkVX");
        assert_eq!(c["server"], "https://10.0.0.1:6443");
    }
}
