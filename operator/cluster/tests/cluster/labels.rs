//! Labelling Nodes with their roles and the user's labels.

use kubegrid_cluster::{CheckOptions, Error, WORKER_LABEL, check_nodes_ready, label_nodes};

use crate::{
    fake::{FakeCluster, node},
    fixtures::{SHORT, expected, healthy, options},
};

#[tokio::test]
async fn label_nodes_sets_worker_role_and_user_labels_idempotently() {
    let fake = healthy();
    // As the kubelet registers them: no worker role label, no user labels.
    fake.add_node(node(
        "w1",
        true,
        &[],
        &[("nvidia.com/gpu", Some("present"), "NoSchedule")],
    ));
    fake.add_node(node("w2", true, &[], &[]));
    let client = fake.client();
    assert!(
        !check_nodes_ready(
            &client,
            &CheckOptions {
                nodes_timeout: SHORT,
                ..options()
            },
            &expected()
        )
        .await
        .ok
    );

    label_nodes(&client, &expected())
        .await
        .expect("label nodes");
    label_nodes(&client, &expected())
        .await
        .expect("label nodes again");

    let labels = |name: &str| fake.state().nodes[name]["metadata"]["labels"].clone();
    assert_eq!(
        labels("w1"),
        serde_json::json!({ WORKER_LABEL: "", "gpu": "a100" })
    );
    assert_eq!(labels("w2"), serde_json::json!({ WORKER_LABEL: "" }));
    // cp1 has no labels to add and etcd1 is no Node: neither is patched.
    assert_eq!(
        fake.requests_matching("PATCH").len(),
        4,
        "{:?}",
        fake.requests_matching("PATCH")
    );
    let result = check_nodes_ready(&client, &options(), &expected()).await;
    assert!(result.ok, "{result:#?}");
}

#[tokio::test]
async fn label_nodes_names_a_node_that_has_not_joined() {
    let fake = FakeCluster::new();
    let err = label_nodes(&fake.client(), &expected()[1..2])
        .await
        .expect_err("w1 is missing");

    assert!(
        matches!(&err, Error::LabelNode { node, .. } if node == "w1"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "failed to label node w1 with gpu=a100,node-role.kubernetes.io/worker=; \
         hint: the node must have joined the cluster (kubectl get node w1)"
    );
}
