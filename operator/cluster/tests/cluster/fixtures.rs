//! A healthy three-node cluster and the spec that describes it.

use std::time::Duration;

use kubegrid_cluster::{CONTROL_PLANE_LABEL, CheckOptions, ExpectedNode, WORKER_LABEL};

use crate::fake::{FakeCluster, node, system_pod};

/// cp1 (tainted control plane), w1 (GPU worker, tainted), w2 (worker), all Ready,
/// with running kube-system pods and pods that behave like busybox would.
pub fn healthy() -> FakeCluster {
    let fake = FakeCluster::new();
    fake.add_node(node(
        "cp1",
        true,
        &[(CONTROL_PLANE_LABEL, ""), ("kubernetes.io/os", "linux")],
        &[(CONTROL_PLANE_LABEL, None, "NoSchedule")],
    ))
    .add_node(node(
        "w1",
        true,
        &[(WORKER_LABEL, ""), ("gpu", "a100")],
        &[("nvidia.com/gpu", Some("present"), "NoSchedule")],
    ))
    .add_node(node("w2", true, &[(WORKER_LABEL, "")], &[]));
    for (name, node) in [
        ("kube-apiserver-cp1", "cp1"),
        ("etcd-cp1", "cp1"),
        ("coredns-5d78c9869d-a1", "w1"),
        ("coredns-5d78c9869d-b2", "w2"),
        ("kube-proxy-x1", "w1"),
    ] {
        fake.add_pod(system_pod(name, node, true));
    }
    fake.busybox_rules("cluster.local");
    fake
}

/// The spec's view of [`healthy`], plus an etcd-only host that is no Node.
pub fn expected() -> Vec<ExpectedNode> {
    vec![
        ExpectedNode {
            name: "cp1".into(),
            roles: vec!["control-plane".into()],
            taints: vec![(CONTROL_PLANE_LABEL.into(), None, "NoSchedule".into())],
            ..ExpectedNode::default()
        },
        ExpectedNode {
            name: "w1".into(),
            roles: vec!["worker".into()],
            labels: [("gpu".to_owned(), "a100".to_owned())].into(),
            taints: vec![(
                "nvidia.com/gpu".into(),
                Some("present".into()),
                "NoSchedule".into(),
            )],
            ..ExpectedNode::default()
        },
        ExpectedNode {
            name: "w2".into(),
            roles: vec!["worker".into()],
            ..ExpectedNode::default()
        },
        ExpectedNode {
            name: "etcd1".into(),
            roles: vec!["etcd".into()],
            ..ExpectedNode::default()
        },
    ]
}

/// Deadlines long enough that a loaded machine never fails a check that
/// should pass (those stop as soon as the condition holds); tests of a
/// failing check shorten that check's deadline with [`SHORT`].
pub fn options() -> CheckOptions {
    let long = Duration::from_secs(20);
    CheckOptions {
        readyz_timeout: long,
        nodes_timeout: long,
        system_pods_timeout: long,
        pod_timeout: long,
        poll_interval: Duration::from_millis(1),
        ..CheckOptions::default()
    }
}

/// The deadline for checks a test expects to fail.
pub const SHORT: Duration = Duration::from_millis(100);
