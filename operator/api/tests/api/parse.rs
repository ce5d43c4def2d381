//! Reading spec files: documents, kinds, schema errors with file:line:column.

use std::path::Path;

use kubegrid_api::{ContainerdSource, DeletionPolicy, Error, RuntimeName, ValidateFor};

use crate::common::{Fixture, GOOD, edit};

/// 1-based line of the only line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "`{needle}` must be on one line");
    hits[0]
}

#[test]
fn good_spec_parses_and_validates() {
    let fixture = Fixture::new(GOOD);
    let manifest = kubegrid_api::load(&fixture.path).unwrap();
    assert_eq!(manifest.name(), "gpu-prod");
    let names: Vec<_> = manifest
        .nodes()
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["cp-1", "gpu-1", "gpu-2"]);
    let spec = &manifest.cluster().spec;
    assert_eq!(spec.container_runtime.containerd.version, "1.7");
    assert_eq!(spec.container_runtime.containerd.config_version(), Some(2));
    assert_eq!(spec.container_runtime.default_runtime, RuntimeName::Runc);
    assert_eq!(spec.control_plane_endpoint.port, 6443);
    assert_eq!(spec.network.cni, "cilium");
    assert_eq!(manifest.path(), Some(fixture.path.as_path()));
    assert_eq!(manifest.spec_dir(), fixture.dir.path());
}

#[test]
fn deletion_policy_defaults_to_orphan_and_is_written_only_when_reset() {
    let orphan = Fixture::new(GOOD).parse().unwrap();
    assert_eq!(
        orphan.cluster().spec.deletion_policy,
        DeletionPolicy::Orphan
    );
    let json = serde_json::to_value(&orphan.cluster().spec).unwrap();
    assert!(json.get("deletionPolicy").is_none(), "{json}");

    let text = edit(
        "  kubernetesVersion:",
        "  deletionPolicy: Reset\n  kubernetesVersion:",
    );
    let reset = Fixture::new(&text).parse().unwrap();
    assert_eq!(reset.cluster().spec.deletion_policy, DeletionPolicy::Reset);
    let json = serde_json::to_value(&reset.cluster().spec).unwrap();
    assert_eq!(json["deletionPolicy"], "Reset");

    let text = edit(
        "  kubernetesVersion:",
        "  deletionPolicy: Delete\n  kubernetesVersion:",
    );
    let err = Fixture::new(&text).parse().unwrap_err().to_string();
    assert!(
        err.contains("deletionPolicy") && err.contains("Orphan"),
        "{err}"
    );
}

#[test]
fn unquoted_version_lines_stay_strings() {
    let text = edit("version: \"1.7\"", "version: 2.0");
    let manifest = Fixture::new(&text).parse().unwrap();
    let containerd = &manifest.cluster().spec.container_runtime.containerd;
    assert_eq!(containerd.version, "2.0");
    assert_eq!(containerd.config_version(), Some(3));
}

#[test]
fn schema_error_in_the_third_document_names_its_file_line() {
    let text = edit("address: 10.0.0.21", "adress: 10.0.0.21");
    let fixture = Fixture::new(&text);
    let err = fixture.parse().unwrap_err();
    let Error::ParseSpec {
        path,
        line,
        column,
        message,
    } = &err
    else {
        panic!("expected ParseSpec, got {err}");
    };
    assert_eq!(path, &fixture.path);
    assert_eq!(*line, line_of(&text, "adress:"));
    assert_eq!(*column, 3);
    assert!(
        message.starts_with("spec: unknown field `adress`"),
        "{message}"
    );
    assert!(!message.contains(" at line"), "{message}");
    let shown = err.to_string();
    let want = format!(
        "{}:{line}:3: spec: unknown field `adress`",
        fixture.path.display()
    );
    assert!(shown.starts_with(&want), "{shown}");
}

#[test]
fn unknown_role_names_file_and_line() {
    let text = edit(
        "roles: [control-plane, etcd]",
        "roles: [control-plane, master]",
    );
    let fixture = Fixture::new(&text);
    let err = fixture.parse().unwrap_err();
    let shown = err.to_string();
    let want = format!("{}:{}:", fixture.path.display(), line_of(&text, "master"));
    assert!(shown.starts_with(&want), "{shown}");
    assert!(
        shown.contains("spec.roles[1]: unknown variant `master`"),
        "{shown}"
    );
    assert!(
        shown.contains("`control-plane`, `etcd`, `worker`"),
        "{shown}"
    );
}

#[test]
fn bad_cidr_is_a_schema_error_with_its_line() {
    let text = edit("podCIDR: 10.244.0.0/16", "podCIDR: 10.244.0.0/33");
    let err = Fixture::new(&text).parse().unwrap_err();
    let Error::ParseSpec { line, message, .. } = &err else {
        panic!("expected ParseSpec, got {err}");
    };
    assert_eq!(*line, line_of(&text, "podCIDR"));
    assert!(message.contains("spec.network.podCIDR"), "{message}");
}

#[test]
fn unknown_kind_names_document_and_line() {
    let text = edit(
        "kind: Node\nmetadata:\n  name: gpu-1",
        "kind: Nodes\nmetadata:\n  name: gpu-1",
    );
    let fixture = Fixture::new(&text);
    let err = fixture.parse().unwrap_err();
    let Error::UnknownKind {
        document,
        line,
        kind,
        ..
    } = &err
    else {
        panic!("expected UnknownKind, got {err}");
    };
    assert_eq!(*document, 3);
    assert_eq!(*line, line_of(&text, "kind: Nodes"));
    assert_eq!(kind.as_deref(), Some("Nodes"));
    let shown = err.to_string();
    assert!(
        shown.contains("document 3 has apiVersion `kubegrid.io/v1alpha1` and kind `Nodes`"),
        "{shown}"
    );
}

#[test]
fn unknown_api_version_points_at_it() {
    let text = GOOD.replacen("kubegrid.io/v1alpha1", "kubegrid.io/v1", 1);
    let err = Fixture::new(&text).parse().unwrap_err();
    let Error::UnknownKind {
        document,
        line,
        api_version,
        ..
    } = &err
    else {
        panic!("expected UnknownKind, got {err}");
    };
    assert_eq!((*document, *line), (1, 2));
    assert_eq!(api_version.as_deref(), Some("kubegrid.io/v1"));
}

#[test]
fn empty_documents_and_comments_are_skipped() {
    let text = format!("---\n# only a comment\n---\n{GOOD}---\n\n---\n");
    let manifest = Fixture::new(&text).parse().unwrap();
    assert_eq!(manifest.nodes().len(), 3);
}

#[test]
fn unknown_top_level_key_is_refused() {
    let text = edit("kind: Cluster\n", "kind: Cluster\nspce: {}\n");
    let err = Fixture::new(&text).parse().unwrap_err();
    let Error::ParseSpec { line, message, .. } = &err else {
        panic!("expected ParseSpec, got {err}");
    };
    assert_eq!(*line, line_of(&text, "spce"));
    assert!(message.contains("unknown field `spce`"), "{message}");
}

#[test]
fn missing_name_is_a_schema_error() {
    let text = edit("  name: gpu-2\n", "  labels: {a: b}\n");
    let err = Fixture::new(&text).parse().unwrap_err();
    let Error::ParseSpec { line, message, .. } = &err else {
        panic!("expected ParseSpec, got {err}");
    };
    assert_eq!(*line, line_of(&text, "labels: {a: b}") - 1);
    assert!(message.contains("metadata.name"), "{message}");
}

#[test]
fn status_in_a_document_is_accepted() {
    let text = format!("{GOOD}status:\n  phase: Ready\n  hostKey: SHA256:abc\n");
    let manifest = Fixture::new(&text).parse().unwrap();
    let status = manifest.nodes()[2].status.as_ref().unwrap();
    assert_eq!(status.host_key.as_deref(), Some("SHA256:abc"));
}

#[test]
fn syntax_error_lines_count_from_the_file_start() {
    let text = format!("{GOOD}  labels: [unclosed\n");
    let err = Fixture::new(&text).parse().unwrap_err();
    let Error::ParseSpec { line, .. } = &err else {
        panic!("expected ParseSpec, got {err}");
    };
    assert!(*line >= line_of(&text, "unclosed"), "{err}");
}

#[test]
fn several_clusters_need_a_selection() {
    let other = "---\napiVersion: kubegrid.io/v1alpha1\nkind: Cluster\nmetadata: {name: other}\n\
                 spec:\n  kubernetesVersion: v1.32.0\n  controlPlaneEndpoint: {address: lb}\n  \
                 network: {podCIDR: 10.1.0.0/16, serviceCIDR: 10.2.0.0/16}\n  \
                 containerRuntime: {containerd: {version: \"2.1\"}}\n---\n\
                 apiVersion: kubegrid.io/v1alpha1\nkind: Node\nmetadata: {name: o-1}\n\
                 spec: {clusterName: other, address: 10.9.0.1, roles: [control-plane]}\n";
    let text = format!("{GOOD}{other}");
    let err = Fixture::new(&text).parse().unwrap_err();
    assert!(
        err.to_string()
            .contains("holds 2 Clusters (gpu-prod, other)"),
        "{err}"
    );
    let fixture = Fixture::new(&text);
    let docs = kubegrid_api::Documents::read(&fixture.path).unwrap();
    assert_eq!(docs.cluster_names(), ["gpu-prod", "other"]);
    let other = docs.clone().select(Some("other")).unwrap();
    assert_eq!(other.nodes().len(), 1);
    let prod = docs.clone().select(Some("gpu-prod")).unwrap();
    assert_eq!(prod.nodes().len(), 3);
    let missing = docs.select(Some("nope")).unwrap_err();
    assert!(matches!(missing, Error::UnknownCluster { .. }), "{missing}");
}

#[test]
fn node_of_an_absent_cluster_is_an_error() {
    let text = edit(
        "clusterName: gpu-prod\n  address: 10.0.0.22",
        "clusterName: gpu-dev\n  address: 10.0.0.22",
    );
    let err = Fixture::new(&text).parse().unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("Node/gpu-2 spec.clusterName: got `gpu-dev`"),
        "{shown}"
    );
}

#[test]
fn file_without_cluster_is_an_error() {
    let nodes = GOOD
        .split("---\n")
        .skip(1)
        .collect::<Vec<_>>()
        .join("---\n");
    let err = kubegrid_api::parse(&nodes, Path::new("nodes.yaml")).unwrap_err();
    assert!(matches!(err, Error::NoCluster { .. }), "{err}");
}

#[test]
fn missing_file_is_a_read_error() {
    let err = kubegrid_api::load(Path::new("/nonexistent/cluster.yaml")).unwrap_err();
    assert!(matches!(err, Error::ReadSpec { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/cluster.yaml"));
}

#[test]
fn parsed_spec_round_trips_through_yaml() {
    let manifest = Fixture::new(GOOD).parse().unwrap();
    let mut text = serde_yaml::to_string(manifest.cluster()).unwrap();
    for node in manifest.nodes() {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(node).unwrap());
    }
    let fixture = Fixture::new(&text);
    let again = fixture.parse().unwrap();
    assert_eq!(again.cluster(), manifest.cluster());
    assert_eq!(again.nodes(), manifest.nodes());
    again.validate(ValidateFor::Cli).unwrap();
}

#[test]
fn example_in_the_docs_is_valid() {
    let doc = include_str!("../../../../docs/spec.md");
    let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let manifest = kubegrid_api::parse(example, Path::new("/specs/cluster.yaml")).unwrap();
    assert_eq!(manifest.nodes().len(), 2);
    // The example is for the CLI, whose key file and bundle live on the reader's machine.
    // The operator refuses exactly its key file, and takes it with the key in a Secret.
    let err = manifest.validate(ValidateFor::Operator).unwrap_err();
    let kubegrid_api::Error::Invalid { problems } = err else {
        panic!("expected Invalid, got {err}");
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["spec.ssh.privateKeyFile"], "{problems:#?}");
    let for_operator = example.replace(
        "privateKeyFile: ~/.ssh/id_ed25519",
        "privateKeySecretRef: {name: gpu-prod-ssh}",
    );
    kubegrid_api::parse(&for_operator, Path::new("/specs/cluster.yaml"))
        .unwrap()
        .validate(ValidateFor::Operator)
        .unwrap();
}

#[test]
fn containerd_source_defaults_to_archive_and_takes_packages() {
    let default = Fixture::new(GOOD).parse().unwrap();
    assert_eq!(
        default.cluster().spec.container_runtime.source,
        ContainerdSource::Archive
    );
    let runtime = "    containerd:\n      version: \"1.7\"\n";
    assert!(GOOD.contains(runtime), "the fixture's runtime changed");
    let text = GOOD.replacen(
        runtime,
        "    containerd:\n      version: \"1.7\"\n    source: packages\n",
        1,
    );
    let packages = Fixture::new(&text).parse().unwrap();
    assert_eq!(
        packages.cluster().spec.container_runtime.source,
        ContainerdSource::Packages
    );
    let text = GOOD.replacen(
        runtime,
        "    containerd:\n      version: \"1.7\"\n    source: tarball\n",
        1,
    );
    let err = Fixture::new(&text).parse().unwrap_err().to_string();
    // The same wording as every other closed set of values (roles, runtimes).
    assert!(
        err.contains(
            "spec.containerRuntime.source: unknown variant `tarball`, expected `archive` or `packages`"
        ),
        "{err}"
    );
}
