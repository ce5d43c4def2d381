//! The ModelPrewarm resource: its CRD (golden file, printer columns), its code validation,
//! and the same verdicts on a REAL API server (e2e/real-apiserver; SKIPPED outside CI
//! without the build).

use std::collections::BTreeMap;

use kube::{Api, api::PostParams};
use kubegrid_real_apiserver::RealApiServer;
use kubegrid_serving::{ModelPrewarm, ModelPrewarmSpec};
use serde_json::json;

use crate::crd::check_golden;

#[test]
fn prewarm_crd_matches_golden_file_and_shows_model_ready_and_age() {
    check_golden(
        "modelprewarms.serving.kubegrid.io.yaml",
        &kubegrid_serving::prewarm_crd_yaml().unwrap(),
    );
    let crd = kubegrid_serving::prewarm_crd();
    let v = &crd.spec.versions[0];
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Model", "Ready", "Age"]);
}

/// (name, spec, the field refused or None).
fn examples() -> Vec<(&'static str, serde_json::Value, Option<&'static str>)> {
    vec![
        (
            "hf on every node",
            json!({"model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct@main"}}),
            None,
        ),
        (
            "hf on H100 nodes",
            json!({"model": {"uri": "hf://acme/llama"}, "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}),
            None,
        ),
        (
            "plain http",
            json!({"model": {"uri": "http://mirror/llama"}}),
            Some("spec.model.uri"),
        ),
        (
            "a claim, which no node caches",
            json!({"model": {"uri": "pvc://weights/llama", "files": [{"path": "config.json", "sha256": "ab".repeat(32)}]}}),
            Some("spec.model.uri"),
        ),
        (
            "s3 without files",
            json!({"model": {"uri": "s3://models/llama"}}),
            Some("spec.model.files"),
        ),
    ]
}

#[test]
fn the_code_refuses_bad_prewarms_at_the_field() {
    for (name, spec, field) in examples() {
        let spec: ModelPrewarmSpec = serde_json::from_value(spec).unwrap();
        let fields: Vec<String> = spec.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            field.into_iter().map(String::from).collect::<Vec<_>>(),
            "{name}"
        );
    }
    let spec = ModelPrewarmSpec {
        model: serde_json::from_value(json!({"uri": "hf://acme/llama"})).unwrap(),
        node_selector: BTreeMap::from([("gpu".into(), "-h100".into())]),
    };
    let errors = spec.validate();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.nodeSelector[\"gpu\"]");
    let labels = BTreeMap::from([("gpu".to_string(), "h100".to_string())]);
    let on_h100 = ModelPrewarmSpec {
        node_selector: labels.clone(),
        ..spec
    };
    assert!(on_h100.selects(&labels));
    assert!(!on_h100.selects(&BTreeMap::new()));
}

#[tokio::test]
async fn the_server_gives_each_prewarm_the_verdict_the_code_gives() {
    let Some(server) = RealApiServer::for_test("prewarm_verdicts").await else {
        return;
    };
    server
        .apply_crds(&[kubegrid_serving::prewarm_crd()])
        .await
        .unwrap();
    let api: Api<ModelPrewarm> = Api::namespaced(server.client(), "serving");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for (i, (name, spec, field)) in examples().into_iter().enumerate() {
        let obj: ModelPrewarm = serde_json::from_value(json!({
            "apiVersion": "serving.kubegrid.io/v1alpha1",
            "kind": "ModelPrewarm",
            "metadata": {"name": format!("ex-{i}"), "namespace": "serving"},
            "spec": spec,
        }))
        .unwrap();
        match (api.create(&dry, &obj).await, field) {
            (Ok(_), None) => {}
            (Err(kube::Error::Api(status)), Some(f)) if status.code == 422 => {
                let causes: Vec<&str> = status
                    .details
                    .iter()
                    .flat_map(|d| d.causes.iter())
                    .map(|c| c.field.trim_start_matches('.'))
                    .collect();
                assert_eq!(causes, [f], "{name}: {}", status.message);
            }
            (answer, _) => panic!("{name}: {answer:?}, expected {field:?}"),
        }
    }
    server.stop().await;
}
