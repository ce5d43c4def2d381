//! `kubegrid serving-controller` as a process: it connects with a kubeconfig (to the
//! test-only routed front: LLMServices on a REAL apiextensions-apiserver, everything else on
//! the TEST STAND-IN API server), takes its Lease, acts on an LLMService, and releases the
//! Lease on SIGTERM. SKIPPED outside CI without the real server's build.

use std::time::Duration;

use kube::{Api, api::PostParams};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::{Front, RealApiServer};
use kubegrid_serving::LLMService;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_serving_controller_acts_while_it_holds_its_lease_and_releases_it_on_sigterm() {
    let Some(server) = RealApiServer::for_test("serving_controller_cli").await else {
        return;
    };
    server.apply_crds(&[kubegrid_serving::crd()]).await.unwrap();
    let fake = FakeCluster::new();
    let front = Front::start(&server, &fake).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("serving.kubeconfig");
    front
        .write_kubeconfig(&server, "kubegrid-serving", &kubeconfig)
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args([
            "serving-controller",
            "--namespace",
            "ml",
            "--identity",
            "serving-a",
        ])
        .args([
            "--lease-namespace",
            "kubegrid-system",
            "--log-format",
            "text",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let llm: LLMService = serde_json::from_value(json!({
        "apiVersion": "serving.kubegrid.io/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": {
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct@main"},
            "engine": {"image": "vllm/vllm-openai:v0.11.0"},
        },
    }))
    .unwrap();
    Api::<LLMService>::namespaced(server.client(), "ml")
        .create(&PostParams::default(), &llm)
        .await
        .unwrap();
    tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| f.get_object("apps/v1", "Deployment", "ml", "llama")),
    )
    .await
    .expect("the controller creates the Deployment");
    let holder = |f: &FakeCluster| {
        f.get_object(
            "coordination.k8s.io/v1",
            "Lease",
            "kubegrid-system",
            "kubegrid-serving",
        )
        .map(|l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    };
    assert_eq!(holder(&fake).as_deref(), Some("serving-a"));

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("it exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        holder(&fake).as_deref(),
        Some(""),
        "the Lease is released for a standby"
    );
    drop(front);
    server.stop().await;
}
