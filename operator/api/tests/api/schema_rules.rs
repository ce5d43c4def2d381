//! The CRDs' schema rules, run for real: every `x-kubernetes-validations` rule is pulled out
//! of the generated CRDs and evaluated with the `cel` interpreter (transition rules with
//! `oldSelf`), next to the OpenAPI bounds the API server checks with them (`minimum`,
//! `maximum`, `maxLength`). Each example must get the same verdict, field by field, from
//! the schema as from the code validation (`Manifest::validate`, `validate_update`).

use std::{collections::BTreeSet, path::Path};

use kubegrid_api::{Error, Manifest, ValidateFor, crds};
use serde_json::Value as Json;

use crate::{cel_eval::Schema, common::GOOD};

/// [`GOOD`] as the operator takes it, which is how the API server sees a spec: the SSH key
/// from a Secret instead of a file of the operator's pod (the CRDs refuse such files).
pub(crate) fn good() -> &'static str {
    static OPERATOR_GOOD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        GOOD.replace(
            "    privateKeyFile: keys/id_ed25519\n",
            "    privateKeySecretRef: {name: gpu-prod-ssh}\n",
        )
    });
    &OPERATOR_GOOD
}

/// [`good`] with `from` replaced by `to` (which must occur exactly once).
pub(crate) fn edit(from: &str, to: &str) -> String {
    assert_eq!(good().matches(from).count(), 1, "`{from}` must occur once");
    good().replacen(from, to, 1)
}

/// The rules of both CRDs, and what they say about a spec file's resources.
pub(crate) struct Checker {
    cluster: Schema,
    node: Schema,
}

/// `(resource, field)` pairs: where the schema or the code found a problem.
pub(crate) type Verdict = BTreeSet<(String, String)>;

impl Checker {
    pub(crate) fn new() -> Self {
        // The CRDs as they ship (`kubegrid crd`, the chart), not `Cluster::crd()`.
        let [cluster, node] = crds();
        Self {
            cluster: Schema::of(&cluster),
            node: Schema::of(&node),
        }
    }

    /// What the schema says about `text`'s resources as created (or as updates of `old`'s
    /// resources of the same name), and which rules failed.
    pub(crate) fn schema(&self, text: &str, old: Option<&str>) -> (Verdict, BTreeSet<String>) {
        let new = manifest(text);
        let old = old.map(manifest);
        let mut verdict = Verdict::new();
        let mut rules = BTreeSet::new();
        let mut record = |resource: String, failed: BTreeSet<(String, String)>| {
            for (field, rule) in failed {
                verdict.insert((resource.clone(), field));
                rules.insert(rule);
            }
        };
        let old_cluster = old.as_ref().map(|o| json(o.cluster()));
        record(
            format!("Cluster/{}", new.name()),
            self.cluster
                .failures(&json(new.cluster()), old_cluster.as_ref()),
        );
        for node in new.nodes() {
            let old_node = old.as_ref().and_then(|o| {
                o.nodes()
                    .iter()
                    .find(|n| n.metadata.name == node.metadata.name)
            });
            record(
                format!("Node/{}", node.metadata.name.as_deref().unwrap()),
                self.node.failures(&json(node), old_node.map(json).as_ref()),
            );
        }
        (verdict, rules)
    }
}

fn manifest(text: &str) -> Manifest {
    kubegrid_api::parse(text, Path::new("/specs/cluster.yaml")).unwrap()
}

/// The object as stored: serde applies the defaults that the API server's defaulting would.
fn json<T: serde::Serialize>(object: &T) -> Json {
    serde_json::to_value(object).unwrap()
}

fn fields(result: Result<(), Error>) -> Verdict {
    match result {
        Ok(()) => Verdict::new(),
        Err(Error::Invalid { problems }) => problems
            .into_iter()
            .map(|p| (p.resource, p.field))
            .collect(),
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

/// What the code says about `text` as created.
pub(crate) fn code_create(text: &str) -> Verdict {
    fields(manifest(text).validate(ValidateFor::Operator))
}

/// What the code says about `text` as an update of `old`.
pub(crate) fn code_update(old: &str, text: &str) -> Verdict {
    let (old, new) = (manifest(old), manifest(text));
    let mut verdict = fields(new.cluster().validate_update(old.cluster()));
    for node in new.nodes() {
        if let Some(before) = old
            .nodes()
            .iter()
            .find(|n| n.metadata.name == node.metadata.name)
        {
            verdict.extend(fields(node.validate_update(before)));
        }
    }
    verdict
}

pub(crate) fn pair(resource: &str, field: &str) -> Verdict {
    Verdict::from([(resource.to_string(), field.to_string())])
}

#[test]
fn the_cel_crate_parses_every_rule_and_only_properties_carry_them() {
    let checker = Checker::new();
    let mut rules: Vec<String> = [&checker.cluster, &checker.node]
        .iter()
        .flat_map(|s| {
            s.rules
                .iter()
                .map(|r| format!("{}:{}", s.kind, r.path.join(".")))
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            "Cluster:spec",
            "Cluster:spec",
            "Cluster:spec.bundle",
            "Cluster:spec.bundle.source",
            "Cluster:spec.containerRuntime",
            "Cluster:spec.containerRuntime.containerd.version",
            "Cluster:spec.controlPlaneEndpoint",
            "Cluster:spec.controlPlaneEndpoint",
            "Cluster:spec.etcd.version",
            "Cluster:spec.gpu",
            "Cluster:spec.gpu",
            "Cluster:spec.gpu",
            "Cluster:spec.gpu.driver.branch",
            "Cluster:spec.gpu.toolkit.version",
            "Cluster:spec.kubernetesVersion",
            "Cluster:spec.network",
            "Cluster:spec.network.podCIDR",
            "Cluster:spec.network.serviceCIDR",
            "Cluster:spec.serving.cacheCapacity",
            "Cluster:spec.serving.namespace",
            "Cluster:spec.ssh",
            "Cluster:spec.ssh",
            "Cluster:spec.ssh.bastion",
            "Node:spec",
            "Node:spec",
            "Node:spec.clusterName",
            "Node:spec.ssh",
            "Node:spec.ssh",
            "Node:spec.ssh.bastion",
        ]
    );
}

#[test]
fn the_good_spec_passes_every_rule_as_created_and_as_its_own_update() {
    let checker = Checker::new();
    assert_eq!(checker.schema(good(), None).0, Verdict::new());
    assert_eq!(checker.schema(good(), Some(good())).0, Verdict::new());
    assert_eq!(code_create(good()), Verdict::new());
    assert_eq!(code_update(good(), good()), Verdict::new());
}

#[test]
fn kubernetes_versions_get_the_same_verdict_from_the_rule_and_the_code() {
    let checker = Checker::new();
    let (accepted, refused) = versions();
    for (versions, ok) in [(&accepted[..], true), (&refused[..], false)] {
        for version in versions {
            let text = edit(
                "kubernetesVersion: v1.31.4",
                &format!("kubernetesVersion: '{version}'"),
            );
            let want = if ok {
                Verdict::new()
            } else {
                pair("Cluster/gpu-prod", "spec.kubernetesVersion")
            };
            assert_eq!(checker.schema(&text, None).0, want, "schema on `{version}`");
            assert_eq!(code_create(&text), want, "code on `{version}`");
        }
    }
}

/// Kubernetes versions that the rule and the code accept, and ones both refuse.
pub(crate) fn versions() -> (Vec<String>, Vec<String>) {
    let accepted = [
        "v1.31.4",
        "1.35.0",
        "v1.30.0",
        "v1.33.10",
        "v1.31.0-rc.1",
        "v1.31.0-alpha-2.0",
        "v1.31.0-0.3.7",
        "v1.31.0-x.7.z.92",
        "v1.31.4+build.07",
        "v1.31.0-rc.1+sha.5114f85",
    ];
    let mut refused: Vec<String> = [
        "v1.29.9",
        "v1.36.0",
        "v2.31.0",
        "v1.31",
        "v1.31.04",
        "v01.31.4",
        "v1.031.4",
        "v1.31.4-01",
        "v1.31.4-",
        "v1.31.4+",
        "v1.31.4-rc..1",
        "vv1.31.4",
        "V1.31.4",
        " v1.31.4",
        "v1.31.4 ",
        "v1.31.4_1",
        "latest",
        "",
    ]
    .map(String::from)
    .to_vec();
    // Longer than the field's maxLength.
    refused.push(format!("v1.31.4+{}", "b".repeat(60)));
    (accepted.map(String::from).to_vec(), refused)
}

/// Create-time examples: the edit, and the one field that both must refuse (or none).
pub(crate) const CREATE_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "  bundle:\n    source: bundle",
        "  etcd: {version: \"3.5\"}\n  upgrade: {maxUnavailable: 3, paused: true}\n  bundle:\n    source: bundle",
        "",
        "",
    ),
    (
        "  bundle:\n    source: bundle",
        "  etcd: {version: \"3.5.30\"}\n  bundle:\n    source: bundle",
        "Cluster/gpu-prod",
        "spec.etcd.version",
    ),
    (
        "  bundle:\n    source: bundle",
        "  upgrade: {maxUnavailable: 0}\n  bundle:\n    source: bundle",
        "Cluster/gpu-prod",
        "spec.upgrade.maxUnavailable",
    ),
    ("version: \"1.7\"", "version: \"2.0\"", "", ""),
    (
        "version: \"1.7\"",
        "version: \"1.5\"",
        "Cluster/gpu-prod",
        "spec.containerRuntime.containerd.version",
    ),
    (
        "version: \"1.7\"",
        "version: \"1.7.24\"",
        "Cluster/gpu-prod",
        "spec.containerRuntime.containerd.version",
    ),
    ("vip: 10.0.0.100", "address: lb.example", "", ""),
    (
        "vip: 10.0.0.100",
        "vip: 10.0.0.100\n    address: lb.example",
        "Cluster/gpu-prod",
        "spec.controlPlaneEndpoint",
    ),
    (
        "vip: 10.0.0.100",
        "port: 6443",
        "Cluster/gpu-prod",
        "spec.controlPlaneEndpoint",
    ),
    (
        "vip: 10.0.0.100",
        "vip: 10.0.0.100\n    port: 0",
        "Cluster/gpu-prod",
        "spec.controlPlaneEndpoint.port",
    ),
    (
        "vip: 10.0.0.100",
        "vip: 10.0.0.100\n    port: 65535",
        "",
        "",
    ),
    (
        "user: ubuntu",
        "user: ubuntu\n    port: 0",
        "Cluster/gpu-prod",
        "spec.ssh.port",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 2222}\n  port: 22",
        "Node/gpu-1",
        "spec.ssh.port",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 2222}\n  user: ubuntu",
        "Node/gpu-1",
        "spec.ssh.user",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root}\n  port: 2222",
        "",
        "",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {port: 0}",
        "Node/gpu-1",
        "spec.ssh.port",
    ),
    (
        "  address: 10.0.0.22\n",
        "  address: 10.0.0.22\n  port: 0\n",
        "Node/gpu-2",
        "spec.port",
    ),
    // nvidia, kata-*, gvisor and crun run only on some hosts: they may be listed but not be
    // the default.
    (
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [runc, kata-qemu, nvidia]\n    defaultRuntime: runc",
        "",
        "",
    ),
    (
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [runc, kata-qemu, nvidia]\n    defaultRuntime: nvidia",
        "Cluster/gpu-prod",
        "spec.containerRuntime.defaultRuntime",
    ),
    (
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [runc, kata-qemu, nvidia]\n    defaultRuntime: kata-qemu",
        "Cluster/gpu-prod",
        "spec.containerRuntime.defaultRuntime",
    ),
    (
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [runc, kata-fc, nvidia]\n    defaultRuntime: kata-fc",
        "Cluster/gpu-prod",
        "spec.containerRuntime.defaultRuntime",
    ),
    // spec.gpu: what one Cluster decides (the rest is code-only, see validate/gpu.rs).
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}}\n  bundle:\n",
        "",
        "",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {source: preinstalled}, mig: {strategy: single}, toolkit: {version: 1.17.3}}\n  bundle:\n",
        "",
        "",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}, devicePlugin: gpu-operator, operatorValues: {driver: {enabled: false}}}\n  bundle:\n",
        "",
        "",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {source: runfile}}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.gpu.driver.branch",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550.127\"}}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.gpu.driver.branch",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"5501275050\"}}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.gpu.driver.branch",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}, toolkit: {version: \"1.17\"}}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.gpu.toolkit.version",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}, devicePlugin: none, mig: {strategy: mixed}}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.gpu.mig.strategy",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}, operatorValues: {dcgmExporter: {enabled: true}}}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.gpu.operatorValues",
    ),
    (
        "runtimes: [runc, kata-qemu, nvidia]\n    registryMirrors:\n      - {registry: docker.io, endpoint: \"https://mirror.example:5000\"}\n",
        "runtimes: [runc, kata-qemu]\n    registryMirrors:\n      - {registry: docker.io, endpoint: \"https://mirror.example:5000\"}\n  gpu: {driver: {branch: \"550\"}}\n",
        "Cluster/gpu-prod",
        "spec.containerRuntime.runtimes",
    ),
    (
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [runc, gvisor, crun]\n    defaultRuntime: gvisor",
        "Cluster/gpu-prod",
        "spec.containerRuntime.defaultRuntime",
    ),
    // spec.serving: the layer needs the GPU stack; a namespace and a size the cache reads.
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}}\n  serving: {namespace: llm-serving, cacheCapacity: 1.5Ti, podMonitors: true}\n  bundle:\n",
        "",
        "",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}}\n  serving: {}\n  bundle:\n",
        "",
        "",
    ),
    (
        "  bundle:\n",
        "  serving: {}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.serving",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}}\n  serving: {namespace: LLM_serving}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.serving.namespace",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}}\n  serving: {cacheCapacity: 0Gi}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.serving.cacheCapacity",
    ),
    (
        "  bundle:\n",
        "  gpu: {driver: {branch: \"550\"}}\n  serving: {cacheCapacity: 2PB}\n  bundle:\n",
        "Cluster/gpu-prod",
        "spec.serving.cacheCapacity",
    ),
];

/// Update examples: the edit of the good spec, and the field both must refuse (or none).
pub(crate) const UPDATE_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "kubernetesVersion: v1.31.4",
        "kubernetesVersion: v1.32.0",
        "",
        "",
    ),
    (
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [runc, nvidia]",
        "",
        "",
    ),
    (
        "vip: 10.0.0.100",
        "vip: 10.0.0.101",
        "Cluster/gpu-prod",
        "spec.controlPlaneEndpoint",
    ),
    (
        "vip: 10.0.0.100",
        "vip: 10.0.0.100\n    port: 443",
        "Cluster/gpu-prod",
        "spec.controlPlaneEndpoint",
    ),
    (
        "podCIDR: 10.244.0.0/16",
        "podCIDR: 10.240.0.0/16",
        "Cluster/gpu-prod",
        "spec.network.podCIDR",
    ),
    (
        "serviceCIDR: 10.96.0.0/12",
        "serviceCIDR: 10.112.0.0/12",
        "Cluster/gpu-prod",
        "spec.network.serviceCIDR",
    ),
    ("  address: 10.0.0.22\n", "  address: 10.0.0.23\n", "", ""),
    (
        "  address: 10.0.0.22\n",
        "  address: 10.0.0.22\n  arch: arm64\n",
        "",
        "",
    ),
];

#[test]
fn create_rules_and_bounds_agree_with_the_code_validation() {
    let checker = Checker::new();
    for (from, to, resource, field) in CREATE_CASES {
        let text = edit(from, to);
        let want = if field.is_empty() {
            Verdict::new()
        } else {
            pair(resource, field)
        };
        assert_eq!(checker.schema(&text, None).0, want, "schema on `{to}`");
        assert_eq!(code_create(&text), want, "code on `{to}`");
    }
}

#[test]
fn transition_rules_agree_with_validate_update() {
    let checker = Checker::new();
    for (from, to, resource, field) in UPDATE_CASES {
        let text = edit(from, to);
        let want = if field.is_empty() {
            Verdict::new()
        } else {
            pair(resource, field)
        };
        assert_eq!(
            checker.schema(&text, Some(good())).0,
            want,
            "schema on `{to}`"
        );
        assert_eq!(code_update(good(), &text), want, "code on `{to}`");
        // Transition rules never run on a create.
        assert_eq!(
            checker.schema(&text, None).0,
            Verdict::new(),
            "create of `{to}`"
        );
    }
}

#[test]
fn a_node_that_moves_to_another_cluster_is_refused_by_rule_and_code() {
    let checker = Checker::new();
    // The Cluster is renamed with it, so the new file is itself valid.
    let text = good()
        .replace("name: gpu-prod", "name: gpu-next")
        .replace("clusterName: gpu-prod", "clusterName: gpu-next");
    let want: Verdict = ["cp-1", "gpu-1", "gpu-2"]
        .iter()
        .map(|n| (format!("Node/{n}"), "spec.clusterName".to_string()))
        .collect();
    let old_nodes = manifest(good());
    let new_nodes = manifest(&text);
    let mut code = Verdict::new();
    for (new, old) in new_nodes.nodes().iter().zip(old_nodes.nodes()) {
        code.extend(fields(new.validate_update(old)));
    }
    assert_eq!(code, want);
    let (schema, _) = checker.schema(&text, Some(good()));
    let schema: Verdict = schema
        .into_iter()
        .filter(|(resource, _)| resource.starts_with("Node/"))
        .collect();
    assert_eq!(schema, want);
}

#[test]
fn every_rule_refuses_at_least_one_example() {
    let checker = Checker::new();
    let mut failed = BTreeSet::new();
    for (from, to, _, _) in CREATE_CASES {
        failed.extend(checker.schema(&edit(from, to), None).1);
    }
    for (from, to, _, _) in crate::confine::RULE_CASES {
        failed.extend(checker.schema(&edit(from, to), None).1);
    }
    for (from, to, _, _) in UPDATE_CASES {
        failed.extend(checker.schema(&edit(from, to), Some(good())).1);
    }
    let moved = good().replace("clusterName: gpu-prod", "clusterName: gpu-next");
    failed.extend(
        checker
            .schema(
                &moved.replacen("name: gpu-prod", "name: gpu-next", 1),
                Some(good()),
            )
            .1,
    );
    let bad_version = edit("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.29.0");
    failed.extend(checker.schema(&bad_version, None).1);
    for schema in [&checker.cluster, &checker.node] {
        for rule in &schema.rules {
            assert!(
                failed.contains(&rule.rule),
                "no example breaks {} rule `{}` at {}",
                schema.kind,
                rule.rule,
                rule.path.join(".")
            );
        }
    }
}

#[test]
fn every_port_is_bounded_from_1_to_65535_in_the_schema() {
    fn ports(node: &Json, path: &str, out: &mut Vec<(String, Option<f64>, Option<f64>)>) {
        if let Some(properties) = node.get("properties").and_then(Json::as_object) {
            for (name, child) in properties {
                let here = format!("{path}.{name}");
                if name == "port" {
                    out.push((
                        here.clone(),
                        child.get("minimum").and_then(Json::as_f64),
                        child.get("maximum").and_then(Json::as_f64),
                    ));
                }
                ports(child, &here, out);
            }
        }
    }
    for schema in crds().iter().map(Schema::of) {
        let mut found = Vec::new();
        ports(&schema.root, "", &mut found);
        assert!(!found.is_empty(), "{} has port fields", schema.kind);
        for (path, min, max) in found {
            assert_eq!(
                (min, max),
                (Some(1.0), Some(65535.0)),
                "{} {path}",
                schema.kind
            );
        }
    }
}
