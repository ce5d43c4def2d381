//! Every example in the README, docs/ and the chart's README that holds kubegrid resources,
//! applied to a REAL API server (Secrets and ConfigMaps go to the in-memory fake through the
//! harness's routing layer). An example for the operator applies as written. An example for
//! the CLI (it names files or variables of the machine that runs `kubegrid`) is refused by
//! the server for those CLI-only fields alone, each with the CLI-only message: the rest of it
//! is a valid custom resource.

use std::path::PathBuf;

use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use kubegrid_fake_apiserver::FakeCluster;
use serde_json::Value as Json;

use crate::{
    real_kubectl::repo,
    real_server::{documents, server_with_crds},
};

/// The fields a spec may hold only for the CLI.
const CLI_ONLY: &[&str] = &[
    "privateKeyFile",
    "publicKeyFile",
    "passwordEnv",
    "cniManifest",
];

/// Every ```yaml block with a kubegrid.io resource, with the file it is in.
fn examples() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = vec![
        repo().join("README.md"),
        repo().join("charts/kubegrid/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```yaml\n") {
            let body = &rest[start + "```yaml\n".len()..];
            let end = body.find("```").unwrap();
            if body[..end].contains("apiVersion: kubegrid.io/") {
                found.push((name.clone(), body[..end].to_owned()));
            }
            rest = &body[end + 3..];
        }
    }
    found
}

fn api_resource(doc: &Json) -> ApiResource {
    let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", doc["apiVersion"].as_str().unwrap()),
    };
    let kind = doc["kind"].as_str().unwrap();
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

#[tokio::test]
async fn every_example_applies_to_the_real_server_or_is_refused_only_for_cli_fields() {
    let test = "every_example_applies_to_the_real_server_or_is_refused_only_for_cli_fields";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    let found = examples();
    assert!(found.len() >= 3, "examples found: {found:?}");
    let mut report = Vec::new();
    for (i, (file, yaml)) in found.iter().enumerate() {
        // Each example in a namespace of its own (several name `fleet` and `gpu-prod`).
        let fake = FakeCluster::new();
        let client = server.routed_client(&fake, None);
        let default_ns = format!("example-{i}");
        let cli_fields: Vec<&str> = CLI_ONLY
            .iter()
            .copied()
            .filter(|f| yaml.contains(&format!("{f}:")))
            .collect();
        for doc in documents(yaml, &default_ns) {
            let ns = default_ns.as_str();
            let what = format!(
                "{file} example {i}: {}/{}",
                doc["kind"].as_str().unwrap(),
                doc["metadata"]["name"].as_str().unwrap()
            );
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), ns, &api_resource(&doc));
            let object: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
            let result = api.create(&PostParams::default(), &object).await;
            let doc_cli: Vec<&str> = cli_fields
                .iter()
                .copied()
                .filter(|f| doc.to_string().contains(&format!("\"{f}\"")))
                .collect();
            match (result, doc_cli.is_empty()) {
                (Ok(_), true) => report.push(format!("{what}: applied")),
                (Ok(_), false) => panic!("{what}: applied although it names {doc_cli:?}"),
                (Err(e), true) => panic!("{what}: refused: {e}"),
                (Err(kube::Error::Api(status)), false) => {
                    let causes = status.details.map(|d| d.causes).unwrap_or_default();
                    assert!(!causes.is_empty(), "{what}: {}", status.message);
                    for cause in &causes {
                        assert!(
                            doc_cli.iter().any(|f| cause.field.ends_with(f))
                                && cause.message.contains("is for the kubegrid CLI only"),
                            "{what}: refused for more than its CLI-only fields: {causes:?}"
                        );
                    }
                    report.push(format!("{what}: refused only for CLI fields {doc_cli:?}"));
                }
                (Err(e), false) => panic!("{what}: {e}"),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    server.stop().await;
}
