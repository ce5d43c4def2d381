//! The objects an LLMService becomes: golden files (regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p kubegrid-serving`), and every core object checked
//! against Kubernetes' own API schemas with `kubernetes-validate --strict` from the
//! virtualenv .ci/setup creates (SKIPPED, loudly, outside CI without it).

use std::path::PathBuf;

use kubegrid_serving::{LLMService, render};
use serde_json::{Value, json};

use crate::examples::base;

/// The kubegrid image the router objects name.
const ROUTER_IMAGE: &str = "ghcr.io/kubegrid/kubegrid@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The Kubernetes version the objects are validated for: the oldest kubegrid installs.
const KUBERNETES: &str = "1.31.0";

fn service(spec: Value) -> LLMService {
    serde_json::from_value(json!({
        "apiVersion": "serving.kubegrid.io/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "llama", "namespace": "ml", "uid": "0b6f3c1e-7d2a-4c55-9a61-2f0e8d4b7c19"},
        "spec": spec,
    }))
    .unwrap()
}

/// Pod mode: Deployment, Service, PDB, ScaledObject; service mode: replica 1's StatefulSet
/// and Service; the router of a service that scales to zero.
fn documents() -> Vec<(&'static str, Vec<Value>)> {
    let mut pod = base();
    pod["scaling"]["mode"] = json!("pod");
    let pod = service(pod);
    let svc = service(base());
    vec![
        (
            "render-pod-mode.yaml",
            vec![
                render::deployment(&pod),
                render::service(&pod),
                render::disruption_budget(&pod),
                render::scaled_object(&pod).unwrap(),
            ],
        ),
        (
            "render-service-mode.yaml",
            vec![
                render::stateful_set(&svc, 1, 1),
                render::replica_service(&svc, 1),
            ],
        ),
        // A model on a claim: mounted read-only, checked by `verify-model`.
        ("render-pvc.yaml", vec![render::deployment(&pvc_service())]),
        // idleReplicaCount 0: the router, `<name>` in front of it, `<name>-backend` in front
        // of the replicas.
        (
            "render-scale-to-zero.yaml",
            vec![
                render::router_deployment(&svc, ROUTER_IMAGE),
                render::router_disruption_budget(&svc),
                render::router_service(&svc),
                render::backend_service(&svc),
            ],
        ),
    ]
}

/// A pod-mode LLMService whose model is `pvc://weights/llama-8b` with two files.
pub fn pvc_service() -> LLMService {
    let mut spec = base();
    spec["scaling"]["mode"] = json!("pod");
    spec["model"] = json!({
        "uri": "pvc://weights/llama-8b",
        "files": [
            {"path": "config.json", "sha256": "1c".repeat(32)},
            {"path": "model.safetensors", "sha256": "5e".repeat(32), "size": 16_060_522_392_i64},
        ],
    });
    service(spec)
}

/// Documents as one YAML stream.
pub fn yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn rendered_objects_match_their_golden_files() {
    for (file, docs) in documents() {
        crate::crd::check_golden(file, &yaml(&docs));
    }
}

#[test]
fn a_stopping_router_drains_as_long_as_a_stopping_replica() {
    let mut spec = base();
    spec["engine"]["drainTimeoutSeconds"] = json!(600);
    let svc = service(spec);
    let router = render::router_deployment(&svc, ROUTER_IMAGE);
    let replica = render::stateful_set(&svc, 0, 1);
    let pod = &router["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].as_array().unwrap();
    assert!(args.contains(&json!("--drain-timeout=600")), "{args:?}");
    // The shutdown delay (5 s), the drain and the last answers fit in the grace period, which
    // is the replicas' own.
    assert_eq!(pod["terminationGracePeriodSeconds"], 630);
    assert_eq!(
        pod["terminationGracePeriodSeconds"],
        replica["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    );
}

#[test]
fn core_objects_pass_kubernetes_validate_strict() {
    // KEDA's ScaledObject has no schema there; its fields are asserted in the controller's
    // scenarios.
    let docs = documents()
        .into_iter()
        .flat_map(|(_, docs)| docs)
        .filter(|d| d["kind"] != "ScaledObject")
        .collect();
    validate_strict(docs);
}

/// Checks every object in `docs` with `kubernetes-validate --strict` for [`KUBERNETES`].
pub fn validate_strict(docs: Vec<Value>) {
    let venv = PathBuf::from(
        std::env::var_os("KUBEGRID_VALIDATE_VENV")
            .unwrap_or_else(|| "/var/cache/kubegrid/validate-venv".into()),
    );
    let tool = venv.join("bin/kubernetes-validate");
    if !tool.exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must validate the objects: {} is missing (.ci/setup installs it)",
            tool.display()
        );
        eprintln!(
            "\n!!! SKIPPED: no {}; nothing was validated. !!!\n",
            tool.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for doc in docs {
        let path = dir.path().join(format!(
            "{}-{}.yaml",
            doc["kind"].as_str().unwrap(),
            files.len()
        ));
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        files.push(path);
    }
    let out = std::process::Command::new(&tool)
        .args(["--strict", "-k", KUBERNETES])
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches(" passed for resource ").count(),
        files.len(),
        "{text}"
    );
}
