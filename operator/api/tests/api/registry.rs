//! `spec.bundle.registry`: parsing with its defaults, and the rules validation adds.

use kubegrid_api::{BUNDLE_REGISTRY_MIRRORED, BundleRegistrySpec, Error, ValidateFor};

use crate::common::{Fixture, edit, one_problem, problems_for};

const CLUSTER: &str = "Cluster/gpu-prod";
const DOCKER_MIRROR: &str = "    registryMirrors:\n      - {registry: docker.io, endpoint: \"https://mirror.example:5000\"}\n";

/// The good spec without its docker.io mirror, with `registry` (YAML flow mapping) under
/// `spec.bundle`.
fn with_registry(registry: &str) -> String {
    edit(DOCKER_MIRROR, "").replace(
        "    source: bundle\n",
        &format!("    source: bundle\n    registry: {registry}\n"),
    )
}

#[test]
fn registry_parses_with_its_defaults_and_validates() {
    let fixture = Fixture::new(&with_registry("{host: gpu-2}"));
    let manifest = fixture.parse().unwrap();
    let registry = manifest
        .cluster()
        .spec
        .bundle
        .as_ref()
        .unwrap()
        .registry
        .clone();
    assert_eq!(
        registry,
        Some(BundleRegistrySpec {
            host: "gpu-2".into(),
            port: 5000,
            plain_http: false,
        })
    );
    manifest.validate(ValidateFor::Cli).unwrap();

    let fixture = Fixture::new(&with_registry("{host: cp-1, port: 5443, plainHttp: true}"));
    let manifest = fixture.parse().unwrap();
    let registry = manifest
        .cluster()
        .spec
        .bundle
        .as_ref()
        .unwrap()
        .registry
        .clone();
    assert_eq!(registry.map(|r| (r.port, r.plain_http)), Some((5443, true)));
    manifest.validate(ValidateFor::Cli).unwrap();
}

#[test]
fn unknown_registry_keys_are_schema_errors() {
    let fixture = Fixture::new(&with_registry("{host: gpu-2, tls: false}"));
    let Err(Error::ParseSpec { message, .. }) = fixture.parse() else {
        panic!("expected a schema error")
    };
    assert!(message.contains("unknown field `tls`"), "{message}");
}

#[test]
fn registry_host_must_be_a_node_and_the_error_lists_them() {
    let problem = one_problem(
        &with_registry("{host: gpu-9}"),
        CLUSTER,
        "spec.bundle.registry.host",
        "`gpu-9`, which is not a Node of this cluster",
    );
    assert!(problem.contains("cp-1, gpu-1, gpu-2"), "{problem}");
}

#[test]
fn registry_port_must_be_free_on_its_node() {
    one_problem(
        &with_registry("{host: gpu-2, port: 0}"),
        CLUSTER,
        "spec.bundle.registry.port",
        "0",
    );
    one_problem(
        &with_registry("{host: gpu-2, port: 10250}"),
        CLUSTER,
        "spec.bundle.registry.port",
        "10250, which is the kubelet's API port on Node gpu-2",
    );
    // cp-1 is an etcd member; the VIP endpoint's API server binds 6443 there.
    one_problem(
        &with_registry("{host: cp-1, port: 2379}"),
        CLUSTER,
        "spec.bundle.registry.port",
        "etcd's client port on Node cp-1",
    );
    one_problem(
        &with_registry("{host: cp-1, port: 6443}"),
        CLUSTER,
        "spec.bundle.registry.port",
        "the API server's port",
    );
    // A worker runs neither etcd nor an API server.
    assert!(
        problems_for(
            &with_registry("{host: gpu-2, port: 2379}"),
            ValidateFor::Cli
        )
        .is_empty()
    );
}

#[test]
fn a_user_mirror_for_a_served_registry_is_refused() {
    let text = edit(
        "    source: bundle\n",
        "    source: bundle\n    registry: {host: gpu-2}\n",
    );
    let problem = one_problem(
        &text,
        CLUSTER,
        "spec.containerRuntime.registryMirrors[0].registry",
        "`docker.io`, whose pulls the bundle registry (spec.bundle.registry) already serves",
    );
    assert!(problem.contains("remove this mirror"), "{problem}");
    // A mirror for a registry the bundle registry does not serve stays allowed.
    let text = text.replace("registry: docker.io", "registry: mirror.internal");
    assert!(problems_for(&text, ValidateFor::Cli).is_empty());
    assert!(!BUNDLE_REGISTRY_MIRRORED.contains(&"mirror.internal"));
}
