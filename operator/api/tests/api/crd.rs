//! The CRDs the operator installs, compared with golden files. Regenerate them with
//! `UPDATE_GOLDEN=1 cargo test -p kubegrid-api`.

use std::path::PathBuf;

use kubegrid_api::{CustomResourceDefinition, crds};

fn check_golden(name: &str, crd: &CustomResourceDefinition) {
    let got = serde_yaml::to_string(crd).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    assert_eq!(
        got,
        want,
        "{} is stale; regenerate it with UPDATE_GOLDEN=1 if the change is intended",
        path.display()
    );
}

#[test]
fn cluster_crd_matches_golden_file() {
    let [crd, _] = crds();
    assert_eq!(crd.metadata.name.as_deref(), Some("clusters.kubegrid.io"));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["kgc".to_string()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["kubegrid".to_string()])
    );
    check_golden("crd-cluster.yaml", &crd);
}

#[test]
fn node_crd_matches_golden_file() {
    let [_, crd] = crds();
    assert_eq!(crd.metadata.name.as_deref(), Some("nodes.kubegrid.io"));
    assert_eq!(crd.spec.names.short_names, Some(vec!["kgn".to_string()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["kubegrid".to_string()])
    );
    check_golden("crd-node.yaml", &crd);
}

#[test]
fn crd_schemas_are_structural() {
    for crd in crds() {
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let schema = serde_json::to_string(&version.schema).unwrap();
        // Kubernetes rejects these in structural schemas.
        for forbidden in [
            "\"additionalProperties\":false",
            "\"$ref\"",
            "\"oneOf\"",
            "\"anyOf\"",
        ] {
            assert!(
                !schema.contains(forbidden),
                "{forbidden} in {}",
                crd.spec.names.kind
            );
        }
    }
}
