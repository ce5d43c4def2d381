//! `kubegrid serving-manifests`: the serving layer's objects for a cluster, refused unless
//! the image is pinned by digest, with a fresh fan-out token each time unless told not to.

use std::process::{Command, Output};

const IMAGE: &str = "ghcr.io/kubegrid/kubegrid@sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn kubegrid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .output()
        .unwrap()
}

fn documents(out: &Output) -> Vec<serde_yaml::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    text.split("---\n")
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect()
}

fn token(docs: &[serde_yaml::Value]) -> Option<String> {
    docs.iter()
        .find(|d| d["kind"] == "Secret")
        .map(|s| s["stringData"]["token"].as_str().unwrap().to_string())
}

#[test]
fn prints_the_crds_the_layer_and_a_fresh_token() {
    let out = kubegrid(&[
        "serving-manifests",
        "--image",
        IMAGE,
        "--cache-capacity",
        "500Gi",
    ]);
    let docs = documents(&out);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..2],
        ["CustomResourceDefinition", "CustomResourceDefinition"]
    );
    for k in [
        "Namespace",
        "ClusterRole",
        "Deployment",
        "DaemonSet",
        "Secret",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let first = token(&docs).unwrap();
    assert_eq!(first.len(), 64);
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    let again = token(&documents(&kubegrid(&[
        "serving-manifests",
        "--image",
        IMAGE,
    ])))
    .unwrap();
    assert_ne!(first, again, "each run draws a new token");
    let without = documents(&kubegrid(&[
        "serving-manifests",
        "--image",
        IMAGE,
        "--no-token",
    ]));
    assert_eq!(token(&without), None);
    let json = kubegrid(&[
        "-o",
        "json",
        "serving-manifests",
        "--image",
        IMAGE,
        "--no-token",
    ]);
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), without.len());
}

#[test]
fn an_image_not_pinned_by_digest_and_bad_flags_are_refused_with_exit_code_2() {
    for (args, says) in [
        (
            vec!["--image", "ghcr.io/kubegrid/kubegrid:0.1.0"],
            "is not pinned by digest",
        ),
        (
            vec!["--image", "kubegrid@sha256:abc"],
            "is not pinned by digest",
        ),
        (
            vec!["--image", IMAGE, "--gpu-node-label", "gpu"],
            "expected KEY=VALUE",
        ),
        (
            vec!["--image", IMAGE, "--cache-capacity", "big"],
            "is not a size",
        ),
    ] {
        let mut all = vec!["serving-manifests"];
        all.extend(&args);
        let out = kubegrid(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "nothing printed for {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
