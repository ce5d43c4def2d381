//! Drain and node removal against the fake, PodDisruptionBudget refusals included.

use std::time::Duration;

use kubegrid_cluster::{
    DrainOptions, DrainReport, Error, RemovalOutcome, delete_node, drain, remove_node,
};

use crate::fake::{FakeCluster, node, owned_pod};

/// w1 runs two evictable pods, a DaemonSet pod and a mirror pod; w2 runs one pod.
fn cluster() -> FakeCluster {
    let fake = FakeCluster::new();
    fake.add_node(node("w1", true, &[], &[]))
        .add_node(node("w2", true, &[], &[]));
    fake.add_pod(owned_pod("default", "web-1", "w1", Some("ReplicaSet")))
        .add_pod(owned_pod("batch", "job-1", "w1", Some("Job")))
        .add_pod(owned_pod(
            "kube-system",
            "kube-proxy-w1",
            "w1",
            Some("DaemonSet"),
        ))
        .add_pod(owned_pod("kube-system", "static-w1", "w1", None))
        .add_pod(owned_pod("default", "web-2", "w2", Some("ReplicaSet")));
    fake
}

/// A drain that should succeed gets a generous deadline (it ends as soon as
/// the pods are gone); tests of a blocked drain shorten it with [`blocked`].
fn options() -> DrainOptions {
    DrainOptions {
        timeout: Duration::from_secs(20),
        grace_period: Some(Duration::from_secs(30)),
        force: false,
        poll_interval: Duration::from_millis(1),
    }
}

fn blocked(opts: DrainOptions) -> DrainOptions {
    DrainOptions {
        timeout: Duration::from_millis(100),
        ..opts
    }
}

fn remaining_pods(fake: &FakeCluster) -> Vec<String> {
    fake.state()
        .pods
        .keys()
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect()
}

#[tokio::test]
async fn drained_node_is_deleted_keeping_daemonset_and_mirror_pods() {
    let fake = cluster();
    let outcome = remove_node(&fake.client(), "w1", &options())
        .await
        .expect("remove w1");

    assert_eq!(
        outcome,
        RemovalOutcome::Removed(DrainReport {
            node: "w1".into(),
            evicted: vec!["batch/job-1".into(), "default/web-1".into()],
            skipped: vec![
                "kube-system/kube-proxy-w1".into(),
                "kube-system/static-w1".into()
            ],
        })
    );
    assert!(!fake.state().nodes.contains_key("w1"));
    assert_eq!(
        remaining_pods(&fake),
        [
            "default/web-2",
            "kube-system/kube-proxy-w1",
            "kube-system/static-w1"
        ]
    );
    let evictions = fake.state().evictions.clone();
    assert_eq!(evictions.len(), 2);
    for (_, body) in &evictions {
        assert_eq!(body["deleteOptions"]["gracePeriodSeconds"], 30, "{body}");
    }
    // Cordon first, so nothing is scheduled back while pods are evicted.
    let writes: Vec<String> = fake
        .state()
        .requests
        .iter()
        .filter(|r| !r.starts_with("GET"))
        .cloned()
        .collect();
    assert_eq!(
        writes,
        [
            "PATCH /api/v1/nodes/w1?&fieldManager=kubegrid",
            "POST /api/v1/namespaces/batch/pods/job-1/eviction?",
            "POST /api/v1/namespaces/default/pods/web-1/eviction?",
            "DELETE /api/v1/nodes/w1?",
        ]
    );
}

#[tokio::test]
async fn pdb_blocked_drain_fails_and_the_node_is_not_deleted() {
    let fake = cluster();
    fake.state()
        .eviction_blocks
        .insert("default/web-1".into(), None);
    let err = remove_node(&fake.client(), "w1", &blocked(options()))
        .await
        .expect_err("drain must fail");

    let Error::DrainFailed { node, pods, reason } = &err else {
        panic!("wrong error: {err:?}")
    };
    assert_eq!(node, "w1");
    assert_eq!(pods, &["default/web-1"]);
    assert!(
        reason.contains("eviction of default/web-1 refused: 429 TooManyRequests: Cannot evict pod"),
        "{reason}"
    );
    assert!(reason.ends_with("(gave up after 100ms)"), "{reason}");
    assert!(
        err.to_string()
            .starts_with("failed to drain node w1: 1 pod(s) remain (default/web-1): "),
        "{err}"
    );

    let state = fake.state();
    assert_eq!(
        state.nodes["w1"]["spec"]["unschedulable"], true,
        "the node stays cordoned"
    );
    assert!(
        state
            .requests
            .iter()
            .all(|r| !r.starts_with("DELETE /api/v1/nodes")),
        "{:?}",
        state.requests
    );
    assert!(
        state
            .requests
            .iter()
            .filter(|r| r.contains("web-1/eviction"))
            .count()
            > 1,
        "429 is retried"
    );
}

#[tokio::test]
async fn forced_removal_deletes_the_node_despite_a_failed_drain() {
    let fake = cluster();
    fake.state()
        .eviction_blocks
        .insert("default/web-1".into(), None);
    let opts = blocked(DrainOptions {
        force: true,
        ..options()
    });
    let outcome = remove_node(&fake.client(), "w1", &opts)
        .await
        .expect("forced removal");

    let RemovalOutcome::ForcedAfterFailedDrain { node, pods, reason } = outcome else {
        panic!("wrong outcome: {outcome:?}")
    };
    assert_eq!(
        (node.as_str(), pods.as_slice()),
        ("w1", ["default/web-1".to_owned()].as_slice())
    );
    assert!(reason.contains("disruption budget"), "{reason}");
    assert!(!fake.state().nodes.contains_key("w1"));
}

#[tokio::test]
async fn eviction_refused_for_a_while_is_retried_until_it_succeeds() {
    let fake = cluster();
    fake.state()
        .eviction_blocks
        .insert("default/web-1".into(), Some(2));
    let report = drain(&fake.client(), "w1", &options())
        .await
        .expect("drain");

    assert_eq!(report.evicted, ["batch/job-1", "default/web-1"]);
    assert_eq!(
        fake.requests_matching("POST /api/v1/namespaces/default/pods/web-1/eviction")
            .len(),
        3
    );
    assert!(
        fake.state().nodes.contains_key("w1"),
        "drain alone does not delete"
    );
}

#[tokio::test]
async fn eviction_error_other_than_a_budget_fails_at_once() {
    let fake = cluster();
    fake.state().eviction_errors.insert("batch/job-1".into());
    let err = drain(&fake.client(), "w1", &options())
        .await
        .expect_err("drain must fail");

    let Error::DrainFailed { pods, reason, .. } = &err else {
        panic!("wrong error: {err:?}")
    };
    assert_eq!(
        pods,
        &["batch/job-1", "default/web-1"],
        "the pod not yet tried remains too"
    );
    assert!(
        reason.starts_with(
            "eviction of batch/job-1 failed: 500 InternalError: This pod has more than one"
        ),
        "{reason}"
    );
    assert_eq!(
        fake.requests_matching("POST").len(),
        1,
        "no retry, no further evictions"
    );
}

#[tokio::test]
async fn removing_an_absent_node_does_nothing() {
    let fake = cluster();
    let outcome = remove_node(&fake.client(), "gone", &options())
        .await
        .expect("remove");

    assert_eq!(
        outcome,
        RemovalOutcome::AlreadyAbsent {
            node: "gone".into()
        }
    );
    assert_eq!(
        fake.requests_matching("GET").len(),
        fake.state().requests.len(),
        "reads only"
    );
}

#[tokio::test]
async fn deleting_a_node_twice_succeeds() {
    let fake = cluster();
    let client = fake.client();
    delete_node(&client, "w2").await.expect("first delete");
    delete_node(&client, "w2").await.expect("second delete");

    assert!(!fake.state().nodes.contains_key("w2"));
}
