//! Short-lived pods that the `dns` and `pod-network` checks run.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, LogParams, PostParams},
};

use super::CheckOptions;
use crate::{
    error::{api_code, describe},
    poll::{Attempt, poll_until},
};

/// Label that marks pods kubegrid's checks created, so leftovers are easy to find.
const CHECK_LABEL: &str = "kubegrid.io/check";
/// The extended resource NVIDIA's device plugin advertises GPUs as.
pub(super) const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The port the pod-network server listens on.
pub(super) const SERVER_PORT: i32 = 8080;

/// Creates the probe namespace unless it exists.
pub(super) async fn ensure_namespace(client: &Client, namespace: &str) -> Result<(), String> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(namespace).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(err) => {
            return Err(format!(
                "could not read namespace {namespace}: {}",
                describe(&err)
            ));
        }
    }
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": namespace, "labels": { "app.kubernetes.io/managed-by": "kubegrid" } },
    });
    let ns: Namespace = serde_json::from_value(manifest)
        .map_err(|err| format!("could not build namespace {namespace}: {err}"))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        // Another run created it between our read and our create.
        Err(err) if api_code(&err) == Some(409) => Ok(()),
        Err(err) => Err(format!(
            "could not create namespace {namespace}: {}",
            describe(&err)
        )),
    }
}

/// What a probe pod runs and where.
pub(super) struct ProbeSpec<'a> {
    /// Which check the pod belongs to (label value and name prefix).
    pub check: &'a str,
    /// The container's command.
    pub command: Vec<String>,
    /// Pin the pod to this node, bypassing the scheduler.
    pub node: Option<&'a str>,
    /// Whether the pod serves on [`SERVER_PORT`] and needs a readiness probe.
    pub serves: bool,
    /// A RuntimeClass (and what comes with it) instead of the node's default runtime.
    pub runtime: Option<PodRuntime<'a>>,
}

/// How a probe pod of a runtime check runs.
pub(super) struct PodRuntime<'a> {
    /// `spec.runtimeClassName`.
    pub class: &'a str,
    /// `nvidia.com/gpu` the pod asks for (limits), none when 0.
    pub gpus: u32,
    /// The image instead of [`CheckOptions::image`].
    pub image: Option<&'a str>,
}

/// Builds a probe pod manifest.
///
/// The pod meets the "restricted" Pod Security Standard so it runs in a
/// namespace that enforces it, tolerates every taint so small clusters whose
/// only nodes are tainted control planes still run it, and carries an active
/// deadline so a pod orphaned by a crashed engine ends by itself.
pub(super) fn probe_pod(opts: &CheckOptions, spec: &ProbeSpec<'_>) -> Result<Pod, String> {
    let deadline = opts
        .pod_timeout
        .as_secs()
        .saturating_mul(2)
        .saturating_add(60);
    let mut container = serde_json::json!({
        "name": "probe",
        "image": opts.image,
        "imagePullPolicy": opts.image_pull_policy,
        "command": spec.command,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "seccompProfile": { "type": "RuntimeDefault" },
        },
    });
    if spec.serves {
        container["ports"] = serde_json::json!([{ "containerPort": SERVER_PORT }]);
        container["readinessProbe"] = serde_json::json!({
            "tcpSocket": { "port": SERVER_PORT },
            "periodSeconds": 1,
        });
    }
    let mut pod_spec = serde_json::json!({
        "restartPolicy": "Never",
        "activeDeadlineSeconds": deadline,
        "terminationGracePeriodSeconds": 1,
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "tolerations": [{ "operator": "Exists" }],
        "containers": [container],
    });
    if let Some(node) = spec.node {
        pod_spec["nodeName"] = serde_json::json!(node);
    }
    if let Some(runtime) = &spec.runtime {
        pod_spec["runtimeClassName"] = serde_json::json!(runtime.class);
        let container = &mut pod_spec["containers"][0];
        if let Some(image) = runtime.image {
            container["image"] = serde_json::json!(image);
        }
        if runtime.gpus > 0 {
            container["resources"] =
                serde_json::json!({ "limits": { GPU_RESOURCE: runtime.gpus.to_string() } });
        }
    }
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("kubegrid-{}-", spec.check),
            "namespace": opts.namespace,
            "labels": { CHECK_LABEL: spec.check, "app.kubernetes.io/managed-by": "kubegrid" },
        },
        "spec": pod_spec,
    });
    serde_json::from_value(manifest).map_err(|err| format!("could not build the probe pod: {err}"))
}

/// Creates a pod and returns the name the apiserver gave it.
///
/// In a namespace created moments ago the ServiceAccount admission plugin
/// refuses pods (403) until the controller has made the `default` account,
/// so refusals that pass with time (403, 429, 5xx, no answer) are retried
/// until [`CheckOptions::pod_timeout`]; anything else (an invalid pod) is final.
pub(super) async fn create(
    api: &Api<Pod>,
    pod: &Pod,
    opts: &CheckOptions,
) -> Result<String, String> {
    let outcome = poll_until(opts.pod_timeout, opts.poll_interval, || async move {
        match api.create(&PostParams::default(), pod).await {
            Ok(created) => Attempt::Done(Ok(created)),
            Err(err) => match api_code(&err) {
                Some(403 | 429) | Some(500..) | None => Attempt::Retry(describe(&err)),
                Some(_) => Attempt::Done(Err(describe(&err))),
            },
        }
    })
    .await;
    let created = match outcome {
        Ok(Ok(created)) => created,
        Ok(Err(refused)) => return Err(format!("could not create the probe pod: {refused}")),
        Err(last) => {
            return Err(format!(
                "could not create the probe pod within {:?}: {last}",
                opts.pod_timeout
            ));
        }
    };
    created
        .metadata
        .name
        .ok_or_else(|| "the apiserver returned the probe pod without a name".into())
}

/// Waits until the pod has finished and returns its final phase.
pub(super) async fn wait_finished(
    api: &Api<Pod>,
    name: &str,
    opts: &CheckOptions,
) -> Result<String, String> {
    poll_until(opts.pod_timeout, opts.poll_interval, || async move {
        match api.get(name).await {
            Ok(pod) => match phase(&pod) {
                phase @ ("Succeeded" | "Failed") => Attempt::Done(phase.to_owned()),
                _ => Attempt::Retry(state(&pod)),
            },
            Err(err) => Attempt::Retry(format!("could not read the pod: {}", describe(&err))),
        }
    })
    .await
    .map_err(|last| format!("not finished within {:?}: {last}", opts.pod_timeout))
}

/// Waits until the pod is Running and Ready, and returns its IP.
pub(super) async fn wait_serving(
    api: &Api<Pod>,
    name: &str,
    opts: &CheckOptions,
) -> Result<String, String> {
    let outcome = poll_until(opts.pod_timeout, opts.poll_interval, || async move {
        let pod = match api.get(name).await {
            Ok(pod) => pod,
            Err(err) => {
                return Attempt::Retry(format!("could not read the pod: {}", describe(&err)));
            }
        };
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let ip = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty());
        match (phase(&pod), ready, ip) {
            ("Running", true, Some(ip)) => Attempt::Done(Ok(ip)),
            // A server that exited will never serve; stop waiting.
            ("Succeeded" | "Failed", ..) => Attempt::Done(Err(state(&pod))),
            _ => Attempt::Retry(state(&pod)),
        }
    })
    .await;
    match outcome {
        Ok(Ok(ip)) => Ok(ip),
        Ok(Err(state)) => Err(format!("exited instead of serving: {state}")),
        Err(last) => Err(format!("not serving within {:?}: {last}", opts.pod_timeout)),
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown")
}

/// The phase plus whatever explains a pod that is stuck: an unschedulable
/// condition or a container's waiting reason (ErrImagePull and the like).
fn state(pod: &Pod) -> String {
    let mut notes = Vec::new();
    if let Some(status) = &pod.status {
        for condition in status.conditions.iter().flatten() {
            if condition.status == "False" && condition.type_ == "PodScheduled" {
                notes.push(format!(
                    "{}: {}",
                    condition.reason.as_deref().unwrap_or("Unscheduled"),
                    condition.message.as_deref().unwrap_or("")
                ));
            }
        }
        for container in status.container_statuses.iter().flatten() {
            let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(reason) = waiting.and_then(|w| w.reason.as_deref()) {
                notes.push(format!("{}: {reason}", container.name));
            }
        }
    }
    if notes.is_empty() {
        format!("phase {}", phase(pod))
    } else {
        format!("phase {} ({})", phase(pod), notes.join("; "))
    }
}

/// The pod's log (last lines), or why it could not be read.
pub(super) async fn log(api: &Api<Pod>, name: &str) -> Result<String, String> {
    let params = LogParams {
        tail_lines: Some(50),
        ..LogParams::default()
    };
    match api.logs(name, &params).await {
        Ok(text) => Ok(text.trim_end().to_owned()),
        Err(err) => Err(format!("(log unavailable: {})", describe(&err))),
    }
}

/// A log for a detail: the text, a note that it was empty, or why it is missing.
pub(super) fn show_log(log: &Result<String, String>) -> &str {
    match log {
        Ok(text) if text.is_empty() => "(empty log)",
        Ok(text) | Err(text) => text,
    }
}

/// Deletes the probe pods and notes any that could not be deleted in the detail.
pub(super) async fn cleanup(
    api: &Api<Pod>,
    names: &[String],
    outcome: Result<String, String>,
) -> Result<String, String> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    let mut leftovers = Vec::new();
    for name in names {
        match api.delete(name, &params).await {
            Ok(_) => {}
            Err(err) if api_code(&err) == Some(404) => {}
            Err(err) => leftovers.push(format!("could not delete pod {name}: {}", describe(&err))),
        }
    }
    if leftovers.is_empty() {
        return outcome;
    }
    let note = format!("; cleanup: {}", leftovers.join("; "));
    match outcome {
        Ok(detail) => Ok(detail + &note),
        Err(detail) => Err(detail + &note),
    }
}
