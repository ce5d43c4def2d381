use super::*;
use crate::bundle::{Arch, ManifestImage};

/// Shaped like `helm template` output of KEDA's chart (a fixture written for these tests, not
/// KEDA's own files): a `# Source:` comment per template, an empty document, images by tag.
const RENDERED: &str = r#"---
# Source: keda/templates/manager/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: keda-operator
  namespace: keda
---
# Source: keda/templates/webhooks/empty.yaml
---
# Source: keda/templates/manager/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: keda-operator
  namespace: keda
spec:
  template:
    spec:
      initContainers:
        - name: wait
          image: ghcr.io/kedacore/keda:2.19.0
      containers:
        - name: keda-operator
          image: "ghcr.io/kedacore/keda:2.19.0"
---
# Source: keda/templates/metrics-server/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: keda-operator-metrics-apiserver
  namespace: keda
spec:
  template:
    spec:
      containers:
        - name: keda-operator-metrics-apiserver
          image: ghcr.io/kedacore/keda-metrics-apiserver:2.19.0
---
# Source: keda/templates/metrics-server/apiservice.yaml
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.external.metrics.k8s.io
spec:
  service: {name: keda-operator-metrics-apiserver, namespace: keda}
---
# Source: keda/templates/crds/crd-scaledobjects.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: scaledobjects.keda.sh
"#;

fn image(name: &str, digest: char, upstream: Option<char>) -> ManifestImage {
    ManifestImage {
        name: name.into(),
        tag: "2.19.0".into(),
        digest: format!("sha256:{}", digest.to_string().repeat(64)),
        upstream_digest: upstream.map(|c| format!("sha256:{}", c.to_string().repeat(64))),
        arches: vec![Arch::Amd64],
        component: Some(KEDA_COMPONENT.into()),
    }
}

fn manifest(images: Vec<ManifestImage>) -> Manifest {
    Manifest {
        version: 2,
        name: None,
        kubernetes: None,
        files: Vec::new(),
        images,
    }
}

fn pins() -> Manifest {
    manifest(vec![
        image("ghcr.io/kedacore/keda", 'a', Some('c')),
        image("ghcr.io/kedacore/keda-metrics-apiserver", 'b', None),
    ])
}

#[test]
fn every_image_is_pinned_and_crds_and_the_namespace_come_first() {
    let keda = KedaContext::from_text(RENDERED, "2.19.0", &pins(), true).unwrap();
    assert_eq!(keda.namespace, "keda");
    let kinds: Vec<&str> = keda
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "Deployment",
            "Deployment",
            "APIService"
        ]
    );
    let operator = &keda.objects[3]["spec"]["template"]["spec"];
    let a = format!("ghcr.io/kedacore/keda@sha256:{}", "a".repeat(64));
    assert_eq!(operator["containers"][0]["image"], a.as_str());
    assert_eq!(operator["initContainers"][0]["image"], a.as_str());
    assert_eq!(
        keda.objects[4]["spec"]["template"]["spec"]["containers"][0]["image"],
        format!(
            "ghcr.io/kedacore/keda-metrics-apiserver@sha256:{}",
            "b".repeat(64)
        )
        .as_str()
    );
    assert_eq!(keda.images.len(), 2);
    assert_eq!(
        keda.deployments(),
        ["keda-operator", "keda-operator-metrics-apiserver"]
    );
    assert_eq!(keda.api_services(), ["v1beta1.external.metrics.k8s.io"]);
    assert_eq!(keda.crds(), ["scaledobjects.keda.sh"]);
    // Pulled upstream, an image is pinned by the digest upstream serves.
    let upstream = KedaContext::from_text(RENDERED, "2.19.0", &pins(), false).unwrap();
    assert_eq!(
        upstream.objects[3]["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/kedacore/keda@sha256:{}", "c".repeat(64)).as_str()
    );
}

#[test]
fn an_image_the_bundle_does_not_pin_is_refused_naming_it_and_the_pins() {
    let only_one = manifest(vec![image("ghcr.io/kedacore/keda", 'a', None)]);
    let err = KedaContext::from_text(RENDERED, "2.19.0", &only_one, true).unwrap_err();
    assert!(
        err.contains("image ghcr.io/kedacore/keda-metrics-apiserver:2.19.0 is not pinned"),
        "{err}"
    );
    assert!(
        err.contains("its KEDA images: ghcr.io/kedacore/keda:2.19.0"),
        "{err}"
    );
    let other_digest = RENDERED.replace(
        "\"ghcr.io/kedacore/keda:2.19.0\"",
        &format!("ghcr.io/kedacore/keda:2.19.0@sha256:{}", "f".repeat(64)),
    );
    let err = KedaContext::from_text(&other_digest, "2.19.0", &pins(), true).unwrap_err();
    assert!(
        err.contains("asks for a digest the bundle does not pin"),
        "{err}"
    );
}

#[test]
fn kinds_outside_the_list_namespaces_and_non_objects_are_refused() {
    let pod = format!(
        "{RENDERED}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: x, namespace: keda}}\n"
    );
    let err = KedaContext::from_text(&pod, "2.19.0", &pins(), true).unwrap_err();
    assert!(
        err.contains("document 7 (Pod x) has a kind kubegrid does not apply"),
        "{err}"
    );
    let elsewhere = format!(
        "{RENDERED}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x, namespace: other}}\n"
    );
    let err = KedaContext::from_text(&elsewhere, "2.19.0", &pins(), true).unwrap_err();
    assert!(
        err.contains("ConfigMap other/x is outside KEDA's namespace keda"),
        "{err}"
    );
    // The metrics server's reader binding lives in kube-system, as in KEDA's chart.
    let reader = format!(
        "{RENDERED}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: keda-operator-auth-reader, namespace: kube-system}}\n"
    );
    let keda = KedaContext::from_text(&reader, "2.19.0", &pins(), true).unwrap();
    assert_eq!(keda.namespace, "keda");
    let other =
        format!("{RENDERED}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: other}}\n");
    let err = KedaContext::from_text(&other, "2.19.0", &pins(), true).unwrap_err();
    assert!(
        err.contains("it creates Namespace other; expected none but KEDA's own, keda"),
        "{err}"
    );
    let split = RENDERED.replacen(
        "name: keda-operator-metrics-apiserver\n  namespace: keda",
        "name: keda-operator-metrics-apiserver\n  namespace: other",
        1,
    );
    assert_ne!(split, RENDERED);
    let err = KedaContext::from_text(&split, "2.19.0", &pins(), true).unwrap_err();
    assert!(
        err.contains("KEDA's Deployments are in namespaces keda, other; expected one"),
        "{err}"
    );
    let err = KedaContext::from_text("- just\n- a list\n", "2.19.0", &pins(), true).unwrap_err();
    assert!(
        err.contains("document 1 is not a Kubernetes object"),
        "{err}"
    );
}

#[test]
fn a_bundle_without_keda_manifests_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(crate::MANIFEST_FILE),
        "version: 2\nfiles: []\n",
    )
    .unwrap();
    let bundle = Bundle::open(dir.path()).unwrap();
    let err = KedaContext::from_bundle(&bundle, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the bundle has no KEDA manifests"), "{err}");
    assert!(err.contains("spec.serving.keda false"), "{err}");
}

#[test]
fn the_newest_keda_in_the_bundle_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (version, text) in [("2.18.1", "not: [an object"), ("2.19.0", RENDERED)] {
        let path = format!("keda-{version}.yaml");
        std::fs::write(dir.path().join(&path), text).unwrap();
        files.push(BundleFile {
            path: path.into(),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
            size: text.len() as u64,
            arch: Arch::All,
            kind: FileKind::Manifests,
            name: Some("keda".into()),
            version: Some(version.into()),
            component: Some(KEDA_COMPONENT.into()),
            source: None,
        });
    }
    let manifest = Manifest { files, ..pins() };
    std::fs::write(
        dir.path().join(crate::MANIFEST_FILE),
        serde_yaml::to_string(&manifest).unwrap(),
    )
    .unwrap();
    let bundle = Bundle::open(dir.path()).unwrap();
    let keda = KedaContext::from_bundle(&bundle, true).unwrap();
    assert_eq!(keda.version, "2.19.0");
    assert_eq!(keda.objects.len(), 6);
}
