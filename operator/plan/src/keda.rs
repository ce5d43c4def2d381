//! `spec.serving.keda`: KEDA as the engine deploys it, taken whole from the bundle. `kubegrid
//! bundle build` renders KEDA's Helm chart with the bundle's own helm into one `manifests`
//! file (component [`KEDA_COMPONENT`]); here those objects are read back, every kind is
//! checked against what the engine may apply, and every container image is rewritten to the
//! digest the bundle pins for it. A bundle without them, an image it does not pin, or a kind
//! outside the list is refused before any host is contacted.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    bundle::{Bundle, BundleFile, FileKind, Manifest},
    error::{Error, Result},
    gpu::ImageRef,
};

/// The bundle component of KEDA's rendered manifests and its images.
pub const KEDA_COMPONENT: &str = "keda";

/// The kinds KEDA's objects may have: what its chart renders, and nothing that runs code
/// outside its Deployments.
pub const KEDA_KINDS: [&str; 15] = [
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// KEDA's objects from the bundle, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KedaContext {
    /// The release, as the bundle records it (`2.19.0`).
    pub version: String,
    /// The namespace its Deployments run in, which every namespaced object but a RoleBinding
    /// in `kube-system` shares.
    pub namespace: String,
    /// Every object in apply order: CRDs, the Namespace, then the rest as rendered.
    pub objects: Vec<Value>,
    /// The images they run, pinned.
    pub images: Vec<ImageRef>,
}

impl KedaContext {
    /// KEDA from the bundle at `bundle`. `via_bundle_registry` picks the digest as for every
    /// bundle image (see [`ImageRef::from_bundle`]).
    pub fn from_bundle(bundle: &Bundle, via_bundle_registry: bool) -> Result<KedaContext> {
        let file = newest_manifests(bundle.manifest())?;
        let path = bundle.dir().join(&file.path);
        let text = std::fs::read_to_string(&path).map_err(|e| refused(&path, &e.to_string()))?;
        let version = file.version.clone().unwrap_or_default();
        Self::from_text(&text, &version, bundle.manifest(), via_bundle_registry)
            .map_err(|problem| refused(&path, &problem))
    }

    /// KEDA from rendered manifests `text` and the images `manifest` pins.
    fn from_text(
        text: &str,
        version: &str,
        manifest: &Manifest,
        via_bundle_registry: bool,
    ) -> std::result::Result<KedaContext, String> {
        let mut objects = Vec::new();
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
            // helm separates templates with `---` and some render to nothing.
            if !value.is_null() {
                objects.push(checked(value, i + 1)?);
            }
        }
        let namespace = keda_namespace(&objects)?;
        let mut images = Vec::new();
        for object in &mut objects {
            pin_images(object, manifest, via_bundle_registry, &mut images)?;
        }
        if !objects
            .iter()
            .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == namespace.as_str())
        {
            // `helm template` leaves the namespace to `--create-namespace`.
            objects.push(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace},
            }));
        }
        let rank = |o: &Value| match o["kind"].as_str() {
            Some("CustomResourceDefinition") => 0,
            Some("Namespace") => 1,
            _ => 2,
        };
        objects.sort_by_key(rank);
        Ok(KedaContext {
            version: version.to_string(),
            namespace,
            objects,
            images,
        })
    }

    /// The names of KEDA's Deployments, whose availability is KEDA's health.
    pub fn deployments(&self) -> Vec<String> {
        self.of_kind("Deployment")
    }

    /// The names of the APIServices KEDA registers (its external metrics API).
    pub fn api_services(&self) -> Vec<String> {
        self.of_kind("APIService")
    }

    /// The names of KEDA's CRDs.
    pub fn crds(&self) -> Vec<String> {
        self.of_kind("CustomResourceDefinition")
    }

    fn of_kind(&self, kind: &str) -> Vec<String> {
        self.objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    }
}

fn refused(path: &Path, problem: &str) -> Error {
    Error::InvalidContext {
        problem: format!(
            "spec.serving.keda: KEDA's manifests in the bundle ({}): {problem}; hint: rebuild the bundle with `kubegrid bundle build`, whose release renders KEDA's pinned chart",
            path.display()
        ),
    }
}

/// The bundle's KEDA manifests of the highest version.
fn newest_manifests(manifest: &Manifest) -> Result<&BundleFile> {
    manifest
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Manifests && f.component.as_deref() == Some(KEDA_COMPONENT))
        .max_by_key(|f| {
            let v = f.version.as_deref().unwrap_or_default();
            semver::Version::parse(v.trim_start_matches('v')).ok()
        })
        .ok_or_else(|| Error::InvalidContext {
            problem: format!(
                "spec.serving.keda: the bundle has no KEDA manifests (kind manifests, component {KEDA_COMPONENT}); hint: build the bundle with `kubegrid bundle build` and a release that lists keda, or set spec.serving.keda false"
            ),
        })
}

/// The namespace KEDA runs in: its Deployments' one namespace. Every other namespaced object
/// must be there too, except a RoleBinding in `kube-system`: an aggregated API server such as
/// KEDA's metrics server reads the `extension-apiserver-authentication` ConfigMap there.
fn keda_namespace(objects: &[Value]) -> std::result::Result<String, String> {
    let of = |o: &Value| o["metadata"]["namespace"].as_str().map(str::to_string);
    let mut deployments: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter_map(of)
        .collect();
    deployments.sort();
    deployments.dedup();
    let namespace = match &deployments[..] {
        [one] => one.clone(),
        [] => {
            return Err(
                "no Deployment names a namespace; expected KEDA's Deployments in one".into(),
            );
        }
        several => {
            return Err(format!(
                "KEDA's Deployments are in namespaces {}; expected one",
                several.join(", ")
            ));
        }
    };
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        if kind == "Namespace" && name != namespace {
            return Err(format!(
                "it creates Namespace {name}; expected none but KEDA's own, {namespace}"
            ));
        }
        let Some(ns) = of(o) else { continue };
        if ns != namespace && !(ns == "kube-system" && kind == "RoleBinding") {
            return Err(format!(
                "{kind} {ns}/{name} is outside KEDA's namespace {namespace}; expected only a RoleBinding in kube-system there"
            ));
        }
    }
    Ok(namespace)
}

/// The object if it has a kind KEDA may have, an apiVersion and a name.
fn checked(value: Value, doc: usize) -> std::result::Result<Value, String> {
    let kind = value["kind"].as_str().unwrap_or_default();
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    if kind.is_empty() || name.is_empty() || value["apiVersion"].as_str().is_none() {
        return Err(format!(
            "document {doc} is not a Kubernetes object; expected apiVersion, kind and metadata.name"
        ));
    }
    if !KEDA_KINDS.contains(&kind) {
        return Err(format!(
            "document {doc} ({kind} {name}) has a kind kubegrid does not apply for KEDA; expected one of {}",
            KEDA_KINDS.join(", ")
        ));
    }
    Ok(value)
}

/// Rewrites every container image under `value` to the bundle's pin, collecting them.
fn pin_images(
    value: &mut Value,
    manifest: &Manifest,
    via_bundle_registry: bool,
    pinned: &mut Vec<ImageRef>,
) -> std::result::Result<(), String> {
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            for item in items {
                pin_images(item, manifest, via_bundle_registry, pinned)?;
            }
        }
        return Ok(());
    };
    for (key, child) in map.iter_mut() {
        if matches!(key.as_str(), "containers" | "initContainers")
            && let Value::Array(containers) = child
        {
            for container in containers {
                if let Some(image) = container["image"].as_str() {
                    let image = pin(image, manifest, via_bundle_registry)?;
                    container["image"] = Value::String(image.reference());
                    if !pinned.contains(&image) {
                        pinned.push(image);
                    }
                }
            }
        } else {
            pin_images(child, manifest, via_bundle_registry, pinned)?;
        }
    }
    Ok(())
}

/// The bundle's pin of `reference` (`name:tag`, or `name:tag@digest` as charts may write).
fn pin(
    reference: &str,
    manifest: &Manifest,
    via_bundle_registry: bool,
) -> std::result::Result<ImageRef, String> {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let (name, tag) = match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (without_digest, "latest"),
    };
    let image = manifest
        .images
        .iter()
        .find(|i| i.name == name && i.tag == tag)
        .ok_or_else(|| {
            let keda: Vec<String> = manifest
                .images
                .iter()
                .filter(|i| i.component.as_deref() == Some(KEDA_COMPONENT))
                .map(|i| format!("{}:{}", i.name, i.tag))
                .collect();
            format!(
                "image {reference} is not pinned in the bundle (its KEDA images: {})",
                if keda.is_empty() {
                    "none".to_string()
                } else {
                    keda.join(", ")
                }
            )
        })?;
    let digest = image.pull_digest(via_bundle_registry);
    if let Some((_, asked)) = reference.split_once('@')
        && asked != image.digest
        && Some(asked) != image.upstream_digest.as_deref()
    {
        return Err(format!(
            "image {reference} asks for a digest the bundle does not pin ({})",
            image.upstream_digest.as_deref().unwrap_or(&image.digest)
        ));
    }
    ImageRef::new(&image.name, &image.tag, digest).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "keda_tests.rs"]
mod tests;
