//! `spec.serving` through the API: the engine's apply of the serving layer and its health
//! check, against kubegrid-fake-apiserver (a TEST STAND-IN for kube-apiserver; nothing runs
//! pods here, so the test writes the Deployment's, DaemonSet's and CRDs' status itself, as
//! kube-controller-manager and the apiextensions server would).

use std::time::Duration;

use kubegrid_engine::kubernetes::serving::{SERVING_LAYER, SERVING_READY, deploy, ready};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_plan::{ImageRef, ServingContext};
use serde_json::{Value, json};

const NS: &str = "llm-serving";

fn ctx(pod_monitors: bool) -> ServingContext {
    ServingContext {
        namespace: NS.into(),
        cache_capacity: Some("1Ti".into()),
        pod_monitors,
        image: ImageRef::new(
            "ghcr.io/kubegrid/kubegrid",
            "0.1.0",
            &format!("sha256:{}", "c".repeat(64)),
        )
        .unwrap(),
    }
}

fn pinned() -> String {
    format!("ghcr.io/kubegrid/kubegrid@sha256:{}", "c".repeat(64))
}

fn token(fake: &FakeCluster) -> String {
    let secret = fake
        .get_object("v1", "Secret", NS, "kubegrid-model-cache-token")
        .expect("the token Secret");
    secret["stringData"]["token"]
        .as_str()
        .or_else(|| secret["data"]["token"].as_str())
        .expect("a token")
        .to_owned()
}

/// What kube-controller-manager and the apiextensions server would write once the pods run.
fn roll_out(fake: &FakeCluster, cache_ready: i64) {
    for name in [
        "llmservices.serving.kubegrid.io",
        "modelprewarms.serving.kubegrid.io",
    ] {
        let mut crd = fake
            .get_object(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "",
                name,
            )
            .expect("CRD applied");
        crd["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        fake.put(crd);
    }
    let mut d = fake
        .get_object("apps/v1", "Deployment", NS, "kubegrid-serving-controller")
        .expect("controller applied");
    d["status"] = json!({"observedGeneration": d["metadata"]["generation"], "availableReplicas": 2, "replicas": 2});
    fake.put(d);
    let mut ds = fake
        .get_object("apps/v1", "DaemonSet", NS, "kubegrid-model-cache")
        .expect("cache applied");
    ds["status"] = json!({
        "observedGeneration": ds["metadata"]["generation"],
        "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberMisscheduled": 0,
        "numberReady": cache_ready, "updatedNumberScheduled": 3,
    });
    fake.put(ds);
}

#[tokio::test]
async fn the_layer_is_applied_pinned_and_a_rerun_keeps_the_token() {
    let fake = FakeCluster::new();
    let client = fake.client();
    let first = deploy(&client, &ctx(false)).await;
    assert_eq!(first.name, SERVING_LAYER);
    assert!(first.ok, "{}", first.detail);
    assert!(
        first.detail.contains("cache token Secret created"),
        "{}",
        first.detail
    );
    assert!(first.detail.contains(&pinned()), "{}", first.detail);
    assert!(fake.state().namespaces.contains(NS));
    let ds = fake
        .get_object("apps/v1", "DaemonSet", NS, "kubegrid-model-cache")
        .unwrap();
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], pinned().as_str());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--capacity=1Ti"), "{args:?}");
    let d = fake
        .get_object("apps/v1", "Deployment", NS, "kubegrid-serving-controller")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        pinned().as_str()
    );
    let token_before = token(&fake);
    assert_eq!(token_before.len(), 64);

    let again = deploy(&client, &ctx(false)).await;
    assert!(again.ok, "{}", again.detail);
    assert!(
        again.detail.contains("cache token Secret kept"),
        "{}",
        again.detail
    );
    assert_eq!(
        token(&fake),
        token_before,
        "a re-run must not rotate the token"
    );
}

#[tokio::test]
async fn a_failed_apply_names_the_object_and_what_went_before() {
    let fake = FakeCluster::new();
    fake.fail_next(
        "PATCH",
        "/apis/monitoring.coreos.com/v1/namespaces/llm-serving/podmonitors",
        404,
        1,
    );
    let got = deploy(&fake.client(), &ctx(true)).await;
    assert!(!got.ok);
    assert!(
        got.detail
            .contains("PodMonitor llm-serving/kubegrid-model-cache"),
        "{}",
        got.detail
    );
    assert!(
        got.detail
            .contains("expected the Prometheus Operator's CRDs"),
        "{}",
        got.detail
    );
    assert!(got.detail.starts_with("applied "), "{}", got.detail);
}

#[tokio::test]
async fn ready_waits_for_the_controller_and_every_gpu_node() {
    let fake = FakeCluster::new();
    let client = fake.client();
    assert!(deploy(&client, &ctx(false)).await.ok);

    // Nothing rolled out: one look, then the verdict says what is missing.
    let early = ready(&client, &ctx(false), Duration::ZERO, Duration::ZERO).await;
    assert_eq!(early.name, SERVING_READY);
    assert!(!early.ok);
    assert!(
        early.detail.contains("CRDs not established"),
        "{}",
        early.detail
    );
    assert!(
        early.detail.contains("not rolled out yet"),
        "{}",
        early.detail
    );

    roll_out(&fake, 2);
    let partial = ready(&client, &ctx(false), Duration::ZERO, Duration::ZERO).await;
    assert!(!partial.ok);
    assert!(
        partial.detail.contains("ready on 2 of 3 GPU Nodes"),
        "{}",
        partial.detail
    );

    // The last Node's cache becomes ready while the check waits: only after it has looked
    // and found it not ready.
    const LOOK: &str = "GET /apis/apps/v1/namespaces/llm-serving/daemonsets/kubegrid-model-cache";
    let looks = fake.requests_matching(LOOK).len();
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move {
            ready(
                &client,
                &ctx(false),
                Duration::from_secs(120),
                Duration::from_millis(20),
            )
            .await
        })
    };
    while fake.requests_matching(LOOK).len() == looks {
        tokio::task::yield_now().await;
    }
    roll_out(&fake, 3);
    let done = waiting.await.unwrap();
    assert!(done.ok, "{}", done.detail);
    assert!(
        done.detail.contains("2 of 2 replicas available")
            && done.detail.contains("ready on 3 of 3 GPU Nodes"),
        "{}",
        done.detail
    );
}
