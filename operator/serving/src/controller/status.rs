//! The LLMService's status: what its workloads hold, written only when it changed, with
//! JSON merge patches on `/status` so a concurrent spec edit is never overwritten.

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use kubegrid_api::{Condition, conditions};
use serde_json::json;

use super::replicas::Observed;
use crate::{
    LLMService, LlmServiceStatus,
    error::{Error, Result},
    names,
};

/// Condition type: every replica the spec asks for answers `/health`.
pub const READY: &str = "Ready";
/// Condition type: replicas are being added or drained and removed.
pub const SCALING: &str = "Scaling";
/// Condition type: the KEDA ScaledObject exists (only when the spec asks for KEDA).
pub const AUTOSCALING: &str = "Autoscaling";

const ORDER: &[&str] = &[READY, SCALING, AUTOSCALING];

/// The phase for `observed` against `desired` replicas.
pub(crate) fn phase(desired: i32, observed: &Observed) -> &'static str {
    if desired == 0 && observed.replicas == 0 {
        "Idle"
    } else if observed.ready == 0 {
        "Pending"
    } else if observed.ready >= desired {
        "Serving"
    } else {
        "Degraded"
    }
}

/// Writes what `observed` shows, with the `Autoscaling` condition when given; returns
/// whether anything changed.
pub(crate) async fn write(
    api: &Api<LLMService>,
    svc: &LLMService,
    observed: &Observed,
    autoscaling: Option<(bool, String, String)>,
) -> Result<bool> {
    let desired = svc.spec.replicas;
    let generation = svc.metadata.generation;
    let ready = if desired == 0 {
        Condition::new(
            READY,
            false,
            "ScaledToZero",
            "spec.replicas is 0",
            generation,
        )
    } else {
        Condition::new(
            READY,
            observed.ready >= desired,
            if observed.ready >= desired {
                "AllReplicasReady"
            } else {
                "ReplicasNotReady"
            },
            &format!("{} of {desired} replicas ready", observed.ready),
            generation,
        )
    };
    let scaling = match &observed.draining {
        Some(replica) => Condition::new(
            SCALING,
            true,
            "Draining",
            &format!("draining replica {replica} before removing it"),
            generation,
        ),
        None if observed.replicas < desired => Condition::new(
            SCALING,
            true,
            "ScalingUp",
            &format!("{} of {desired} replicas exist", observed.replicas),
            generation,
        ),
        None if observed.replicas > desired => Condition::new(
            SCALING,
            true,
            "ScalingDown",
            &format!("{} replicas exist, {desired} wanted", observed.replicas),
            generation,
        ),
        None => Condition::new(
            SCALING,
            false,
            "Stable",
            &format!("{desired} replicas"),
            generation,
        ),
    };
    let mut new = vec![ready, scaling];
    if let Some((ok, reason, message)) = autoscaling {
        new.push(Condition::new(
            AUTOSCALING,
            ok,
            &reason,
            &message,
            generation,
        ));
    }
    let name = svc.name_any();
    let endpoint = format!(
        "http://{name}.{}.svc:{}",
        svc.namespace().unwrap_or_default(),
        svc.spec.engine.port
    );
    patch(api, svc, new, |s| {
        s.replicas = observed.replicas;
        s.ready_replicas = observed.ready;
        s.selector = names::selector(&name);
        s.phase = Some(phase(desired, observed).into());
        s.observed_generation = generation;
        s.endpoint = Some(endpoint);
    })
    .await
}

/// Writes a refused spec: phase `Failed` and `Ready` false with every problem; returns
/// whether anything changed (so the Event is published once, not on every pass).
pub(crate) async fn refused(
    api: &Api<LLMService>,
    svc: &LLMService,
    message: &str,
) -> Result<bool> {
    let generation = svc.metadata.generation;
    patch(
        api,
        svc,
        vec![Condition::new(
            READY,
            false,
            "InvalidSpec",
            message,
            generation,
        )],
        |s| {
            s.phase = Some("Failed".into());
            s.observed_generation = generation;
        },
    )
    .await
}

/// The status fields this controller writes; the node cache writes the others.
const OWNED: &[&str] = &[
    "replicas",
    "readyReplicas",
    "selector",
    "phase",
    "observedGeneration",
    "endpoint",
    "conditions",
];

/// Merges `conditions` into `svc`'s status, lets `set` change the other owned fields, and
/// patches those fields when the result differs from what the status holds (transition
/// times aside).
async fn patch(
    api: &Api<LLMService>,
    svc: &LLMService,
    conditions: Vec<Condition>,
    set: impl FnOnce(&mut LlmServiceStatus),
) -> Result<bool> {
    let old = svc.status.clone().unwrap_or_default();
    let mut next = old.clone();
    next.conditions = conditions::merge(&old.conditions, conditions, &conditions::now(), ORDER);
    set(&mut next);
    if next == old {
        return Ok(false);
    }
    let full = serde_json::to_value(&next).unwrap_or_default();
    let fields: serde_json::Map<String, serde_json::Value> = OWNED
        .iter()
        .map(|k| {
            (
                (*k).to_string(),
                full.get(*k).cloned().unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    api.patch_status(
        &svc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": fields})),
    )
    .await
    .map(|_| true)
    .map_err(|source| Error::PatchStatus {
        name: svc.name_any(),
        source,
    })
}
