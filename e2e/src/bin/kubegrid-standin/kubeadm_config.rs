//! Validation of a kubeadm `--config` file the way kubeadm reads it: which documents it takes,
//! which API version the Kubernetes version allows, and the fields kubegrid's flow relies on.
//! Problems are what real kubeadm refuses (the stand-in exits non-zero); warnings are what it
//! prints and goes on (a deprecated API version, an unknown field under strict decoding).

mod cluster;
mod docs;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    checks::KubeVersion,
    yaml::{at, type_name},
};

/// kubeadm's API before Kubernetes 1.31 (deprecated from 1.31).
pub const V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
/// kubeadm's API from Kubernetes 1.31.
pub const V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
const KUBELET_API: &str = "kubelet.config.k8s.io/v1beta1";
const KUBE_PROXY_API: &str = "kubeproxy.config.k8s.io/v1alpha1";

/// Which command reads the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `kubeadm init`.
    Init,
    /// `kubeadm join`.
    Join,
}

/// What the effects and preflight checks need from a valid config.
#[derive(Debug, Default)]
pub struct Facts {
    /// `nodeRegistration.name`.
    pub node_name: Option<String>,
    /// `nodeRegistration.criSocket`.
    pub cri_socket: Option<String>,
    /// `nodeRegistration.kubeletExtraArgs`, as (flag, value) pairs.
    pub kubelet_args: Vec<(String, String)>,
    /// `nodeRegistration.ignorePreflightErrors`.
    pub ignore_preflight: Vec<String>,
    /// Init, or a join with `controlPlane`.
    pub control_plane: bool,
    /// Init with etcd managed by kubeadm (no `etcd.external`).
    pub local_etcd: bool,
    /// The apiserver URL the kubeconfigs point at.
    pub server: Option<String>,
    /// `certificateKey` of InitConfiguration or JoinConfiguration.controlPlane.
    pub certificate_key: Option<String>,
    /// JoinConfiguration `caCertPath` (default `/etc/kubernetes/pki/ca.crt`).
    pub ca_cert_path: Option<String>,
    /// The KubeletConfiguration document, if any.
    pub kubelet_config: Option<Value>,
    /// The Kubernetes version the control plane runs: init's `kubernetesVersion`, else
    /// kubeadm's own.
    pub kubernetes_version: Option<KubeVersion>,
    /// Init's ClusterConfiguration document, which the stand-in keeps on the host where real
    /// kubeadm keeps it in the cluster (the kubeadm-config ConfigMap) for `upgrade apply`.
    pub cluster_config: Option<Value>,
}

/// The verdict on a config.
#[derive(Debug, Default)]
pub struct Checked {
    /// Why kubeadm would refuse the config; empty when it accepts it.
    pub problems: Vec<String>,
    /// What kubeadm would warn about.
    pub warnings: Vec<String>,
    /// What the config says, for the effects.
    pub facts: Facts,
}

impl Checked {
    fn problem(&mut self, msg: String) {
        self.problems.push(msg);
    }

    fn warn(&mut self, msg: String) {
        self.warnings.push(msg);
    }

    /// Warns about keys of `obj` outside `known`, as kubeadm's strict decoding does.
    fn known_fields(&mut self, obj: &Value, at: &str, known: &[&str]) {
        if let Some(map) = obj.as_object() {
            for key in map.keys() {
                if !known.contains(&key.as_str()) {
                    self.warn(format!(
                        "{at}: unknown field `{key}` (strict decoding); known fields: {}",
                        known.join(", ")
                    ));
                }
            }
        }
    }

    /// The value at `path` if it is a map; a problem if it is something else.
    fn map<'a>(&mut self, doc: &'a Value, path: &str, at: &str) -> Option<&'a Value> {
        let v = crate::yaml::at(doc, path)?;
        if v.is_object() {
            Some(v)
        } else {
            self.problem(format!(
                "{at}.{path}: expected a map, found {}",
                type_name(v)
            ));
            None
        }
    }

    /// The value at `path` if it is a string; a problem if it is something else.
    fn string<'a>(&mut self, doc: &'a Value, path: &str, at: &str) -> Option<&'a str> {
        let v = crate::yaml::at(doc, path)?;
        match v.as_str() {
            Some(s) => Some(s),
            None => {
                self.problem(format!(
                    "{at}.{path}: expected a string, found {}",
                    type_name(v)
                ));
                None
            }
        }
    }

    /// The strings of a list at `path`; a problem for anything else.
    fn strings(&mut self, doc: &Value, path: &str, at: &str) -> Vec<String> {
        let Some(v) = crate::yaml::at(doc, path) else {
            return Vec::new();
        };
        match v.as_array() {
            Some(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            _ => {
                self.problem(format!(
                    "{at}.{path}: expected a list of strings, found {}",
                    type_name(v)
                ));
                Vec::new()
            }
        }
    }
}

/// Checks the documents of a config file for `flow`, for a kubeadm of version `own`.
/// `exists` says whether a host path exists (external etcd certificate files).
pub fn check(
    flow: Flow,
    docs: &[Value],
    own: &KubeVersion,
    exists: &dyn Fn(&str) -> bool,
) -> Checked {
    let mut c = Checked::default();
    let mut by_kind: BTreeMap<String, (String, &Value)> = BTreeMap::new();
    for (i, doc) in docs.iter().enumerate() {
        let at = format!("document {}", i + 1);
        let (Some(api), Some(kind)) = (
            doc.get("apiVersion").and_then(Value::as_str),
            doc.get("kind").and_then(Value::as_str),
        ) else {
            c.problem(format!(
                "{at}: expected a map with string apiVersion and kind, found {}",
                if doc.is_object() {
                    "a map without them"
                } else {
                    type_name(doc)
                }
            ));
            continue;
        };
        let known = match (api, kind) {
            (
                V1BETA3 | V1BETA4,
                "InitConfiguration" | "ClusterConfiguration" | "JoinConfiguration",
            )
            | (KUBELET_API, "KubeletConfiguration")
            | (KUBE_PROXY_API, "KubeProxyConfiguration") => true,
            (V1BETA4, "ResetConfiguration" | "UpgradeConfiguration") => {
                c.warn(format!("{at}: {kind} is not read by this command; ignored"));
                false
            }
            (V1BETA3 | V1BETA4, _) => {
                c.problem(format!("{at}: {api} has no kind `{kind}`; expected InitConfiguration, ClusterConfiguration or JoinConfiguration"));
                false
            }
            _ if api.starts_with("kubeadm.k8s.io/") => {
                c.problem(format!("{at}: apiVersion `{api}` is not served by kubeadm {own}; expected {V1BETA4} (Kubernetes 1.31 and later) or {V1BETA3} (before 1.31)"));
                false
            }
            _ => {
                c.problem(format!("{at}: `{api}` `{kind}` is not a kubeadm configuration document; expected {V1BETA4}/{V1BETA3} Init/Cluster/JoinConfiguration, {KUBELET_API} KubeletConfiguration or {KUBE_PROXY_API} KubeProxyConfiguration"));
                false
            }
        };
        if known
            && by_kind
                .insert(kind.to_string(), (api.to_string(), doc))
                .is_some()
        {
            c.problem(format!("{at}: kind {kind} is specified twice"));
        }
    }

    let kubeadm_apis: Vec<&str> = by_kind
        .values()
        .map(|(api, _)| api.as_str())
        .filter(|api| *api == V1BETA3 || *api == V1BETA4)
        .collect();
    if kubeadm_apis.iter().any(|a| *a != kubeadm_apis[0]) {
        c.problem(format!(
            "the kubeadm documents mix {V1BETA3} and {V1BETA4}; all must use the same version"
        ));
    }
    let v4 = kubeadm_apis.first() == Some(&V1BETA4);

    let version = effective_version(&mut c, flow, &by_kind, own);
    c.facts.kubernetes_version = Some(version.clone());
    if flow == Flow::Init {
        c.facts.cluster_config = by_kind
            .get("ClusterConfiguration")
            .map(|(_, doc)| (*doc).clone());
    }
    if let Some(api) = kubeadm_apis.first() {
        if *api == V1BETA4 && !version.at_least(1, 31) {
            c.problem(format!("{V1BETA4} needs Kubernetes 1.31 or later, but the version is {version}; use {V1BETA3}"));
        }
        if *api == V1BETA3 && version.at_least(1, 31) {
            c.warn(format!("{V1BETA3} is deprecated from Kubernetes 1.31 (the version is {version}); use {V1BETA4}"));
        }
    }

    let has = |kind: &str| by_kind.contains_key(kind);
    let (needed, ignored): (&[&str], &[&str]) = match flow {
        Flow::Init => (
            &["InitConfiguration", "ClusterConfiguration"],
            &["JoinConfiguration"],
        ),
        Flow::Join => (
            &["JoinConfiguration"],
            &[
                "InitConfiguration",
                "ClusterConfiguration",
                "KubeletConfiguration",
                "KubeProxyConfiguration",
            ],
        ),
    };
    for kind in needed.iter().filter(|k| !has(k)) {
        let found: Vec<&str> = by_kind.keys().map(String::as_str).collect();
        c.problem(format!(
            "kubeadm {} needs a {kind} document; found: [{}]",
            if flow == Flow::Init { "init" } else { "join" },
            found.join(", ")
        ));
    }
    for kind in ignored.iter().filter(|k| has(k)) {
        c.warn(format!("{kind} is ignored by this command"));
    }
    for (kind, (_, doc)) in &by_kind {
        if ignored.contains(&kind.as_str()) {
            continue;
        }
        match kind.as_str() {
            "InitConfiguration" => docs::init(&mut c, doc, v4),
            "ClusterConfiguration" => cluster::cluster(&mut c, doc, v4, exists),
            "JoinConfiguration" => docs::join(&mut c, doc, v4),
            "KubeletConfiguration" => cluster::kubelet(&mut c, doc),
            _ => cluster::kube_proxy(&mut c, doc),
        }
    }
    c
}

/// The Kubernetes version the config deploys: ClusterConfiguration's `kubernetesVersion` for
/// init when given, else kubeadm's own. kubeadm deploys its own minor or the one before;
/// newer is a warning, older an error.
fn effective_version(
    c: &mut Checked,
    flow: Flow,
    by_kind: &BTreeMap<String, (String, &Value)>,
    own: &KubeVersion,
) -> KubeVersion {
    let given = match flow {
        Flow::Init => by_kind
            .get("ClusterConfiguration")
            .and_then(|(_, doc)| at(doc, "kubernetesVersion")),
        Flow::Join => None,
    };
    let Some(given) = given else {
        return own.clone();
    };
    let Some(version) = given.as_str().and_then(KubeVersion::parse) else {
        c.problem(format!(
            "ClusterConfiguration.kubernetesVersion: `{}` is not a version like v1.31.4",
            given
                .as_str()
                .map_or_else(|| given.to_string(), str::to_string)
        ));
        return own.clone();
    };
    if version.major != own.major || version.minor + 1 < own.minor {
        c.problem(format!(
            "kubeadm {own} deploys control planes of v{}.{} or later; kubernetesVersion {version} is too old",
            own.major,
            own.minor.saturating_sub(1)
        ));
    } else if version.minor > own.minor {
        c.warn(format!(
            "kubernetesVersion {version} is newer than kubeadm {own}; upgrade kubeadm"
        ));
    }
    version
}
