//! Two replicas, one Lease: the leader is cut off from the API in the middle of an operation.

use std::{sync::Arc, time::Duration};

use crate::common::*;

// On the real server too: the fake's partition cuts replica A off what its routed client sends
// to the fake (the Lease, Secrets, Events), while its Clusters and Nodes on the real server
// stay reachable. A must stop all the same, since it no longer holds the Lease.
on_both!(leader_loss_mid_operation_stops_it_and_the_new_leader_resumes_it);

async fn leader_loss_mid_operation_stops_it_and_the_new_leader_resumes_it(backend: Backend) {
    let bed = Bed::on(
        backend,
        fake(true, "Orphan"),
        false,
        Arc::new(|_, _| Vec::new()),
    )
    .await;
    let fake = &bed;
    let lease = Duration::from_millis(1200);
    let (_stop_a, _a, _) = bed.start("replica-a", lease).await;
    // A leads alone first, so the operation is certainly its.
    bed.calls_until("replica-a starts an operation", |calls| {
        calls.iter().any(|c| c.replica == "replica-a").then_some(())
    })
    .await;
    let (_stop_b, _b, _) = bed.start("replica-b", lease).await;
    eventually(fake, "A's operation is halfway", |f| {
        (node_of(f, "gpu-1")["status"]["currentStep"] == "container-runtime / stand-in task")
            .then_some(())
    })
    .await;
    // Cut A off: its next renewal fails and it must stop at once, mid-operation.
    fake.partition("replica-a");
    let a_stopped = bed
        .calls_until("replica-a stops its operation", |calls| {
            calls
                .iter()
                .find(|c| c.replica == "replica-a" && c.ended.is_some())
                .cloned()
        })
        .await;
    assert!(
        a_stopped.cancelled,
        "A finished an operation it no longer had the Lease for"
    );
    // Let B's run go through once it starts.
    bed.gate.send(true).unwrap();
    eventually(fake, "Ready under replica-b", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    let calls = bed.calls();
    let b = calls
        .iter()
        .find(|c| c.replica == "replica-b")
        .expect("B ran the operation");
    assert_eq!(
        b.resume_from,
        Some(a_stopped.operation),
        "B resumed A's interrupted operation: {calls:#?}"
    );
    // Never two at once: every pair of runs is disjoint in time.
    for (i, x) in calls.iter().enumerate() {
        for y in &calls[i + 1..] {
            let (xe, ye) = (x.ended.expect("ended"), y.ended.expect("ended"));
            assert!(
                xe <= y.started || ye <= x.started,
                "runs overlap: {x:#?} {y:#?}"
            );
        }
    }
    let lease_obj = fake
        .get_object(
            "coordination.k8s.io/v1",
            "Lease",
            "kubegrid-system",
            "kubegrid-operator",
        )
        .unwrap();
    assert_eq!(lease_obj["spec"]["holderIdentity"], "replica-b");
}
