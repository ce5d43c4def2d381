//! The GPU Node and sandbox checks through the API: what the Nodes advertise, and pods that
//! run under the `nvidia` and `gvisor` RuntimeClasses.
//!
//! - `gpu-allocatable`: every GPU Node advertises as many `nvidia.com/gpu` as kubegrid
//!   detected on its PCI bus (NVIDIA's device plugin registers them with the kubelet);
//! - `gpu-pod`: a pod under RuntimeClass `nvidia` with one GPU lists exactly one with
//!   `nvidia-smi -L` (the NVIDIA runtime puts `nvidia-smi` into the container);
//! - `gvisor-pod`: a pod under RuntimeClass `gvisor` reads gVisor's own kernel log with
//!   `dmesg`, which the host kernel's never contains.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client};

use super::{
    CheckOptions, CheckResult, ExpectedNode, GPU_ALLOCATABLE, GPU_POD, GVISOR_POD,
    probe::{self, GPU_RESOURCE, PodRuntime, ProbeSpec},
    timed,
};
use crate::{
    error::describe,
    poll::{Attempt, poll_until},
};

/// What gVisor's kernel logs at boot; Linux never does.
pub const GVISOR_DMESG: &str = "Starting gVisor";

/// Checks that every expected GPU Node's allocatable `nvidia.com/gpu` equals the count
/// kubegrid detected, waiting up to [`CheckOptions::nodes_timeout`] for the device plugin.
pub async fn check_gpu_allocatable(
    client: &Client,
    opts: &CheckOptions,
    expected: &[ExpectedNode],
) -> CheckResult {
    timed(GPU_ALLOCATABLE, async {
        let wanted: Vec<(&str, usize)> = expected
            .iter()
            .filter_map(|n| n.gpus.map(|g| (n.name.as_str(), g)))
            .collect();
        let api: Api<Node> = Api::all(client.clone());
        poll_until(opts.nodes_timeout, opts.poll_interval, || {
            let api = api.clone();
            let wanted = &wanted;
            async move {
                let mut seen = Vec::new();
                let mut problems = Vec::new();
                for (name, gpus) in wanted {
                    let have = match api.get_opt(name).await {
                        Ok(Some(node)) => allocatable_gpus(&node),
                        Ok(None) => {
                            problems.push(format!("Node {name} does not exist"));
                            continue;
                        }
                        Err(err) => {
                            return Attempt::Retry(format!(
                                "could not read Node {name}: {}",
                                describe(&err)
                            ));
                        }
                    };
                    match have {
                        Some(n) if n == *gpus as u64 => seen.push(format!("{name}: {n}")),
                        Some(n) => problems.push(format!(
                            "Node {name} advertises {GPU_RESOURCE} {n}; expected {gpus} (detected on its PCI bus)"
                        )),
                        None => problems.push(format!(
                            "Node {name} advertises no {GPU_RESOURCE}; expected {gpus} (detected on its PCI bus); hint: is NVIDIA's device plugin running there?"
                        )),
                    }
                }
                if problems.is_empty() {
                    Attempt::Done(format!("allocatable {GPU_RESOURCE}: {}", seen.join(", ")))
                } else {
                    Attempt::Retry(problems.join("; "))
                }
            }
        })
        .await
        .map_err(|last| format!("not within {:?}: {last}", opts.nodes_timeout))
    })
    .await
}

/// The Node's allocatable `nvidia.com/gpu`, when it advertises any.
fn allocatable_gpus(node: &Node) -> Option<u64> {
    let quantity = node
        .status
        .as_ref()?
        .allocatable
        .as_ref()?
        .get(GPU_RESOURCE)?;
    quantity.0.parse().ok()
}

/// Runs `nvidia-smi -L` in a pod with one GPU under RuntimeClass `nvidia` on `node`, in
/// `image` (one with the C library nvidia-smi needs: the bundle's device plugin image), and
/// checks that it lists one GPU.
pub async fn check_gpu_pod(
    client: &Client,
    opts: &CheckOptions,
    node: &str,
    image: &str,
) -> CheckResult {
    timed(GPU_POD, async {
        let spec = ProbeSpec {
            check: GPU_POD,
            command: vec!["nvidia-smi".into(), "-L".into()],
            node: Some(node),
            serves: false,
            runtime: Some(PodRuntime {
                class: "nvidia",
                gpus: 1,
                image: Some(image),
            }),
        };
        let ran = run_pod(client, opts, &spec).await?;
        let (pod_ref, shown) = (&ran.pod_ref, probe::show_log(&ran.log));
        let listed: Vec<&str> = ran
            .log
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("GPU "))
            .collect();
        let outcome = match ran.finished.as_deref() {
            Ok("Succeeded") if listed.len() == 1 => Ok(format!(
                "pod {pod_ref} on {node} (RuntimeClass nvidia, 1 GPU): {}",
                listed[0]
            )),
            Ok("Succeeded") => Err(format!(
                "pod {pod_ref} on {node} (RuntimeClass nvidia, 1 GPU): nvidia-smi -L listed {} GPUs; expected 1; log:\n{shown}",
                listed.len()
            )),
            Ok(phase) => Err(format!(
                "nvidia-smi -L failed in pod {pod_ref} on {node} (phase {phase}), expected it to list the pod's GPU; log:\n{shown}"
            )),
            Err(waited) => Err(format!(
                "pod {pod_ref} on {node} running nvidia-smi -L: {waited}; log:\n{shown}"
            )),
        };
        ran.cleanup(outcome).await
    })
    .await
}

/// Runs `dmesg` in a pod under RuntimeClass `gvisor` on `node` and checks that the log is
/// gVisor's kernel's.
pub async fn check_gvisor_pod(client: &Client, opts: &CheckOptions, node: &str) -> CheckResult {
    timed(GVISOR_POD, async {
        let spec = ProbeSpec {
            check: GVISOR_POD,
            command: vec!["dmesg".into()],
            node: Some(node),
            serves: false,
            runtime: Some(PodRuntime {
                class: "gvisor",
                gpus: 0,
                image: None,
            }),
        };
        let ran = run_pod(client, opts, &spec).await?;
        let (pod_ref, shown) = (&ran.pod_ref, probe::show_log(&ran.log));
        let gvisor = ran.log.as_deref().is_ok_and(|l| l.contains(GVISOR_DMESG));
        let outcome = match ran.finished.as_deref() {
            Ok("Succeeded") if gvisor => Ok(format!(
                "pod {pod_ref} on {node} (RuntimeClass gvisor) runs on gVisor's kernel: {}",
                shown.lines().find(|l| l.contains(GVISOR_DMESG)).unwrap_or_default().trim()
            )),
            Ok("Succeeded") => Err(format!(
                "pod {pod_ref} on {node} (RuntimeClass gvisor): dmesg shows no `{GVISOR_DMESG}`, so the pod did not run on gVisor's kernel; log:\n{shown}"
            )),
            Ok(phase) => Err(format!(
                "dmesg failed in pod {pod_ref} on {node} (RuntimeClass gvisor, phase {phase}); log:\n{shown}"
            )),
            Err(waited) => Err(format!(
                "pod {pod_ref} on {node} (RuntimeClass gvisor) running dmesg: {waited}; log:\n{shown}"
            )),
        };
        ran.cleanup(outcome).await
    })
    .await
}

/// A finished (or given up on) probe pod, not yet deleted.
struct Ran {
    api: Api<Pod>,
    name: String,
    /// `namespace/name`.
    pod_ref: String,
    /// The final phase, or why waiting for it ended.
    finished: Result<String, String>,
    /// The pod's log, or why it could not be read.
    log: Result<String, String>,
}

impl Ran {
    /// Deletes the pod; one that could not be deleted is noted in the outcome.
    async fn cleanup(self, outcome: Result<String, String>) -> Result<String, String> {
        probe::cleanup(&self.api, &[self.name], outcome).await
    }
}

/// Creates the probe pod, waits until it finished and reads its log.
async fn run_pod(
    client: &Client,
    opts: &CheckOptions,
    spec: &ProbeSpec<'_>,
) -> Result<Ran, String> {
    probe::ensure_namespace(client, &opts.namespace).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &opts.namespace);
    let pod = probe::probe_pod(opts, spec)?;
    let name = probe::create(&api, &pod, opts).await?;
    let finished = probe::wait_finished(&api, &name, opts).await;
    let log = probe::log(&api, &name).await;
    Ok(Ran {
        pod_ref: format!("{}/{name}", opts.namespace),
        api,
        name,
        finished,
        log,
    })
}
