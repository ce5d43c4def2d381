//! The GPU and gVisor checks against the fake API server (a TEST STAND-IN: it "runs" pods by
//! rules on their command line; no kubelet, GPU or gVisor is involved). What they show: the
//! pods kubegrid creates (RuntimeClass, GPU limit, node, image), how it reads what comes back,
//! and what it says when that is wrong.

use kubegrid_cluster::{CheckOptions, ExpectedNode, GVISOR_DMESG, run_checks};
use serde_json::{Value, json};

use crate::{
    fake::{Behaviour, FakeCluster},
    fixtures::{SHORT, expected, healthy, options},
};

const GPU_IMAGE: &str = "nvcr.io/nvidia/k8s-device-plugin@sha256:0000000000000000000000000000000000000000000000000000000000000001";

/// What `nvidia-smi -L` prints for one GPU.
const ONE_GPU: &str = "GPU 0: NVIDIA L4 (UUID: GPU-4bb2a4b5-4c24-9c0c-3e3a-7bd5a5f7b0a1)\n";

/// gVisor's first dmesg lines.
const GVISOR_LOG: &str =
    "[   0.000000] Starting gVisor...\n[   0.512345] Checking naughty and nice process list...\n";

/// The healthy fake, with w1 advertising `gpus` GPUs (none when `None`) and the two
/// runtime pods behaving as given.
fn fake_with(gpus: Option<&str>, smi: Behaviour, dmesg: Behaviour) -> FakeCluster {
    let fake = healthy();
    if let Some(n) = gpus {
        fake.state().nodes.get_mut("w1").expect("w1")["status"]["allocatable"] =
            json!({ "cpu": "8", "nvidia.com/gpu": n });
    }
    fake.rule("nvidia-smi -L", smi).rule("dmesg", dmesg);
    fake
}

fn exits(succeed: bool, log: &str) -> Behaviour {
    Behaviour::Exit {
        succeed,
        log: log.into(),
    }
}

/// The spec's nodes with w1 a GPU Node with two detected GPUs and w2 running gVisor.
fn gpu_expected() -> Vec<ExpectedNode> {
    let mut nodes = expected();
    nodes[1].gpus = Some(2);
    nodes[2].gvisor = true;
    nodes
}

fn gpu_options() -> CheckOptions {
    CheckOptions {
        gpu_image: Some(GPU_IMAGE.into()),
        ..options()
    }
}

/// The pod the client created whose command starts with `program`.
fn created(fake: &FakeCluster, program: &str) -> Value {
    fake.state()
        .created_pods
        .iter()
        .find(|p| p["spec"]["containers"][0]["command"][0] == program)
        .cloned()
        .unwrap_or_else(|| panic!("no {program} pod was created"))
}

#[tokio::test]
async fn gpu_and_gvisor_checks_pass_with_the_runtime_classes_on_the_right_nodes() {
    let fake = fake_with(Some("2"), exits(true, ONE_GPU), exits(true, GVISOR_LOG));
    let results = run_checks(&fake.client(), &gpu_options(), &gpu_expected()).await;
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "api-readyz",
            "nodes-ready",
            "system-pods",
            "dns",
            "pod-network",
            "gpu-allocatable",
            "gpu-pod",
            "gvisor-pod"
        ]
    );
    assert!(results.iter().all(|r| r.ok), "{results:#?}");
    assert_eq!(results[5].detail, "allocatable nvidia.com/gpu: w1: 2");
    assert!(
        results[6]
            .detail
            .contains("on w1 (RuntimeClass nvidia, 1 GPU): GPU 0: NVIDIA L4"),
        "{results:#?}"
    );
    assert!(
        results[7].detail.contains(GVISOR_DMESG) && results[7].detail.contains("on w2"),
        "{results:#?}"
    );

    let gpu = created(&fake, "nvidia-smi");
    assert_eq!(gpu["spec"]["runtimeClassName"], "nvidia");
    assert_eq!(gpu["spec"]["nodeName"], "w1");
    let container = &gpu["spec"]["containers"][0];
    assert_eq!(container["image"], GPU_IMAGE);
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "1");
    let gvisor = created(&fake, "dmesg");
    assert_eq!(gvisor["spec"]["runtimeClassName"], "gvisor");
    assert_eq!(gvisor["spec"]["nodeName"], "w2");
    assert_eq!(gvisor["spec"]["containers"][0]["image"], options().image);
    assert!(gvisor["spec"]["containers"][0]["resources"].is_null());
    // Every probe pod is gone again.
    assert!(fake.pod_names("kubegrid-checks").is_empty());
}

#[tokio::test]
async fn gpu_allocatable_names_the_node_what_it_advertises_and_what_was_detected() {
    let short = CheckOptions {
        nodes_timeout: SHORT,
        ..gpu_options()
    };
    let fake = fake_with(Some("1"), exits(true, ONE_GPU), exits(true, GVISOR_LOG));
    let results = run_checks(&fake.client(), &short, &gpu_expected()).await;
    let r = results
        .iter()
        .find(|r| r.name == "gpu-allocatable")
        .unwrap();
    assert!(!r.ok);
    assert!(
        r.detail
            .contains("Node w1 advertises nvidia.com/gpu 1; expected 2 (detected on its PCI bus)"),
        "{r:#?}"
    );

    let fake = fake_with(None, exits(true, ONE_GPU), exits(true, GVISOR_LOG));
    let results = run_checks(&fake.client(), &short, &gpu_expected()).await;
    let r = results
        .iter()
        .find(|r| r.name == "gpu-allocatable")
        .unwrap();
    assert!(!r.ok);
    assert!(
        r.detail
            .contains("Node w1 advertises no nvidia.com/gpu; expected 2")
            && r.detail
                .contains("hint: is NVIDIA's device plugin running there?"),
        "{r:#?}"
    );
}

#[tokio::test]
async fn a_gpu_pod_whose_nvidia_smi_fails_or_lists_other_than_one_gpu_fails_with_its_log() {
    let smi_failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n";
    let fake = fake_with(Some("2"), exits(false, smi_failed), exits(true, GVISOR_LOG));
    let results = run_checks(&fake.client(), &gpu_options(), &gpu_expected()).await;
    let r = results.iter().find(|r| r.name == "gpu-pod").unwrap();
    assert!(!r.ok);
    assert!(
        r.detail
            .contains("nvidia-smi -L failed in pod kubegrid-checks/")
            && r.detail.contains("(phase Failed)")
            && r.detail
                .contains("couldn't communicate with the NVIDIA driver"),
        "{r:#?}"
    );

    let two =
        format!("{ONE_GPU}GPU 1: NVIDIA L4 (UUID: GPU-00000000-0000-0000-0000-000000000001)\n");
    let fake = fake_with(Some("2"), exits(true, &two), exits(true, GVISOR_LOG));
    let results = run_checks(&fake.client(), &gpu_options(), &gpu_expected()).await;
    let r = results.iter().find(|r| r.name == "gpu-pod").unwrap();
    assert!(!r.ok);
    assert!(
        r.detail.contains("nvidia-smi -L listed 2 GPUs; expected 1"),
        "{r:#?}"
    );

    // Without an image to run it in, the check says so instead of guessing one.
    let fake = fake_with(Some("2"), exits(true, ONE_GPU), exits(true, GVISOR_LOG));
    let results = run_checks(&fake.client(), &options(), &gpu_expected()).await;
    let r = results.iter().find(|r| r.name == "gpu-pod").unwrap();
    assert!(
        !r.ok && r.detail.contains("no image to run nvidia-smi in"),
        "{r:#?}"
    );
}

#[tokio::test]
async fn a_gvisor_pod_that_shows_the_host_kernel_fails() {
    let host_kernel =
        "[    0.000000] Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org)\n";
    let fake = fake_with(Some("2"), exits(true, ONE_GPU), exits(true, host_kernel));
    let results = run_checks(&fake.client(), &gpu_options(), &gpu_expected()).await;
    let r = results.iter().find(|r| r.name == "gvisor-pod").unwrap();
    assert!(!r.ok);
    assert!(
        r.detail.contains(
            "dmesg shows no `Starting gVisor`, so the pod did not run on gVisor's kernel"
        ) && r.detail.contains("Linux version 6.1.0"),
        "{r:#?}"
    );
}
