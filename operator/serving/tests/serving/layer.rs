//! The serving layer's own objects (controller, cache, RBAC, PodMonitors): a golden file
//! (regenerate with `UPDATE_GOLDEN=1`), Kubernetes' schemas, and what the pieces must agree
//! on: the flags the binaries take, the ports the probes and PodMonitors name, and RBAC for
//! every resource the controller and the cache touch.

use kubegrid_serving::layer::{self, LayerOptions};
use serde_json::Value;

use crate::render::{validate_strict, yaml};

const IMAGE: &str = "ghcr.io/kubegrid/kubegrid@sha256:0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a0908070605040302010a";

fn options() -> LayerOptions {
    LayerOptions {
        cache_capacity: Some("500Gi".into()),
        pod_monitors: true,
        ..LayerOptions::new(IMAGE)
    }
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn the_layer_matches_its_golden_file_and_kubernetes_schemas() {
    let objects = layer::objects(&options());
    let mut with_secret = objects.clone();
    with_secret.push(layer::token_secret("kubegrid-serving", "example-token"));
    crate::crd::check_golden("layer.yaml", &yaml(&with_secret));
    // PodMonitor is the Prometheus Operator's CRD: no schema there.
    validate_strict(
        with_secret
            .into_iter()
            .filter(|o| o["kind"] != "PodMonitor")
            .collect(),
    );
    assert_eq!(kind(&objects, "PodMonitor").len(), 3);
    let plain = layer::objects(&LayerOptions::new(IMAGE));
    assert!(
        kind(&plain, "PodMonitor").is_empty(),
        "PodMonitors only when asked"
    );
}

#[test]
fn the_workloads_run_the_pinned_image_with_flags_the_binaries_take() {
    let objects = layer::objects(&options());
    let controller = kind(&objects, "Deployment")[0];
    let cache = kind(&objects, "DaemonSet")[0];
    for w in [controller, cache] {
        let c = &w["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], IMAGE);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    }
    let args: Vec<&str> = cache["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--follow-llmservices"));
    let controller_args = &controller["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        controller_args
            .as_array()
            .unwrap()
            .contains(&Value::from(format!("--router-image={IMAGE}"))),
        "the routers run the layer's image: {controller_args}"
    );
    assert!(args.contains(&"--capacity=500Gi"));
    let spec = &cache["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["nodeSelector"]["nvidia.com/gpu.present"], "true");
    assert_eq!(
        spec["containers"][0]["readinessProbe"]["httpGet"]["port"],
        layer::CONTROL_PORT
    );
    assert_eq!(
        spec["volumes"][1]["secret"]["secretName"],
        layer::TOKEN_SECRET
    );
}

#[test]
fn rbac_covers_what_the_controller_and_the_cache_touch() {
    let objects = layer::objects(&options());
    let grants = |name: &str| -> Vec<String> {
        kind(&objects, "ClusterRole")
            .into_iter()
            .chain(kind(&objects, "Role"))
            .filter(|r| r["metadata"]["name"] == name)
            .flat_map(|r| r["rules"].as_array().unwrap().clone())
            .flat_map(|rule| {
                let resources = rule["resources"].as_array().unwrap().clone();
                let verbs = rule["verbs"].as_array().unwrap().clone();
                resources.into_iter().flat_map(move |res| {
                    verbs
                        .clone()
                        .into_iter()
                        .map(move |v| format!("{} {}", v.as_str().unwrap(), res.as_str().unwrap()))
                })
            })
            .collect()
    };
    let controller = grants(layer::CONTROLLER);
    for needed in [
        "watch llmservices",
        "patch llmservices/status",
        "update llmservices/finalizers",
        "patch deployments",
        "delete statefulsets",
        "delete deployments",
        "delete services",
        "patch services",
        "patch poddisruptionbudgets",
        "patch scaledobjects",
        "create events",
        "update leases",
    ] {
        assert!(
            controller.contains(&needed.to_string()),
            "controller lacks {needed}"
        );
    }
    let cache = grants(layer::CACHE);
    for needed in [
        "watch llmservices",
        "watch modelprewarms",
        "update llmservices/status",
        "update modelprewarms/status",
        "get nodes",
        "patch nodes",
        "create leases",
        "update leases",
    ] {
        assert!(cache.contains(&needed.to_string()), "cache lacks {needed}");
    }
    // Neither may read Secrets cluster-wide.
    assert!(
        !controller
            .iter()
            .chain(&cache)
            .any(|g| g.ends_with(" secrets"))
    );
}
