//! A `pvc://` model: the pod mounts the claim read-only and its `verify-model` init
//! container, run here with this machine's python3 as the kubelet would run it (the
//! rendered command, in the rendered working directory), passes only when every listed
//! file has its sha256.

use std::{path::Path, process::Output};

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::render::pvc_service;

fn sha(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `init`'s command in `dir`, standing for its `workingDir`.
fn run(init: &Value, dir: &Path) -> Output {
    let cmd: Vec<String> = serde_json::from_value(init["command"].clone()).unwrap();
    std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .output()
        .expect("python3")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_claim_is_mounted_read_only_in_place_of_the_node_cache() {
    let deployment = kubegrid_serving::render::deployment(&pvc_service());
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0],
        json!({"name": "model", "persistentVolumeClaim": {"claimName": "weights", "readOnly": true}})
    );
    let mount =
        json!({"name": "model", "mountPath": "/models", "readOnly": true, "subPath": "llama-8b"});
    assert_eq!(pod["containers"][0]["volumeMounts"][0], mount);
    assert_eq!(pod["containers"][0]["args"][0], "/models");
    let init = &pod["initContainers"][0];
    assert_eq!(init["name"], "verify-model");
    assert_eq!(init["workingDir"], "/models");
    assert_eq!(init["volumeMounts"][0], mount);
    // No node holds a claim's model in its cache, so none is preferred.
    assert!(pod.get("affinity").is_none(), "{pod}");
    assert!(!deployment.to_string().contains("hostPath"));
}

#[test]
fn verify_model_passes_only_when_every_file_has_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let config = br#"{"model_type":"llama"}"#.to_vec();
    let weights = vec![7u8; 3 << 20];
    // A path with a space and a newline: arguments carry it whole.
    let odd = "shards/odd name\n.bin";
    std::fs::create_dir(dir.path().join("shards")).unwrap();
    std::fs::write(dir.path().join("config.json"), &config).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &weights).unwrap();
    std::fs::write(dir.path().join(odd), b"odd").unwrap();
    let spec_for = |files: Value| {
        let mut svc = pvc_service();
        svc.spec.model.files = serde_json::from_value(files).unwrap();
        let d = kubegrid_serving::render::deployment(&svc);
        d["spec"]["template"]["spec"]["initContainers"][0].clone()
    };
    let files = json!([
        {"path": "config.json", "sha256": sha(&config)},
        {"path": "model.safetensors", "sha256": sha(&weights)},
        {"path": odd, "sha256": sha(b"odd")},
    ]);
    let out = run(&spec_for(files.clone()), dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("3 files verified"), "{}", text(&out));

    // One changed byte in the weights, and a listed file the claim lacks.
    let mut changed = weights.clone();
    changed[1 << 20] ^= 1;
    std::fs::write(dir.path().join("model.safetensors"), &changed).unwrap();
    let mut with_missing = files.clone();
    with_missing
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "tokenizer.json", "sha256": sha(b"{}")}));
    let out = run(&spec_for(with_missing), dir.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "'model.safetensors': sha256 {}, expected {}",
            sha(&changed),
            sha(&weights)
        )),
        "{said}"
    );
    assert!(
        said.contains("'tokenizer.json': No such file or directory"),
        "{said}"
    );
    assert!(said.contains("2 of 4 files failed"), "{said}");
    assert!(!said.contains("verified"), "{said}");
}
