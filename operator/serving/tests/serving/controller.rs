//! The LLMService controller, scenario by scenario, on the bed in `bed.rs`: LLMServices and
//! their scale subresource on a REAL API server, workloads on the TEST STAND-IN.

use serde_json::{Value, json};

use crate::bed::{Bed, condition, pod_spec, service_spec};

fn container(template: &Value) -> &Value {
    &template["spec"]["containers"][0]
}

#[tokio::test]
async fn pod_mode_creates_scales_reports_and_deletes_with_a_drain() {
    let Some(bed) = Bed::start("pod_mode_creates_scales_reports_and_deletes").await else {
        return;
    };
    bed.create("llama", pod_spec(2)).await;

    let deployment = bed
        .wait_object("Deployment", "llama", "2 replicas", |d| {
            d["spec"]["replicas"] == 2
        })
        .await;
    let template = &deployment["spec"]["template"];
    let vllm = container(template);
    assert_eq!(vllm["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(template["spec"]["enableServiceLinks"], false);
    assert_eq!(template["spec"]["runtimeClassName"], "nvidia");
    assert_eq!(template["spec"]["terminationGracePeriodSeconds"], 90);
    assert_eq!(vllm["startupProbe"]["httpGet"]["path"], "/health");
    assert_eq!(vllm["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(vllm["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(
        vllm["lifecycle"]["preStop"]["exec"]["command"][0],
        "python3"
    );
    assert_eq!(vllm["lifecycle"]["preStop"]["exec"]["command"][4], "60");
    let shm = template["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "shm")
        .unwrap();
    assert_eq!(
        shm["emptyDir"],
        json!({"medium": "Memory", "sizeLimit": "4Gi"})
    );
    assert!(
        vllm["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/models" && m["readOnly"] == true)
    );
    let args: Vec<&str> = vllm["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        &args[..3],
        ["/models/current", "--served-model-name", "llama"]
    );
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["kind"], "LLMService",
        "owned by the LLMService"
    );
    let service = bed
        .wait_object("Service", "llama", "exists", |_| true)
        .await;
    assert_eq!(
        service["spec"]["selector"],
        json!({"serving.kubegrid.io/llmservice": "llama"})
    );
    let pdb = bed
        .wait_object("PodDisruptionBudget", "llama", "exists", |_| true)
        .await;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    let svc = bed
        .wait_llm("llama", "status with the selector", |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.selector == "serving.kubegrid.io/llmservice=llama")
        })
        .await;
    let status = svc.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.endpoint.as_deref(), Some("http://llama.ml.svc:8000"));
    assert_eq!(condition(&svc, "Ready").unwrap().status, "False");
    assert!(
        svc.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&"serving.kubegrid.io/drain".to_string())
    );

    // kube-controller-manager's part: the pods come up.
    bed.set_pods("Deployment", "llama", 2, 2);
    let svc = bed
        .wait_llm("llama", "Serving", |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.phase.as_deref() == Some("Serving"))
        })
        .await;
    assert_eq!(svc.status.as_ref().unwrap().ready_replicas, 2);
    assert_eq!(condition(&svc, "Ready").unwrap().status, "True");

    // kubectl scale, through the real server's scale subresource.
    bed.scale("llama", 3).await;
    bed.wait_object("Deployment", "llama", "3 replicas", |d| {
        d["spec"]["replicas"] == 3
    })
    .await;
    let svc = bed
        .wait_llm("llama", "Degraded at 2 of 3", |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.phase.as_deref() == Some("Degraded"))
        })
        .await;
    assert_eq!(condition(&svc, "Scaling").unwrap().reason, "ScalingUp");

    // Delete: the Deployment goes to 0 first; nothing else goes until its pods are gone.
    bed.delete("llama").await;
    bed.wait_object("Deployment", "llama", "scaled to 0 for the drain", |d| {
        d["spec"]["replicas"] == 0
    })
    .await;
    assert!(
        bed.fake
            .get_object("v1", "Service", crate::bed::NS, "llama")
            .is_some(),
        "the Service stays while pods drain"
    );
    bed.set_pods("Deployment", "llama", 0, 0);
    bed.wait_absent("Deployment", "llama").await;
    bed.wait_absent("Service", "llama").await;
    bed.wait_absent("PodDisruptionBudget", "llama").await;
    bed.wait_gone("llama").await;
    bed.stop().await;
}

#[tokio::test]
async fn service_mode_adds_replicas_in_order_and_drains_the_highest_first() {
    let Some(bed) = Bed::start("service_mode_adds_replicas_in_order").await else {
        return;
    };
    bed.create("qwen", service_spec(3)).await;
    for i in 0..3 {
        let name = format!("qwen-{i}");
        let set = bed
            .wait_object("StatefulSet", &name, "one pod", |s| {
                s["spec"]["replicas"] == 1
            })
            .await;
        assert_eq!(
            set["spec"]["template"]["metadata"]["labels"]["serving.kubegrid.io/replica"],
            i.to_string()
        );
        let own = bed.wait_object("Service", &name, "exists", |_| true).await;
        assert_eq!(
            own["spec"]["selector"],
            json!({"serving.kubegrid.io/llmservice": "qwen", "serving.kubegrid.io/replica": i.to_string()})
        );
        bed.set_pods("StatefulSet", &name, 1, 1);
    }
    bed.wait_object("Service", "qwen", "the shared Service", |_| true)
        .await;
    bed.wait_llm("qwen", "3 ready", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.ready_replicas == 3 && st.phase.as_deref() == Some("Serving"))
    })
    .await;

    // Down to 1: qwen-2 drains first; qwen-1 keeps serving until qwen-2 is gone.
    bed.scale("qwen", 1).await;
    bed.wait_object("StatefulSet", "qwen-2", "drained to 0", |s| {
        s["spec"]["replicas"] == 0
    })
    .await;
    let svc = bed
        .wait_llm("qwen", "Draining", |s| {
            condition(s, "Scaling").is_some_and(|c| c.reason == "Draining")
        })
        .await;
    assert!(
        condition(&svc, "Scaling")
            .unwrap()
            .message
            .contains("qwen-2")
    );
    let one = bed
        .fake
        .get_object("apps/v1", "StatefulSet", crate::bed::NS, "qwen-1")
        .unwrap();
    assert_eq!(
        one["spec"]["replicas"], 1,
        "qwen-1 untouched while qwen-2 drains"
    );
    assert!(
        bed.event_notes("qwen", "Draining")
            .iter()
            .any(|n| n.contains("qwen-2") && n.contains("60 s"))
    );

    bed.set_pods("StatefulSet", "qwen-2", 0, 0);
    bed.wait_absent("StatefulSet", "qwen-2").await;
    bed.wait_absent("Service", "qwen-2").await;
    bed.wait_object("StatefulSet", "qwen-1", "drained to 0 next", |s| {
        s["spec"]["replicas"] == 0
    })
    .await;
    bed.set_pods("StatefulSet", "qwen-1", 0, 0);
    bed.wait_absent("StatefulSet", "qwen-1").await;
    let svc = bed
        .wait_llm("qwen", "Stable at 1", |s| {
            condition(s, "Scaling").is_some_and(|c| c.reason == "Stable")
        })
        .await;
    assert_eq!(svc.status.as_ref().unwrap().replicas, 1);
    assert!(
        bed.fake
            .get_object("apps/v1", "StatefulSet", crate::bed::NS, "qwen-0")
            .is_some()
    );
    let reasons = bed.event_reasons("qwen");
    let removed: Vec<String> = bed.event_notes("qwen", "ReplicaRemoved");
    assert_eq!(removed.len(), 2, "{reasons:?}");
    assert!(
        removed[0].contains("qwen-2") && removed[1].contains("qwen-1"),
        "{removed:?}"
    );

    // Order on the wire: qwen-2's StatefulSet was deleted before qwen-1 was touched for removal.
    let requests = bed.fake.requests_from("kubegrid-serving");
    let delete_2 = requests
        .iter()
        .position(|r| r.starts_with("DELETE") && r.contains("/statefulsets/qwen-2"))
        .unwrap();
    let delete_1 = requests
        .iter()
        .position(|r| r.starts_with("DELETE") && r.contains("/statefulsets/qwen-1"))
        .unwrap();
    assert!(delete_2 < delete_1);
    bed.stop().await;
}

#[tokio::test]
async fn keda_gets_a_scaled_object_on_the_scale_subresource_selected_by_model_name() {
    let Some(bed) = Bed::start("keda_gets_a_scaled_object").await else {
        return;
    };
    let mut spec = service_spec(1);
    spec["scaling"] = json!({
        "mode": "service", "minReplicas": 1, "maxReplicas": 4,
        "keda": {
            "trigger": {"prometheus": {"serverAddress": "http://prometheus.monitoring:9090"}},
            "threshold": "5",
            "idleReplicaCount": 0,
            "fallback": {"failureThreshold": 3, "replicas": 2},
        },
    });
    bed.create("mistral", spec).await;
    // The router comes first; until one of its pods is available, `mistral` keeps selecting
    // the replicas and KEDA may not go to zero (nothing would hold the requests).
    bed.wait_object("Deployment", "mistral-router", "exists", |_| true)
        .await;
    let svc = bed
        .wait_llm("mistral", "router starting", |s| {
            condition(s, "Autoscaling").is_some_and(|c| c.reason == "RouterStarting")
        })
        .await;
    let starting = condition(&svc, "Autoscaling").unwrap();
    assert_eq!(starting.status, "False");
    assert!(
        starting.message.contains("mistral-router"),
        "{}",
        starting.message
    );
    let so = bed
        .wait_object("ScaledObject", "mistral", "exists", |_| true)
        .await;
    assert!(so["spec"].get("idleReplicaCount").is_none(), "{so}");
    bed.wait_object("Service", "mistral", "selects the replicas", |s| {
        s["spec"]["selector"] == json!({"serving.kubegrid.io/llmservice": "mistral"})
    })
    .await;
    bed.set_pods("Deployment", "mistral-router", 2, 1);
    let so = bed
        .wait_object("ScaledObject", "mistral", "may go to zero", |o| {
            o["spec"]["idleReplicaCount"] == 0
        })
        .await;
    assert_eq!(
        so["spec"]["scaleTargetRef"],
        json!({"apiVersion": "serving.kubegrid.io/v1alpha1", "kind": "LLMService", "name": "mistral"})
    );
    assert_eq!(so["spec"]["minReplicaCount"], 1);
    assert_eq!(so["spec"]["maxReplicaCount"], 4);
    assert_eq!(so["spec"]["idleReplicaCount"], 0);
    assert_eq!(
        so["spec"]["fallback"],
        json!({"failureThreshold": 3, "replicas": 2})
    );
    let trigger = &so["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "prometheus");
    assert_eq!(trigger["metadata"]["threshold"], "5");
    let query = trigger["metadata"]["query"].as_str().unwrap();
    assert!(
        query.contains("vllm:num_requests_waiting{model_name=\"mistral\",namespace=\"ml\"}"),
        "{query}"
    );
    let svc = bed
        .wait_llm("mistral", "Autoscaling", |s| {
            condition(s, "Autoscaling").is_some_and(|c| c.status == "True")
        })
        .await;
    assert!(
        condition(&svc, "Autoscaling")
            .unwrap()
            .message
            .contains(query)
    );

    // idleReplicaCount 0: the router takes the Service's name, the replicas get their own,
    // and the ScaledObject adds the router's waiting requests to the demand and keeps the
    // service active while requests run.
    assert!(
        query.contains("kubegrid_router_pending_requests{model_name=\"mistral\",namespace=\"ml\"}"),
        "{query}"
    );
    let activity = &so["spec"]["triggers"][1];
    assert_eq!(activity["name"], "activity");
    assert!(
        activity["metadata"]["query"]
            .as_str()
            .unwrap()
            .contains("vllm:num_requests_running{model_name=\"mistral\",namespace=\"ml\"}")
    );
    let router = bed
        .wait_object("Deployment", "mistral-router", "exists", |_| true)
        .await;
    let c = container(&router["spec"]["template"]);
    assert_eq!(c["image"], crate::bed::ROUTER_IMAGE);
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--backend=mistral-backend:8000")),
        "{c}"
    );
    let front = bed
        .wait_object("Service", "mistral", "selects the router", |s| {
            s["spec"]["selector"] == json!({"serving.kubegrid.io/router": "mistral"})
        })
        .await;
    assert_eq!(front["spec"]["ports"][0]["targetPort"], "http");
    bed.wait_object("Service", "mistral-backend", "selects the replicas", |s| {
        s["spec"]["selector"] == json!({"serving.kubegrid.io/llmservice": "mistral"})
    })
    .await;
    bed.wait_object("PodDisruptionBudget", "mistral-router", "exists", |b| {
        b["spec"]["selector"]["matchLabels"] == json!({"serving.kubegrid.io/router": "mistral"})
    })
    .await;

    // KEDA's scale, as its HPA writes it: the scale subresource, which the real server maps
    // to spec.replicas and which the controller follows.
    bed.scale("mistral", 3).await;
    bed.wait_object("StatefulSet", "mistral-2", "third replica", |s| {
        s["spec"]["replicas"] == 1
    })
    .await;

    // Dropping spec.scaling.keda removes the ScaledObject.
    let patch = json!({"spec": {"scaling": {"keda": null}}});
    bed.api
        .patch(
            "mistral",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    bed.wait_absent("ScaledObject", "mistral").await;
    // ... and the router: `mistral` selects the replicas again.
    bed.wait_absent("Deployment", "mistral-router").await;
    bed.wait_absent("Service", "mistral-backend").await;
    bed.wait_absent("PodDisruptionBudget", "mistral-router")
        .await;
    bed.wait_object("Service", "mistral", "selects the replicas", |s| {
        s["spec"]["selector"] == json!({"serving.kubegrid.io/llmservice": "mistral"})
    })
    .await;
    bed.stop().await;
}

#[tokio::test]
async fn without_a_router_image_a_service_is_kept_from_scaling_to_zero() {
    let Some(bed) = Bed::start_with("without_a_router_image", None).await else {
        return;
    };
    let mut spec = pod_spec(1);
    spec["scaling"] = json!({
        "mode": "pod", "minReplicas": 1, "maxReplicas": 2,
        "keda": {
            "trigger": {"prometheus": {"serverAddress": "http://prometheus.monitoring:9090"}},
            "threshold": "5",
            "idleReplicaCount": 0,
        },
    });
    bed.create("gemma", spec).await;
    let svc = bed
        .wait_llm("gemma", "Autoscaling False", |s| {
            condition(s, "Autoscaling").is_some_and(|c| c.status == "False")
        })
        .await;
    let c = condition(&svc, "Autoscaling").unwrap();
    assert_eq!(c.reason, "RouterImageMissing");
    assert!(c.message.contains("--router-image"), "{}", c.message);
    let so = bed
        .wait_object("ScaledObject", "gemma", "exists", |_| true)
        .await;
    assert!(
        so["spec"].get("idleReplicaCount").is_none(),
        "KEDA must not go to zero with nothing holding requests: {so:#}"
    );
    assert!(
        bed.fake
            .get_object("apps/v1", "Deployment", "ml", "gemma-router")
            .is_none()
    );
    let front = bed
        .wait_object("Service", "gemma", "exists", |_| true)
        .await;
    assert_eq!(
        front["spec"]["selector"],
        json!({"serving.kubegrid.io/llmservice": "gemma"})
    );
    assert!(
        bed.event_reasons("gemma")
            .contains(&"RouterImageMissing".to_string())
    );
    bed.stop().await;
}

#[tokio::test]
async fn a_cluster_without_keda_gets_a_false_condition_and_serving_goes_on() {
    let Some(bed) = Bed::start("a_cluster_without_keda").await else {
        return;
    };
    // keda.sh is not served: every ScaledObject write is a 404, as on a cluster without KEDA.
    bed.fake.fail_next("PATCH", "/apis/keda.sh/", 404, 1000);
    let mut spec = pod_spec(1);
    spec["scaling"]["minReplicas"] = json!(1);
    spec["scaling"]["keda"] = json!({
        "trigger": {"prometheus": {"serverAddress": "http://prometheus.monitoring:9090"}},
        "threshold": "2",
    });
    bed.create("phi", spec).await;
    let svc = bed
        .wait_llm("phi", "Autoscaling False", |s| {
            condition(s, "Autoscaling").is_some_and(|c| c.status == "False")
        })
        .await;
    let c = condition(&svc, "Autoscaling").unwrap();
    assert_eq!(c.reason, "KedaMissing");
    assert!(
        c.message.contains("keda.sh/v1alpha1 ScaledObject"),
        "{}",
        c.message
    );
    bed.wait_object("Deployment", "phi", "created anyway", |d| {
        d["spec"]["replicas"] == 1
    })
    .await;
    assert!(
        bed.event_reasons("phi")
            .contains(&"KedaMissing".to_string())
    );
    bed.stop().await;
}

#[tokio::test]
async fn invalid_specs_are_refused_with_the_field_named_and_nothing_created() {
    let Some(bed) = Bed::start("invalid_specs_are_refused").await else {
        return;
    };
    let mut spec = pod_spec(1);
    spec["engine"]["args"] = json!(["--max-model-len", "8192", "--served-model-name=other"]);
    bed.create("gemma", spec).await;
    bed.create(&format!("m{}", "x".repeat(45)), pod_spec(1))
        .await;
    let svc = bed
        .wait_llm("gemma", "Failed", |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.phase.as_deref() == Some("Failed"))
        })
        .await;
    let ready = condition(&svc, "Ready").unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready
            .message
            .starts_with("spec.engine.args[2]: --served-model-name is set by kubegrid"),
        "{}",
        ready.message
    );
    let long = format!("m{}", "x".repeat(45));
    let svc = bed
        .wait_llm(&long, "Failed", |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.phase.as_deref() == Some("Failed"))
        })
        .await;
    assert!(
        condition(&svc, "Ready")
            .unwrap()
            .message
            .starts_with("metadata.name:")
    );
    assert!(bed.event_notes("gemma", "InvalidSpec")[0].contains("spec.engine.args[2]"));
    for kind in ["Deployment", "Service", "PodDisruptionBudget"] {
        assert!(
            bed.fake
                .list_objects(crate::bed::api_version(kind), kind, None)
                .is_empty(),
            "no {kind} for a refused spec"
        );
    }
    bed.stop().await;
}
