//! The CRD, compared with its golden file (regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p kubegrid-serving`), and the parts HPA, KEDA and kubectl
//! rely on.

use std::path::Path;

/// Compares `actual` with `tests/golden/<file>`, first rewriting the file when
/// `UPDATE_GOLDEN` is set.
pub fn check_golden(file: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        golden == actual,
        "{} is stale; regenerate it with UPDATE_GOLDEN=1 if the change is intended",
        path.display()
    );
}

#[test]
fn crd_matches_golden_file() {
    check_golden(
        "llmservices.serving.kubegrid.io.yaml",
        &kubegrid_serving::crd_yaml().unwrap(),
    );
}

#[test]
fn the_scale_subresource_names_spec_status_and_selector() {
    let crd = kubegrid_serving::crd();
    assert_eq!(crd.spec.group, "serving.kubegrid.io");
    assert_eq!(crd.spec.names.kind, "LLMService");
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let sub = v.subresources.as_ref().expect("subresources");
    assert!(sub.status.is_some(), "status subresource");
    let scale = sub.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    // Without a selector path, an HPA refuses the resource (KubeAI's Model has none).
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let columns: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Model", "Replicas", "Ready", "Phase", "Age"]);
}
