//! The CRD on a REAL API server (k8s.io/apiextensions-apiserver on etcd, the test-only
//! harness in e2e/real-apiserver): it becomes Established, each example gets the same
//! verdict as the code gives it, field by field, and the scale subresource works with its
//! selector as `kubectl scale`, HPA and KEDA use it. SKIPPED outside CI without the build.

use std::collections::BTreeSet;

use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use kubegrid_real_apiserver::RealApiServer;
use kubegrid_serving::LLMService;
use serde_json::json;

use crate::examples::specs;

const NS: &str = "serving";

async fn server(test: &str) -> Option<RealApiServer> {
    let server = RealApiServer::for_test(test).await?;
    server.apply_crds(&[kubegrid_serving::crd()]).await.unwrap();
    Some(server)
}

fn object(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "serving.kubegrid.io/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
}

#[tokio::test]
async fn the_server_refuses_each_bad_example_at_the_field_the_code_names() {
    let Some(server) = server("the_server_refuses_each_bad_example").await else {
        return;
    };
    let api: Api<LLMService> = Api::namespaced(server.client(), NS);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for (i, (name, spec, field)) in specs().into_iter().enumerate() {
        // Built from JSON so the server sees exactly the example, defaults not yet applied.
        let obj: LLMService = match serde_json::from_value(object(&format!("ex-{i}"), spec.clone()))
        {
            Ok(o) => o,
            Err(e) => panic!("{name}: {e}"),
        };
        let answer = api.create(&dry, &obj).await;
        match (answer, field) {
            (Ok(_), None) => {}
            (Ok(_), Some(f)) => panic!("{name}: accepted, but {f} should be refused"),
            (Err(kube::Error::Api(status)), Some(f)) if status.code == 422 => {
                // The scale subresource adds its own check of spec.replicas, which it names
                // `.spec.replicas`; one field either way.
                let causes: BTreeSet<&str> = status
                    .details
                    .iter()
                    .flat_map(|d| d.causes.iter())
                    .map(|c| c.field.trim_start_matches('.'))
                    .collect();
                assert_eq!(causes, BTreeSet::from([f]), "{name}: {}", status.message);
            }
            (Err(e), _) => panic!("{name}: {e:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn kubectl_scale_hpa_and_keda_drive_replicas_through_the_scale_subresource() {
    let Some(server) = server("kubectl_scale_hpa_and_keda_drive_replicas").await else {
        return;
    };
    let api: Api<LLMService> = Api::namespaced(server.client(), NS);
    let obj: LLMService = serde_json::from_value(object("llama", crate::examples::base())).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    // The controller publishes its pods' selector in status; the scale subresource reads it.
    api.patch_status(
        "llama",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 2, "selector": "serving.kubegrid.io/service=llama"}})),
    )
    .await
    .unwrap();
    let scale = api.get_scale("llama").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    let status = scale.status.expect("scale status");
    assert_eq!(status.replicas, 2);
    assert_eq!(
        status.selector.as_deref(),
        Some("serving.kubegrid.io/service=llama")
    );

    // What `kubectl scale --replicas=3` and an autoscaler send.
    api.patch_scale(
        "llama",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    assert_eq!(api.get("llama").await.unwrap().spec.replicas, 3);

    // Beyond maxReplicas (4) the rule on spec.replicas refuses the scale.
    let refused = api
        .patch_scale(
            "llama",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .expect_err("9 replicas is above maxReplicas");
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{}", status.message);
            assert!(
                status.message.contains("spec.replicas"),
                "{}",
                status.message
            );
            assert!(
                status
                    .message
                    .contains("must not exceed spec.scaling.maxReplicas"),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(api.get("llama").await.unwrap().spec.replicas, 3);
    server.stop().await;
}
