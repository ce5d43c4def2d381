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
        keda: None,
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

/// A rendered KEDA chart in a bundle, as `kubegrid bundle build` stores it: a fixture shaped
/// like `helm template` output (not KEDA's own files), with its two images pinned.
fn keda_bundle(dir: &std::path::Path) -> kubegrid_plan::Bundle {
    use sha2::Digest as _;
    let rendered = "\
# Source: keda/templates/crds/crd-scaledobjects.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: scaledobjects.keda.sh}
spec:
  group: keda.sh
  names: {kind: ScaledObject, plural: scaledobjects}
  scope: Namespaced
  versions: [{name: v1alpha1, served: true, storage: true}]
---
# Source: keda/templates/manager/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: keda-operator, namespace: keda}
spec:
  replicas: 1
  template:
    spec:
      containers: [{name: keda-operator, image: ghcr.io/kedacore/keda:2.19.0}]
---
# Source: keda/templates/metrics-server/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: keda-operator-metrics-apiserver, namespace: keda}
spec:
  template:
    spec:
      containers:
        - {name: keda-operator-metrics-apiserver, image: ghcr.io/kedacore/keda-metrics-apiserver:2.19.0}
---
# Source: keda/templates/metrics-server/apiservice.yaml
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec: {service: {name: keda-operator-metrics-apiserver, namespace: keda}}
";
    let path = "kedacore.github.io/charts/keda-2.19.0.yaml";
    std::fs::create_dir_all(dir.join("kedacore.github.io/charts")).unwrap();
    std::fs::write(dir.join(path), rendered).unwrap();
    let image = |name: &str, c: char| {
        format!(
            "  - {{name: {name}, tag: 2.19.0, digest: 'sha256:{}', arches: [amd64], component: keda}}\n",
            c.to_string().repeat(64)
        )
    };
    let manifest = format!(
        "version: 2\nfiles:\n  - {{path: {path}, sha256: {}, size: {}, arch: all, kind: manifests, name: keda, version: 2.19.0, component: keda}}\nimages:\n{}{}",
        hex::encode(sha2::Sha256::digest(rendered.as_bytes())),
        rendered.len(),
        image("ghcr.io/kedacore/keda", 'd'),
        image("ghcr.io/kedacore/keda-metrics-apiserver", 'e'),
    );
    std::fs::write(dir.join("manifest.yaml"), manifest).unwrap();
    kubegrid_plan::Bundle::open(dir).unwrap()
}

#[tokio::test]
async fn keda_is_applied_from_the_bundle_pinned_and_counts_toward_ready() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = keda_bundle(dir.path());
    let ctx = ServingContext {
        keda: Some(kubegrid_plan::KedaContext::from_bundle(&bundle, true).unwrap()),
        ..ctx(false)
    };
    let fake = FakeCluster::new();
    let client = fake.client();
    let applied = deploy(&client, &ctx).await;
    assert!(applied.ok, "{}", applied.detail);
    assert!(
        applied
            .detail
            .contains("KEDA 2.19.0 into namespace keda, 5 objects"),
        "{}",
        applied.detail
    );
    assert!(fake.state().namespaces.contains("keda"));
    let operator = fake
        .get_object("apps/v1", "Deployment", "keda", "keda-operator")
        .expect("KEDA's operator applied");
    assert_eq!(
        operator["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/kedacore/keda@sha256:{}", "d".repeat(64)).as_str()
    );
    assert!(
        fake.get_object(
            "apiregistration.k8s.io/v1",
            "APIService",
            "",
            "v1beta1.external.metrics.k8s.io"
        )
        .is_some()
    );

    // The layer itself rolled out, KEDA not yet: not ready, and the report says why.
    roll_out(&fake, 3);
    let waiting = ready(&client, &ctx, Duration::ZERO, Duration::ZERO).await;
    assert!(!waiting.ok);
    for part in [
        "KEDA 2.19.0:",
        "CRD scaledobjects.keda.sh not established",
        "Deployment keda/keda-operator not rolled out yet",
        "APIService v1beta1.external.metrics.k8s.io not Available",
        "and KEDA available",
        "for KEDA, kubectl -n keda get pods,events",
    ] {
        assert!(waiting.detail.contains(part), "{part}: {}", waiting.detail);
    }

    // What kube-controller-manager, the apiextensions server and the aggregator would write.
    let mut crd = fake
        .get_object(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "scaledobjects.keda.sh",
        )
        .unwrap();
    crd["status"] = serde_json::json!({"conditions": [{"type": "Established", "status": "True"}]});
    fake.put(crd);
    for name in ["keda-operator", "keda-operator-metrics-apiserver"] {
        let mut d = fake
            .get_object("apps/v1", "Deployment", "keda", name)
            .unwrap();
        d["status"] = serde_json::json!({"observedGeneration": d["metadata"]["generation"], "availableReplicas": 1});
        fake.put(d);
    }
    let half = ready(&client, &ctx, Duration::ZERO, Duration::ZERO).await;
    assert!(!half.ok, "{}", half.detail);
    assert!(
        half.detail
            .contains("KEDA 2.19.0: APIService v1beta1.external.metrics.k8s.io not Available"),
        "{}",
        half.detail
    );
    let mut api = fake
        .get_object(
            "apiregistration.k8s.io/v1",
            "APIService",
            "",
            "v1beta1.external.metrics.k8s.io",
        )
        .unwrap();
    api["status"] = serde_json::json!({"conditions": [{"type": "Available", "status": "True"}]});
    fake.put(api);
    let done = ready(&client, &ctx, Duration::ZERO, Duration::ZERO).await;
    assert!(done.ok, "{}", done.detail);
    assert!(
        done.detail.contains(
            "KEDA 2.19.0 in namespace keda: 2 Deployments available, APIService v1beta1.external.metrics.k8s.io Available"
        ),
        "{}",
        done.detail
    );
    let status =
        kubegrid_engine::kubernetes::serving::status(Some(&ctx), &[applied, done]).unwrap();
    assert_eq!(status.keda.as_deref(), Some("2.19.0"));
    assert!(status.deployed && status.ready);
}
