//! The GPU and runtime cluster objects (templates/gpu-objects/): golden files for each
//! template and case, what each case must contain, the images pinned in the shipped
//! sources.yaml, and every rendered manifest through kubernetes-validate.

use std::{fs, path::Path};

use kubegrid_plan::{
    ClusterContext, DCGM_EXPORTER_IMAGE, DEVICE_PLUGIN_IMAGE, GpuContext, GpuImages, ImageRef,
    cluster_objects, dcgm_exporter, device_plugin, gpu_operator_values, runtime_classes,
};
use serde_json::json;
use serde_yaml::Value;

use crate::{
    common::assert_golden,
    k8s_validate::{validate, venv},
};

/// The release whose images the goldens pin.
const RELEASE: &str = "1.34.2";

fn golden(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/gpu-objects")
        .join(name);
    assert_golden(&path, text);
}

fn gpu(device_plugin: &str, mig: &str) -> GpuContext {
    GpuContext {
        driver_source: "packages".into(),
        driver_branch: Some("550".into()),
        driver_version: "550.127.05".into(),
        toolkit_version: "1.17.8".into(),
        fabric_manager: "auto".into(),
        device_plugin: device_plugin.into(),
        mig_strategy: mig.into(),
        validation: true,
        operator_values: None,
    }
}

fn cluster(runtimes: &[&str], gpu: Option<GpuContext>) -> ClusterContext {
    let mut c = ClusterContext::new("gpu-lab", "2.1").unwrap();
    c.runtimes = runtimes.iter().map(|r| r.to_string()).collect();
    c.gpu = gpu;
    c
}

/// The image `name` as the shipped sources.yaml pins it for [`RELEASE`].
fn shipped_image(name: &str) -> ImageRef {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../offline-bundle/sources.yaml");
    let sources: Value = serde_yaml::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    let images = sources["releases"][RELEASE]["images"]
        .as_sequence()
        .unwrap();
    let image = images
        .iter()
        .find(|i| i["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("sources.yaml release {RELEASE} does not pin {name}"));
    let arches: Vec<&str> = image["arches"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"], "{name}");
    ImageRef::new(
        name,
        image["tag"].as_str().unwrap(),
        image["digest"].as_str().unwrap(),
    )
    .unwrap()
}

fn images() -> GpuImages {
    GpuImages {
        device_plugin: shipped_image(DEVICE_PLUGIN_IMAGE),
        dcgm_exporter: shipped_image(DCGM_EXPORTER_IMAGE),
    }
}

/// The YAML documents of a rendered manifest.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &Value| !d.is_null())
        .collect()
}

/// (name, rendered text) of every manifest the cases render, for the goldens and validation.
fn manifests() -> Vec<(&'static str, String)> {
    let all = cluster(
        &["runc", "nvidia", "gvisor", "crun", "kata-qemu", "kata-clh"],
        Some(gpu("nvidia-device-plugin", "none")),
    );
    let no_kata = cluster(&["runc", "nvidia", "gvisor"], None);
    let images = images();
    vec![
        (
            "runtime-classes.all.yaml",
            runtime_classes(&all).unwrap().unwrap(),
        ),
        (
            "runtime-classes.no-kata.yaml",
            runtime_classes(&no_kata).unwrap().unwrap(),
        ),
        (
            "nvidia-device-plugin.mig-none.yaml",
            device_plugin(&gpu("nvidia-device-plugin", "none"), &images.device_plugin).unwrap(),
        ),
        (
            "nvidia-device-plugin.mig-mixed.yaml",
            device_plugin(&gpu("nvidia-device-plugin", "mixed"), &images.device_plugin).unwrap(),
        ),
        (
            "dcgm-exporter.yaml",
            dcgm_exporter(&gpu("nvidia-device-plugin", "none"), &images.dcgm_exporter).unwrap(),
        ),
    ]
}

fn user_values() -> serde_json::Value {
    json!({
        "driver": {"enabled": true, "version": "570.86.15"},
        "toolkit": true,
        "mig": {"strategy": "single"},
        "dcgmExporter": {"serviceMonitor": {"enabled": true}},
        "operator": {"defaultRuntime": "containerd", "resources": {"limits": {"memory": "512Mi"}}},
    })
}

#[test]
fn gpu_object_manifests_match_golden() {
    for (name, text) in manifests() {
        golden(name, &text);
    }
}

#[test]
fn gpu_operator_values_match_golden() {
    golden(
        "gpu-operator-values.default.yaml",
        &gpu_operator_values(&gpu("gpu-operator", "mixed")).unwrap(),
    );
    let mut with_user = gpu("gpu-operator", "mixed");
    with_user.operator_values = Some(user_values());
    golden(
        "gpu-operator-values.user-values.yaml",
        &gpu_operator_values(&with_user).unwrap(),
    );
}

#[test]
fn operator_values_cannot_turn_the_driver_or_the_toolkit_on() {
    let mut spec = gpu("gpu-operator", "mixed");
    spec.operator_values = Some(user_values());
    let values: Value = serde_yaml::from_str(&gpu_operator_values(&spec).unwrap()).unwrap();
    assert_eq!(values["driver"]["enabled"], Value::Bool(false));
    assert_eq!(values["toolkit"]["enabled"], Value::Bool(false));
    // The spec's MIG strategy wins over the values'.
    assert_eq!(values["mig"]["strategy"].as_str(), Some("mixed"));
    // The rest of the user's values are kept, merged key by key with kubegrid's.
    assert_eq!(values["driver"]["version"].as_str(), Some("570.86.15"));
    assert_eq!(
        values["dcgmExporter"]["serviceMonitor"]["enabled"],
        Value::Bool(true)
    );
    assert_eq!(
        values["operator"]["defaultRuntime"].as_str(),
        Some("containerd")
    );
    assert_eq!(
        values["operator"]["resources"]["limits"]["memory"].as_str(),
        Some("512Mi")
    );
}

#[test]
fn runtime_classes_carry_overhead_and_node_selectors() {
    let all = &manifests()[0].1;
    let docs = documents(all);
    let by_name = |name: &str| {
        docs.iter()
            .find(|d| d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no RuntimeClass {name} in\n{all}"))
    };
    assert_eq!(
        docs.len(),
        5,
        "nvidia, gvisor, crun, kata-qemu, kata-clh; runc needs none"
    );
    assert!(!docs.iter().any(|d| d["metadata"]["name"] == "runc"));
    for doc in &docs {
        assert_eq!(doc["apiVersion"].as_str(), Some("node.k8s.io/v1"));
        assert_eq!(doc["handler"], doc["metadata"]["name"]);
    }
    let nvidia = by_name("nvidia");
    assert_eq!(
        nvidia["scheduling"]["nodeSelector"]["nvidia.com/gpu.present"].as_str(),
        Some("true")
    );
    assert!(nvidia["overhead"].is_null());
    for (kata, memory) in [("kata-qemu", "160Mi"), ("kata-clh", "130Mi")] {
        let class = by_name(kata);
        assert_eq!(
            class["overhead"]["podFixed"]["memory"].as_str(),
            Some(memory)
        );
        assert_eq!(class["overhead"]["podFixed"]["cpu"].as_str(), Some("250m"));
        assert_eq!(
            class["scheduling"]["nodeSelector"]["katacontainers.io/kata-runtime"].as_str(),
            Some("true")
        );
    }
    // Debian-family hosts only: the Nodes kubegrid labels where it configured the handler.
    for (plain, label) in [
        ("gvisor", "kubegrid.io/runtime-gvisor"),
        ("crun", "kubegrid.io/runtime-crun"),
    ] {
        assert!(by_name(plain)["overhead"].is_null(), "{plain}");
        assert_eq!(
            by_name(plain)["scheduling"]["nodeSelector"][label].as_str(),
            Some("true"),
            "{plain}"
        );
    }
}

#[test]
fn runtime_classes_only_where_a_handler_needs_one() {
    assert_eq!(runtime_classes(&cluster(&["runc"], None)).unwrap(), None);
    // The GPU Operator overwrites an `nvidia` RuntimeClass it finds, so kubegrid leaves it.
    let operator = cluster(
        &["runc", "nvidia", "gvisor"],
        Some(gpu("gpu-operator", "none")),
    );
    let docs = documents(&runtime_classes(&operator).unwrap().unwrap());
    let names: Vec<_> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gvisor"]);
    let err = runtime_classes(&cluster(&["runc", "kata-clh-runtime-rs"], None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kata-clh-runtime-rs") && err.contains("no documented pod overhead"),
        "{err}"
    );
    let err = runtime_classes(&cluster(&["youki"], None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`youki`"), "{err}");
}

/// The device plugin's container in a rendered DaemonSet.
fn plugin_container(text: &str) -> Value {
    let docs = documents(text);
    assert_eq!(docs.len(), 1);
    docs[0]["spec"]["template"]["spec"]["containers"][0].clone()
}

fn env(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .map(|e| e["value"].as_str().unwrap().to_string())
}

#[test]
fn the_device_plugin_follows_the_mig_strategy() {
    let manifests = manifests();
    let none = plugin_container(&manifests[2].1);
    let mixed = plugin_container(&manifests[3].1);
    assert_eq!(env(&none, "MIG_STRATEGY").as_deref(), Some("none"));
    assert_eq!(env(&none, "NVIDIA_MIG_MONITOR_DEVICES"), None);
    assert_eq!(
        none["securityContext"]["capabilities"]["drop"][0].as_str(),
        Some("ALL")
    );
    assert_eq!(env(&mixed, "MIG_STRATEGY").as_deref(), Some("mixed"));
    assert_eq!(
        env(&mixed, "NVIDIA_MIG_MONITOR_DEVICES").as_deref(),
        Some("all")
    );
    assert_eq!(
        mixed["securityContext"]["capabilities"]["add"][0].as_str(),
        Some("SYS_ADMIN")
    );
}

#[test]
fn daemonsets_run_under_nvidia_on_gpu_nodes_pinned_by_digest() {
    let images = images();
    for (text, image) in [
        (&manifests()[2].1, &images.device_plugin),
        (&manifests()[4].1, &images.dcgm_exporter),
    ] {
        let ds = &documents(text)[0];
        assert_eq!(ds["kind"].as_str(), Some("DaemonSet"));
        assert_eq!(ds["metadata"]["namespace"].as_str(), Some("kube-system"));
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["runtimeClassName"].as_str(), Some("nvidia"));
        assert_eq!(
            pod["nodeSelector"]["nvidia.com/gpu.present"].as_str(),
            Some("true")
        );
        assert_eq!(
            pod["tolerations"][0]["key"].as_str(),
            Some("nvidia.com/gpu")
        );
        let reference = pod["containers"][0]["image"].as_str().unwrap();
        assert_eq!(reference, format!("{}@{}", image.name, image.digest));
        assert!(reference.contains("@sha256:"), "{reference}");
    }
    let plugin = &documents(&manifests()[2].1)[0];
    assert_eq!(
        plugin["spec"]["template"]["spec"]["priorityClassName"].as_str(),
        Some("system-node-critical")
    );
    let dcgm = documents(&manifests()[4].1);
    let service = dcgm.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(9400));
    assert_eq!(
        dcgm[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"].as_u64(),
        Some(9400)
    );
}

#[test]
fn each_device_plugin_choice_gets_its_objects() {
    let images = images();
    let runtimes = ["runc", "nvidia"];
    let plugin = cluster_objects(
        &cluster(&runtimes, Some(gpu("nvidia-device-plugin", "single"))),
        Some(&images),
    )
    .unwrap();
    assert!(plugin.runtime_classes.is_some() && plugin.device_plugin.is_some());
    assert!(plugin.dcgm_exporter.is_some() && plugin.gpu_operator_values.is_none());
    let err = cluster_objects(
        &cluster(&runtimes, Some(gpu("nvidia-device-plugin", "single"))),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs its image"), "{err}");

    let operator = cluster_objects(
        &cluster(&runtimes, Some(gpu("gpu-operator", "single"))),
        None,
    )
    .unwrap();
    assert!(operator.gpu_operator_values.is_some());
    assert!(operator.device_plugin.is_none() && operator.dcgm_exporter.is_none());
    // The operator owns the nvidia RuntimeClass, and no other handler needs one.
    assert!(operator.runtime_classes.is_none());

    let none = cluster_objects(&cluster(&runtimes, Some(gpu("none", "none"))), None).unwrap();
    assert!(none.device_plugin.is_none() && none.dcgm_exporter.is_none());
    assert!(none.gpu_operator_values.is_none() && none.runtime_classes.is_some());

    let without_gpu = cluster_objects(&cluster(&["runc", "gvisor"], None), None).unwrap();
    assert!(without_gpu.runtime_classes.is_some() && without_gpu.device_plugin.is_none());

    let err = cluster_objects(
        &cluster(&runtimes, Some(gpu("nvidia-device-plugin", "all"))),
        Some(&images),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("MIG strategy `all`") && err.contains("none, single, mixed"),
        "{err}"
    );
}

#[test]
fn gpu_manifests_pass_kubernetes_validate() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = manifests()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            fs::write(&path, text).unwrap();
            path
        })
        .collect();
    for version in ["1.31.4", RELEASE] {
        let (code, results) = validate(&venv, version, &files);
        let failed: Vec<_> = results.iter().filter(|r| r["status"] != "passed").collect();
        assert!(failed.is_empty() && code == 0, "{version}: {failed:#?}");
        // RuntimeClasses 5 + 2, two device plugins, the exporter's DaemonSet and Service.
        assert_eq!(results.len(), 11, "{version}: {results:#?}");
    }
}

#[test]
fn kubernetes_validate_refuses_a_broken_gpu_manifest() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broken = manifests()[2]
        .1
        .replace("runtimeClassName: nvidia", "runtimeClass: nvidia");
    let path = dir.path().join("plugin.yaml");
    fs::write(&path, broken).unwrap();
    let (code, results) = validate(&venv, RELEASE, &[path]);
    assert_eq!(code, 1);
    assert_eq!(results[0]["status"], "failed");
}
