//! `kubegrid crd`, and the Helm chart's copies of its output.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

const REGENERATE: &str = "cargo run -p kubegrid -- crd --output-dir charts/kubegrid/crds";
const FILES: [&str; 2] = ["clusters.kubegrid.io.yaml", "nodes.kubegrid.io.yaml"];

fn kubegrid(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .output()
        .expect("run kubegrid");
    assert!(
        out.status.success(),
        "kubegrid {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chart_crds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("charts/kubegrid/crds")
}

/// A written file without its generated-by comment line, i.e. the bare YAML document.
fn document(file: &str) -> &str {
    match file.split_once('\n') {
        Some((first, rest)) if first.starts_with('#') => rest,
        _ => file,
    }
}

#[test]
fn the_charts_crds_are_what_kubegrid_crd_writes() {
    let dir = tempfile::tempdir().unwrap();
    kubegrid(&["crd", "--output-dir", dir.path().to_str().unwrap()]);
    for name in FILES {
        let fresh = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let chart = chart_crds().join(name);
        let kept = std::fs::read_to_string(&chart).unwrap_or_else(|err| {
            panic!(
                "cannot read {}: {err}; create it with `{REGENERATE}`",
                chart.display()
            )
        });
        assert!(
            kept == fresh,
            "{} is stale: it differs from what `kubegrid crd` writes now. Regenerate it with \
             `{REGENERATE}` and commit the result.",
            chart.display()
        );
    }
}

#[test]
fn stdout_holds_both_crds_cluster_first_as_the_files_do() {
    let printed = String::from_utf8(kubegrid(&["crd"]).stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    kubegrid(&["crd", "--output-dir", dir.path().to_str().unwrap()]);
    let files: Vec<String> = FILES
        .iter()
        .map(|name| std::fs::read_to_string(dir.path().join(name)).unwrap())
        .collect();
    assert!(
        files[0].contains("\n  name: clusters.kubegrid.io\n"),
        "{}",
        files[0]
    );
    assert!(
        files[1].contains("\n  name: nodes.kubegrid.io\n"),
        "{}",
        files[1]
    );
    let documents: Vec<&str> = files.iter().map(|f| document(f)).collect();
    assert_eq!(printed, documents.join("---\n"));
}

#[test]
fn the_crds_carry_the_printer_columns_and_the_status_subresource() {
    let out = kubegrid(&["crd", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "clusters.kubegrid.io");
    assert_eq!(list["items"][1]["metadata"]["name"], "nodes.kubegrid.io");
    let columns = |i: usize| -> Vec<(String, String)> {
        let version = &list["items"][i]["spec"]["versions"][0];
        assert!(version["subresources"]["status"].is_object());
        version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["jsonPath"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pairs = |want: &[(&str, &str)]| -> Vec<(String, String)> {
        want.iter()
            .map(|(n, p)| (n.to_string(), p.to_string()))
            .collect()
    };
    assert_eq!(
        columns(0),
        pairs(&[
            ("Phase", ".status.phase"),
            ("Version", ".status.kubernetesVersion"),
            ("Ready", ".status.nodes.ready"),
            ("Nodes", ".status.nodes.total"),
            ("Age", ".metadata.creationTimestamp"),
        ])
    );
    assert_eq!(
        columns(1),
        pairs(&[
            ("Cluster", ".spec.clusterName"),
            ("Roles", ".status.roles"),
            ("Address", ".spec.address"),
            ("Arch", ".status.facts.arch"),
            ("Desired", ".status.desiredState"),
            ("Current", ".status.phase"),
            ("Age", ".metadata.creationTimestamp"),
        ])
    );
}

#[test]
fn crd_serving_prints_the_serving_crds_alone() {
    let out = kubegrid(&["crd", "--serving"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!(
            "{}---\n{}",
            kubegrid_serving::crd_yaml().unwrap(),
            kubegrid_serving::prewarm_crd_yaml().unwrap()
        )
    );
    let out = kubegrid(&["--output", "json", "crd", "--serving"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "llmservices.serving.kubegrid.io",
            "modelprewarms.serving.kubegrid.io"
        ]
    );
}
