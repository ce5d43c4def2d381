//! The CRDs on a REAL API server (k8s.io/apiextensions-apiserver 1.36 on etcd, built from
//! Debian's Go packages by e2e/real-apiserver/build.sh): they become Established, their rule
//! cost fits the server's budget, and every example that the `cel` crate and the code
//! validation judge (schema_rules.rs, confine.rs) gets the same verdict, field by field, from
//! the server, with each failed rule's own message. Any disagreement between the three fails.
//!
//! Creates are server-side dry runs; an update first creates the old objects for real, then
//! replaces them with a dry run, so transition rules see `oldSelf`.

use std::collections::{BTreeMap, BTreeSet};

use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::ApiResource,
};
use kubegrid_real_apiserver::{RealApiServer, mirror::kubegrid_resources};
use serde_json::Value as Json;

use crate::{
    confine::RULE_CASES,
    schema_rules::{
        CREATE_CASES, Checker, UPDATE_CASES, Verdict, code_create, code_update, edit, good,
        versions,
    },
};

/// A real server with kubegrid's CRDs applied and Established, or `None` (SKIPPED) outside
/// CI without the build.
pub(crate) async fn server_with_crds(test: &str) -> Option<RealApiServer> {
    let server = RealApiServer::for_test(test).await?;
    server.apply_crds(&kubegrid_api::crds()).await.unwrap();
    Some(server)
}

/// The API resource of a kubegrid kind.
pub(crate) fn resource(kind: &str) -> ApiResource {
    kubegrid_resources()
        .into_iter()
        .find(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("not a kubegrid kind: {kind}"))
}

/// The documents of a spec text as JSON objects, in namespace `ns`.
pub(crate) fn documents(text: &str, ns: &str) -> Vec<Json> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let mut value = serde_json::to_value(
                <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap(),
            )
            .unwrap();
            value["metadata"]["namespace"] = Json::String(ns.into());
            value
        })
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn id(doc: &Json) -> (String, String) {
    (
        doc["kind"].as_str().unwrap().to_owned(),
        doc["metadata"]["name"].as_str().unwrap().to_owned(),
    )
}

/// What the server said about one example: the refused `(resource, field)` pairs and every
/// cause's message.
#[derive(Debug, Default)]
struct Answer {
    verdict: Verdict,
    messages: Vec<String>,
}

impl Answer {
    fn record(&mut self, resource: &str, result: Result<DynamicObject, kube::Error>) {
        let status = match result {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 422 => status,
            Err(other) => panic!("{resource}: expected success or 422 Invalid, got {other:?}"),
        };
        let causes = status.details.map(|d| d.causes).unwrap_or_default();
        assert!(!causes.is_empty(), "{resource}: 422 without causes");
        for cause in causes {
            // "<nil>" marks the note that some rules were skipped after a schema error.
            if cause.field != "<nil>" {
                self.verdict.insert((resource.to_owned(), cause.field));
            }
            self.messages.push(cause.message);
        }
    }
}

/// The server's answer on `text` as created (dry run), or as a replacement of `old`'s
/// objects of the same name (created for real in `ns` first).
async fn ask(server: &RealApiServer, text: &str, old: Option<&str>, ns: &str) -> Answer {
    let client = server.client();
    let mut existing = BTreeMap::new();
    for doc in old.map(|o| documents(o, ns)).unwrap_or_default() {
        let (kind, name) = id(&doc);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(&kind));
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        let created = api.create(&PostParams::default(), &object).await;
        let created = created.unwrap_or_else(|e| panic!("old {kind}/{name} in {ns}: {e}"));
        existing.insert((kind, name), created.metadata.resource_version.unwrap());
    }
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut answer = Answer::default();
    for doc in documents(text, ns) {
        let (kind, name) = id(&doc);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(&kind));
        let mut object: DynamicObject = serde_json::from_value(doc).unwrap();
        let result = match existing.get(&(kind.clone(), name.clone())) {
            Some(version) => {
                object.metadata.resource_version = Some(version.clone());
                api.replace(&name, &dry_run, &object).await
            }
            None => api.create(&dry_run, &object).await,
        };
        answer.record(&format!("{kind}/{name}"), result);
    }
    answer
}

/// The messages of every rule, by rule text, from the CRDs as shipped (one text, such as
/// `self == oldSelf`, serves at several places with different messages).
fn rule_messages() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(node: &Json, out: &mut BTreeMap<String, BTreeSet<String>>) {
        if let Some(rules) = node
            .get("x-kubernetes-validations")
            .and_then(Json::as_array)
        {
            for rule in rules {
                out.entry(rule["rule"].as_str().unwrap().to_owned())
                    .or_default()
                    .insert(rule["message"].as_str().unwrap_or_default().to_owned());
            }
        }
        match node {
            Json::Object(map) => map.values().for_each(|v| walk(v, out)),
            Json::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for crd in kubegrid_api::crds() {
        walk(&serde_json::to_value(&crd).unwrap(), &mut out);
    }
    out
}

/// One example, judged three ways.
struct Case {
    label: String,
    text: String,
    old: Option<String>,
    /// Only these resources' verdicts are compared (None: all).
    only: Option<&'static str>,
}

#[tokio::test]
async fn the_real_server_the_cel_crate_and_the_code_agree_on_every_example() {
    let test = "the_real_server_the_cel_crate_and_the_code_agree_on_every_example";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    let mut cases = Vec::new();
    for (from, to, _, _) in CREATE_CASES.iter().chain(RULE_CASES) {
        cases.push(Case {
            label: format!("create with `{to}`"),
            text: edit(from, to),
            old: None,
            only: None,
        });
    }
    let (accepted, refused) = versions();
    for version in accepted.iter().chain(&refused) {
        cases.push(Case {
            label: format!("create with kubernetesVersion `{version}`"),
            text: edit(
                "kubernetesVersion: v1.31.4",
                &format!("kubernetesVersion: '{version}'"),
            ),
            old: None,
            only: None,
        });
    }
    for (from, to, _, _) in UPDATE_CASES {
        cases.push(Case {
            label: format!("update to `{to}`"),
            text: edit(from, to),
            old: Some(good().to_owned()),
            only: None,
        });
    }
    // Nodes moved to another Cluster (renamed with them, so the new Cluster is a create).
    cases.push(Case {
        label: "Nodes moved to Cluster gpu-next".into(),
        text: good()
            .replace("name: gpu-prod", "name: gpu-next")
            .replace("clusterName: gpu-prod", "clusterName: gpu-next"),
        old: Some(good().to_owned()),
        only: Some("Node/"),
    });
    let checker = Checker::new();
    let messages = rule_messages();
    let mut disagreements = Vec::new();
    let mut refusals = 0;
    for (i, case) in cases.iter().enumerate() {
        let ns = format!("case-{i}");
        let answer = ask(&server, &case.text, case.old.as_deref(), &ns).await;
        let (schema, failed_rules) = checker.schema(&case.text, case.old.as_deref());
        let code = match &case.old {
            None => code_create(&case.text),
            Some(old) => code_update(old, &case.text),
        };
        let keep = |v: Verdict| -> Verdict {
            v.into_iter()
                .filter(|(r, _)| case.only.is_none_or(|p| r.starts_with(p)))
                .collect()
        };
        let (real, schema, code) = (keep(answer.verdict), keep(schema), keep(code));
        if real != schema || real != code {
            disagreements.push(format!(
                "{}:\n  real server: {real:?}\n  cel crate:   {schema:?}\n  code:        {code:?}\n  server said: {:?}",
                case.label, answer.messages
            ));
        }
        if !real.is_empty() {
            refusals += 1;
        }
        // Each rule that failed in the cel crate was refused on the server with its message.
        for rule in failed_rules {
            let Some(candidates) = messages.get(&rule) else {
                // The cel crate's harness names the OpenAPI bounds it checks by keyword.
                assert!(
                    matches!(rule.as_str(), "minimum" | "maximum" | "maxLength"),
                    "rule `{rule}` is not in the shipped CRDs"
                );
                continue;
            };
            if !answer
                .messages
                .iter()
                .any(|m| candidates.iter().any(|c| m.contains(c.as_str())))
            {
                disagreements.push(format!(
                    "{}: rule `{rule}` failed in the cel crate, but no server message holds its message {candidates:?}: {:?}",
                    case.label, answer.messages
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} examples disagree:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
    // The examples exercise the server: most are refusals.
    assert!(refusals > cases.len() / 2, "{refusals} of {}", cases.len());
    eprintln!(
        "{} examples, {refusals} refused, same verdict from the real server, the cel crate and the code",
        cases.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn the_crds_fit_the_real_servers_cel_cost_budget_and_a_costlier_rule_is_refused() {
    let test = "the_crds_fit_the_real_servers_cel_cost_budget_and_a_costlier_rule_is_refused";
    // Applying them is the server's own budget check: it refuses a CRD over the limit.
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    // A rule that compares every registry mirror with every other through a regex has no
    // bound the estimator can use (the list has no maxItems, the strings no maxLength).
    let [mut cluster, _] = kubegrid_api::crds();
    let spec = cluster.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .and_then(|s| s.properties.as_mut())
        .and_then(|p| p.get_mut("spec"))
        .unwrap();
    spec.x_kubernetes_validations
        .get_or_insert_with(Vec::new)
        .push(serde_json::from_value(serde_json::json!({
            "rule": "self.containerRuntime.registryMirrors.all(a, self.containerRuntime.registryMirrors.all(b, a.endpoint.matches(b.registry)))",
            "message": "costly",
        })).unwrap());
    let api: Api<kubegrid_api::CustomResourceDefinition> = Api::all(server.client());
    let refused = api
        .replace(
            "clusters.kubegrid.io",
            &PostParams::default(),
            &with_version(&api, cluster).await,
        )
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("estimated rule cost exceeds budget"),
        "expected the cost refusal, got: {text}"
    );
    server.stop().await;
}

/// `crd` with the stored CRD's resourceVersion, for a replace.
async fn with_version(
    api: &Api<kubegrid_api::CustomResourceDefinition>,
    mut crd: kubegrid_api::CustomResourceDefinition,
) -> kubegrid_api::CustomResourceDefinition {
    let stored = api
        .get(crd.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    crd.metadata.resource_version = stored.metadata.resource_version;
    crd
}

#[tokio::test]
async fn immutable_fields_are_refused_on_update_by_the_real_server() {
    let test = "immutable_fields_are_refused_on_update_by_the_real_server";
    let Some(server) = server_with_crds(test).await else {
        return;
    };
    // For real, not a dry run: the update that changes nothing immutable goes through and
    // the object keeps the new value; one that does is refused and the stored object keeps
    // the old one.
    let ns = "immutable";
    let answer = ask(&server, good(), None, ns).await;
    assert!(answer.verdict.is_empty(), "{answer:?}");
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(server.client(), ns, &resource("Cluster"));
    let object: DynamicObject = serde_json::from_value(documents(good(), ns).remove(0)).unwrap();
    let created = clusters
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let mut moved = created.clone();
    moved.data["spec"]["network"]["podCIDR"] = "10.240.0.0/16".into();
    let refused = clusters
        .replace("gpu-prod", &PostParams::default(), &moved)
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("spec.network.podCIDR") && text.contains("is immutable"),
        "{text}"
    );
    let mut upgraded = created.clone();
    upgraded.data["spec"]["kubernetesVersion"] = "v1.32.0".into();
    clusters
        .replace("gpu-prod", &PostParams::default(), &upgraded)
        .await
        .unwrap();
    let stored = clusters.get("gpu-prod").await.unwrap();
    assert_eq!(stored.data["spec"]["kubernetesVersion"], "v1.32.0");
    assert_eq!(stored.data["spec"]["network"]["podCIDR"], "10.244.0.0/16");
    let seen: BTreeSet<String> = answer.messages.into_iter().collect();
    assert!(seen.is_empty(), "{seen:?}");
    server.stop().await;
}
