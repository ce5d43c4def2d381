//! Post-install checks of a running cluster, through its API.
//!
//! Each check yields a [`CheckResult`] instead of an error: the engine records
//! every result in the journal and prints them all, so one failure must never
//! hide the others.

mod api;
mod dns;
mod gpu;
mod network;
mod nodes;
mod pods;
mod probe;

use std::{collections::BTreeMap, future::Future, time::Duration};

use kube::Client;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use self::{
    api::check_api_readyz,
    dns::check_dns,
    gpu::{GVISOR_DMESG, check_gpu_allocatable, check_gpu_pod, check_gvisor_pod},
    network::check_pod_network,
    nodes::{check_nodes_ready, label_nodes},
    pods::check_system_pods,
};

/// Name of the apiserver `/readyz` check.
pub const API_READYZ: &str = "api-readyz";
/// Name of the check that every expected node is Ready with its roles, labels and taints.
pub const NODES_READY: &str = "nodes-ready";
/// Name of the check that every kube-system pod runs.
pub const SYSTEM_PODS: &str = "system-pods";
/// Name of the in-cluster DNS resolution check.
pub const DNS: &str = "dns";
/// Name of the pod-to-pod traffic check across two nodes.
pub const POD_NETWORK: &str = "pod-network";
/// Name of the check that GPU Nodes advertise every detected GPU as `nvidia.com/gpu`.
pub const GPU_ALLOCATABLE: &str = "gpu-allocatable";
/// Name of the check that a pod under RuntimeClass `nvidia` with one GPU lists it.
pub const GPU_POD: &str = "gpu-pod";
/// Name of the check that a pod under RuntimeClass `gvisor` runs on gVisor's kernel.
pub const GVISOR_POD: &str = "gvisor-pod";

/// Label that marks control-plane nodes; kubeadm sets it.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// Label that marks worker nodes; kubegrid sets it because a kubelet may not.
pub const WORKER_LABEL: &str = "node-role.kubernetes.io/worker";

/// Role name of a control-plane host in [`ExpectedNode::roles`].
pub const ROLE_CONTROL_PLANE: &str = "control-plane";
/// Role name of a worker host in [`ExpectedNode::roles`].
pub const ROLE_WORKER: &str = "worker";

/// The outcome of one named check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// One of the check names defined in this module, e.g. [`NODES_READY`].
    pub name: String,
    /// Whether the check passed.
    pub ok: bool,
    /// What was seen: on failure, what differs from what was expected.
    pub detail: String,
    /// How long the check ran, waiting included.
    pub duration_ms: u64,
}

/// A node the spec says should be in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedNode {
    /// The Node name (the host's name as the kubelet registers it).
    pub name: String,
    /// `control-plane`, `worker` and/or `etcd`. Hosts with only `etcd` run no
    /// kubelet and are not Nodes, so checks and labelling skip them.
    pub roles: Vec<String>,
    /// Labels the Node must carry.
    pub labels: BTreeMap<String, String>,
    /// Taints the Node must carry, as `(key, value, effect)`.
    pub taints: Vec<(String, Option<String>, String)>,
    /// On a GPU Node whose GPUs NVIDIA's device plugin advertises: how many kubegrid
    /// detected, which `gpu-allocatable` expects and `gpu-pod` uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<usize>,
    /// Its containerd has the `gvisor` handler, so `gvisor-pod` may run there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gvisor: bool,
}

impl ExpectedNode {
    /// Whether the node has `role` among its roles.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the host runs a kubelet, i.e. is a control-plane node or a worker.
    pub fn is_kubernetes_node(&self) -> bool {
        self.has_role(ROLE_CONTROL_PLANE) || self.has_role(ROLE_WORKER)
    }
}

/// Images, namespaces and deadlines the checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    /// A busybox-like image providing `nslookup`, `httpd`, `wget` and `sh`.
    pub image: String,
    /// `imagePullPolicy` of the probe pods; `IfNotPresent` suits preloaded images.
    pub image_pull_policy: String,
    /// Namespace for the probe pods of `dns` and `pod-network`; created if missing.
    pub namespace: String,
    /// The cluster DNS domain (`networking.dnsDomain`).
    pub dns_domain: String,
    /// How long `/readyz` may take to answer `ok`.
    pub readyz_timeout: Duration,
    /// How long the nodes may take to become Ready.
    pub nodes_timeout: Duration,
    /// How long kube-system pods may take to run.
    pub system_pods_timeout: Duration,
    /// How long each probe pod may take to start or finish (image pull included).
    pub pod_timeout: Duration,
    /// Pause between two looks at the cluster while waiting.
    pub poll_interval: Duration,
    /// The image `gpu-pod` runs `nvidia-smi -L` in: one with the C library the
    /// NVIDIA runtime's `nvidia-smi` needs (the bundle's device plugin image).
    pub gpu_image: Option<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            image: "docker.io/library/busybox:1.36".into(),
            image_pull_policy: "IfNotPresent".into(),
            namespace: "kubegrid-checks".into(),
            dns_domain: "cluster.local".into(),
            readyz_timeout: Duration::from_secs(120),
            nodes_timeout: Duration::from_secs(300),
            system_pods_timeout: Duration::from_secs(300),
            pod_timeout: Duration::from_secs(180),
            poll_interval: Duration::from_secs(2),
            gpu_image: None,
        }
    }
}

/// Runs every check in order and returns all results.
///
/// A failed check does not stop the others, except that `dns` and
/// `pod-network` are reported as failed-and-skipped when `api-readyz` failed:
/// they create pods, which is pointless against an apiserver that is not ready.
pub async fn run_checks(
    client: &Client,
    opts: &CheckOptions,
    expected: &[ExpectedNode],
) -> Vec<CheckResult> {
    let readyz = check_api_readyz(client, opts).await;
    let api_ready = readyz.ok;
    let mut results = vec![
        readyz,
        check_nodes_ready(client, opts, expected).await,
        check_system_pods(client, opts).await,
    ];
    if api_ready {
        results.push(check_dns(client, opts).await);
        results.push(check_pod_network(client, opts).await);
    } else {
        results.push(skipped(DNS, API_READYZ));
        results.push(skipped(POD_NETWORK, API_READYZ));
    }
    results.extend(runtime_checks(client, opts, expected, api_ready).await);
    results
}

/// `gpu-allocatable` and `gpu-pod` where a Node expects GPUs, `gvisor-pod` where one runs
/// gVisor; the pods go to the first such Node.
async fn runtime_checks(
    client: &Client,
    opts: &CheckOptions,
    expected: &[ExpectedNode],
    api_ready: bool,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let gpu_node = expected.iter().find(|n| n.gpus.is_some_and(|g| g > 0));
    if gpu_node.is_some() {
        results.push(check_gpu_allocatable(client, opts, expected).await);
    }
    if let Some(node) = gpu_node {
        results.push(match (api_ready, &opts.gpu_image) {
            (false, _) => skipped(GPU_POD, API_READYZ),
            (true, Some(image)) => check_gpu_pod(client, opts, &node.name, image).await,
            (true, None) => CheckResult {
                name: GPU_POD.into(),
                ok: false,
                detail: "no image to run nvidia-smi in; expected the bundle's device plugin image"
                    .into(),
                duration_ms: 0,
            },
        });
    }
    if let Some(node) = expected.iter().find(|n| n.gvisor && n.is_kubernetes_node()) {
        results.push(if api_ready {
            check_gvisor_pod(client, opts, &node.name).await
        } else {
            skipped(GVISOR_POD, API_READYZ)
        });
    }
    results
}

fn skipped(name: &str, because: &str) -> CheckResult {
    CheckResult {
        name: name.into(),
        ok: false,
        detail: format!("skipped: {because} failed, so probe pods were not created"),
        duration_ms: 0,
    }
}

/// Runs one check body and wraps its outcome with the name and duration.
async fn timed<F>(name: &str, body: F) -> CheckResult
where
    F: Future<Output = Result<String, String>>,
{
    let started = Instant::now();
    let outcome = body.await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (ok, detail) = match outcome {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    if ok {
        tracing::info!(check = name, duration_ms, "{detail}");
    } else {
        tracing::warn!(check = name, duration_ms, "{detail}");
    }
    CheckResult {
        name: name.into(),
        ok,
        detail,
        duration_ms,
    }
}
