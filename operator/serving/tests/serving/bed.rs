//! The controller's test bed: LLMServices on a REAL API server (the test-only
//! apiextensions-apiserver harness, e2e/real-apiserver), Deployments, StatefulSets,
//! Services, PDBs, ScaledObjects and Events on the TEST STAND-IN API server
//! (e2e/fake-apiserver), one routed client for the controller. No kube-controller-manager
//! runs: the tests write the workloads' status themselves, as its controllers would.

use std::{sync::Arc, time::Duration};

use kube::{
    Api,
    api::{DeleteParams, PostParams},
    runtime::wait::await_condition,
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::RealApiServer;
use kubegrid_serving::{LLMService, controller};
use serde_json::{Value, json};

pub const NS: &str = "ml";
/// How long any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Bed {
    pub real: RealApiServer,
    pub fake: FakeCluster,
    pub api: Api<LLMService>,
    controller: tokio::task::JoinHandle<()>,
}

/// The image the controller gives the routers in these scenarios.
pub const ROUTER_IMAGE: &str = "ghcr.io/kubegrid/kubegrid@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

impl Bed {
    /// A bed with the controller running; `None` (SKIPPED) outside CI without the harness.
    pub async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, Some(ROUTER_IMAGE)).await
    }

    /// [`Bed::start`] with the controller's `--router-image` as given.
    pub async fn start_with(test: &str, router_image: Option<&str>) -> Option<Self> {
        let real = RealApiServer::for_test(test).await?;
        real.apply_crds(&[kubegrid_serving::crd()]).await.unwrap();
        let fake = FakeCluster::new();
        let client = real.routed_client(&fake, Some("kubegrid-serving"));
        let mut ctx = controller::Context::new(client.clone(), "test");
        ctx.retry = Duration::from_millis(200);
        ctx.router_image = router_image.map(String::from);
        let controller = tokio::spawn(controller::run(Arc::new(ctx), Some(NS)));
        Some(Self {
            api: Api::namespaced(real.client(), NS),
            real,
            fake,
            controller,
        })
    }

    pub async fn create(&self, name: &str, spec: Value) {
        let obj: LLMService = serde_json::from_value(json!({
            "apiVersion": "serving.kubegrid.io/v1alpha1",
            "kind": "LLMService",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))
        .unwrap();
        self.api.create(&PostParams::default(), &obj).await.unwrap();
    }

    pub async fn delete(&self, name: &str) {
        self.api
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Sets replicas through the scale subresource, as `kubectl scale`, HPA and KEDA do.
    pub async fn scale(&self, name: &str, replicas: i32) {
        let patch = json!({"spec": {"replicas": replicas}});
        self.api
            .patch_scale(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }

    /// Waits until LLMService `name` satisfies `check`.
    pub async fn wait_llm(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&LLMService) -> bool,
    ) -> LLMService {
        let cond = move |o: Option<&LLMService>| o.is_some_and(&check);
        let found = tokio::time::timeout(PATIENCE, await_condition(self.api.clone(), name, cond))
            .await
            .unwrap_or_else(|_| panic!("LLMService {name}: {what} within {PATIENCE:?}"))
            .unwrap();
        found.expect("the condition holds only for an existing object")
    }

    /// Waits until LLMService `name` is gone.
    pub async fn wait_gone(&self, name: &str) {
        let cond = |o: Option<&LLMService>| o.is_none();
        tokio::time::timeout(PATIENCE, await_condition(self.api.clone(), name, cond))
            .await
            .unwrap_or_else(|_| panic!("LLMService {name} gone within {PATIENCE:?}"))
            .unwrap();
    }

    /// Waits until the fake holds `kind` `name` satisfying `check`, and returns it.
    pub async fn wait_object(
        &self,
        kind: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let api_version = api_version(kind);
        tokio::time::timeout(
            PATIENCE,
            self.fake.wait_for(|f| {
                f.get_object(api_version, kind, NS, name)
                    .filter(|o| check(o))
            }),
        )
        .await
        .unwrap_or_else(|_| {
            let now = self.fake.get_object(api_version, kind, NS, name);
            panic!("{kind} {name}: {what} within {PATIENCE:?}; it is {now:#?}")
        })
    }

    /// Waits until the fake holds no `kind` `name`.
    pub async fn wait_absent(&self, kind: &str, name: &str) {
        let api_version = api_version(kind);
        tokio::time::timeout(
            PATIENCE,
            self.fake.wait_for(|f| {
                f.get_object(api_version, kind, NS, name)
                    .is_none()
                    .then_some(())
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{kind} {name} removed within {PATIENCE:?}"));
    }

    /// Writes a workload's status as kube-controller-manager would: `pods` pods, `ready` of
    /// them ready.
    pub fn set_pods(&self, kind: &str, name: &str, pods: i32, ready: i32) {
        let mut object = self
            .fake
            .get_object(api_version(kind), kind, NS, name)
            .unwrap_or_else(|| panic!("{kind} {name} exists"));
        object["status"] =
            json!({"replicas": pods, "readyReplicas": ready, "availableReplicas": ready});
        self.fake.put(object);
    }

    /// The reasons of the Events recorded about LLMService `name`, in order.
    pub fn event_reasons(&self, name: &str) -> Vec<String> {
        self.fake
            .list_objects("events.k8s.io/v1", "Event", Some(NS))
            .iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The notes of Events about `name` with `reason`.
    pub fn event_notes(&self, name: &str, reason: &str) -> Vec<String> {
        self.fake
            .list_objects("events.k8s.io/v1", "Event", Some(NS))
            .iter()
            .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
            .map(|e| e["note"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn stop(self) {
        self.controller.abort();
        self.real.stop().await;
    }
}

pub fn api_version(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" => "apps/v1",
        "PodDisruptionBudget" => "policy/v1",
        "ScaledObject" => "keda.sh/v1alpha1",
        _ => "v1",
    }
}

pub fn condition<'a>(svc: &'a LLMService, type_: &str) -> Option<&'a kubegrid_api::Condition> {
    svc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// A pod-mode spec of `replicas` replicas of a one-GPU model.
pub fn pod_spec(replicas: i32) -> Value {
    json!({
        "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct@main"},
        "engine": {"image": "vllm/vllm-openai:v0.11.0", "shmSize": "4Gi", "drainTimeoutSeconds": 60},
        "replicas": replicas,
        "scaling": {"mode": "pod", "minReplicas": 0, "maxReplicas": 4},
    })
}

/// A service-mode spec of `replicas` replicas.
pub fn service_spec(replicas: i32) -> Value {
    let mut spec = pod_spec(replicas);
    spec["scaling"]["mode"] = json!("service");
    spec
}
