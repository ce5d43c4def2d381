//! What a kubectl user sees on a REAL API server (apiextensions-apiserver 1.36 with the
//! kubectl 1.36 of the same Debian build): `kubectl apply` of the CRDs prints no warning,
//! and `kubectl get` prints every printer column as a plain value, exactly as the docs show.

use std::{path::Path, process::Output};

use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use kubegrid_real_apiserver::RealApiServer;
use serde_json::{Value as Json, json};

use crate::real_server::{documents, resource, server_with_crds};

/// The repository root.
pub(crate) fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn run(mut command: std::process::Command) -> Output {
    let shown = format!("{command:?}");
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{shown}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test]
async fn kubectl_apply_of_kubegrid_crd_output_is_silent_and_both_crds_become_established() {
    let test = "kubectl_apply_of_kubegrid_crd_output_is_silent_and_both_crds_become_established";
    let Some(server) = RealApiServer::for_test(test).await else {
        return;
    };
    // The files `kubegrid crd --output-dir` writes.
    let dir = tempfile::tempdir().unwrap();
    for crd in kubegrid_api::crds() {
        std::fs::write(
            dir.path().join(kubegrid_api::crd_file_name(&crd)),
            kubegrid_api::crd_yaml(&crd).unwrap(),
        )
        .unwrap();
    }
    let mut apply = server.kubectl();
    apply.arg("apply").arg("-f").arg(dir.path());
    let output = run(apply);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.trim().is_empty(),
        "kubectl apply must be silent; it printed:\n{stderr}"
    );
    let mut wait = server.kubectl();
    wait.args([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/clusters.kubegrid.io",
        "crd/nodes.kubegrid.io",
    ]);
    run(wait);
    server.stop().await;
}

/// The ```text block that follows `marker` in `file`: the printed tables the docs show.
fn documented_tables(file: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let after = &text[text
        .find(marker)
        .unwrap_or_else(|| panic!("{file}: no `{marker}`"))..];
    let start = after.find("```text\n").unwrap() + "```text\n".len();
    let end = start + after[start..].find("```").unwrap();
    after[start..end].to_owned()
}

/// A printed table as rows of cells, without the AGE column (its value is the object's age).
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut row: Vec<String> = l.split_whitespace().map(String::from).collect();
            row.pop().unwrap_or_else(|| panic!("an empty row: {l}"));
            row
        })
        .collect()
}

/// Creates the docs' example Cluster and Nodes in `ns` and gives them the status the
/// operator's end-to-end test leaves after installing two hosts.
async fn example_objects(server: &RealApiServer, ns: &str) {
    let text = std::fs::read_to_string(repo().join("docs/operator.md")).unwrap();
    let start = text.find("## An example").unwrap();
    let block = &text[start..];
    let yaml_start = block.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &block[yaml_start..yaml_start + block[yaml_start..].find("```").unwrap()];
    for doc in documents(yaml, ns) {
        let kind = doc["kind"].as_str().unwrap().to_owned();
        if kind != "Cluster" && kind != "Node" {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(server.client(), ns, &resource(&kind));
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        let created = api.create(&PostParams::default(), &object).await.unwrap();
        let name = created.metadata.name.clone().unwrap();
        let status = if kind == "Cluster" {
            json!({"phase": "Ready", "kubernetesVersion": "v1.31.4", "nodes": {"total": 2, "ready": 2}})
        } else {
            let roles = created.data["spec"]["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(",");
            json!({"phase": "Ready", "desiredState": "Present", "facts": {"arch": "amd64"}, "roles": roles})
        };
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn kubectl_get_prints_every_column_as_a_plain_value_as_the_docs_show() {
    let test = "kubectl_get_prints_every_column_as_a_plain_value_as_the_docs_show";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    let ns = "fleet";
    example_objects(&server, ns).await;
    let mut printed = String::new();
    for kind in ["kgc", "kgn"] {
        let mut get = server.kubectl();
        get.args(["get", kind, "-n", ns]);
        let output = run(get);
        printed.push_str(&String::from_utf8_lossy(&output.stdout));
        printed.push('\n');
    }
    eprintln!("kubectl 1.36 printed:\n{printed}");
    for (file, marker) in [
        ("docs/operator.md", "print the CRDs' columns:"),
        ("README.md", "show the CRDs' printer columns."),
    ] {
        assert_eq!(
            cells(&documented_tables(file, marker)),
            cells(&printed),
            "{file} must show what kubectl prints (AGE aside):\n{printed}"
        );
    }
    // Every cell of every column, straight from the server's Table: no list or object.
    for kind in ["Cluster", "Node"] {
        let r = resource(kind);
        let request = http::Request::get(format!(
            "/apis/kubegrid.io/v1alpha1/namespaces/{ns}/{}",
            r.plural
        ))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
        let table: Json = server.client().request(request).await.unwrap();
        let columns: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for row in table["rows"].as_array().unwrap() {
            for (column, cell) in columns.iter().zip(row["cells"].as_array().unwrap()) {
                let plain = match cell {
                    Json::String(s) => !s.starts_with('[') && !s.starts_with('{'),
                    Json::Array(_) | Json::Object(_) => false,
                    _ => true,
                };
                assert!(plain, "{kind} column {column} shows {cell}");
                assert!(!cell.is_null(), "{kind} column {column} is empty");
            }
        }
    }
    server.stop().await;
}
