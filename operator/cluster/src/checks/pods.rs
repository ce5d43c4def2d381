//! `system-pods`: everything in kube-system runs.

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};

use super::{CheckOptions, CheckResult, SYSTEM_PODS, timed};
use crate::{
    error::describe,
    poll::{Attempt, poll_until},
};

/// Checks that every kube-system pod is Running with all containers ready (or
/// has Succeeded), waiting up to [`CheckOptions::system_pods_timeout`].
pub async fn check_system_pods(client: &Client, opts: &CheckOptions) -> CheckResult {
    timed(SYSTEM_PODS, async {
        let api: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
        let outcome = poll_until(opts.system_pods_timeout, opts.poll_interval, || {
            let api = api.clone();
            async move {
                let pods = match api.list(&ListParams::default()).await {
                    Ok(list) => list.items,
                    Err(err) => {
                        return Attempt::Retry(format!(
                            "could not list kube-system pods: {}",
                            describe(&err)
                        ));
                    }
                };
                if pods.is_empty() {
                    return Attempt::Retry(
                        "no pods in kube-system, expected the control-plane and DNS pods".into(),
                    );
                }
                let problems: Vec<String> = pods.iter().filter_map(pod_problem).collect();
                if problems.is_empty() {
                    Attempt::Done(pods.len())
                } else {
                    Attempt::Retry(problems.join("; "))
                }
            }
        })
        .await;
        match outcome {
            Ok(count) => Ok(format!("{count} kube-system pod(s) Running and ready")),
            Err(last) => Err(format!(
                "after {:?}, pods not running: {last}",
                opts.system_pods_timeout
            )),
        }
    })
    .await
}

/// Why a system pod does not count as running, or None when it does.
fn pod_problem(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("<unnamed>");
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    // A pod on its way out, or one the kubelet evicted (its controller has replaced it), says
    // nothing about the system's health now; counting it would fail every later apply.
    let evicted = status.and_then(|s| s.reason.as_deref()) == Some("Evicted");
    if pod.metadata.deletion_timestamp.is_some() || (phase == "Failed" && evicted) {
        return None;
    }
    match phase {
        "Succeeded" => None,
        "Running" => {
            let statuses = status
                .and_then(|s| s.container_statuses.as_deref())
                .unwrap_or(&[]);
            let containers = pod
                .spec
                .as_ref()
                .map(|spec| spec.containers.as_slice())
                .unwrap_or(&[]);
            let not_ready: Vec<String> = containers
                .iter()
                .filter_map(
                    |container| match statuses.iter().find(|s| s.name == container.name) {
                        Some(s) if s.ready => None,
                        Some(s) => {
                            let waiting = s
                                .state
                                .as_ref()
                                .and_then(|state| state.waiting.as_ref())
                                .and_then(|w| w.reason.as_deref());
                            Some(match waiting {
                                Some(reason) => format!("{} ({reason})", container.name),
                                None => container.name.clone(),
                            })
                        }
                        None => Some(format!("{} (no status)", container.name)),
                    },
                )
                .collect();
            (!not_ready.is_empty()).then(|| {
                format!(
                    "{name}: Running but containers not ready: {}, expected all ready",
                    not_ready.join(", ")
                )
            })
        }
        other => {
            let reason = status
                .and_then(|s| s.reason.as_deref())
                .map(|r| format!(" ({r})"));
            Some(format!(
                "{name}: phase {other}{}, expected Running",
                reason.unwrap_or_default()
            ))
        }
    }
}
