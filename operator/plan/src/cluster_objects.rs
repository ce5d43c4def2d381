//! `cluster_objects:` the objects that make sandboxed runtimes and GPUs usable, applied on the
//! init node once the CNI is up: a RuntimeClass per enabled handler and, on a Cluster with
//! `spec.gpu`, NVIDIA's device plugin and the DCGM exporter pinned by the bundle's digests.
//! With `devicePlugin: gpu-operator` the GPU Operator's chart values are written instead, for
//! the user's `helm install`: kubegrid does not install that chart.

use std::path::PathBuf;

use kubegrid_agent::protocol::{Action, FileArgs};
use serde::Deserialize;

use crate::{
    bundle::Bundle,
    context::ClusterContext,
    error::Result,
    gpu::{GpuImages, cluster_objects as render_objects},
    kube_modules::apply_manifest,
};

/// `cluster_objects:` where the manifest and the GPU Operator's values are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterObjectsSpec {
    /// The manifest kubegrid applies.
    pub path: PathBuf,
    /// The GPU Operator's chart values (`devicePlugin: gpu-operator`).
    pub gpu_operator_values: PathBuf,
}

/// The tasks: nothing when there is nothing to apply (runc only, no GPU stack).
pub(crate) fn cluster_objects(
    spec: &ClusterObjectsSpec,
    task: &str,
    cluster: &ClusterContext,
    bundle: &Bundle,
) -> Result<Vec<(String, Action)>> {
    let images = match cluster.gpu.as_ref().map(|g| g.device_plugin.as_str()) {
        Some("nvidia-device-plugin") => Some(GpuImages::from_bundle(
            bundle.manifest(),
            cluster.bundle_registry.is_some(),
        )?),
        _ => None,
    };
    let objects = render_objects(cluster, images.as_ref())?;
    let docs: Vec<String> = [
        objects.runtime_classes,
        objects.device_plugin,
        objects.dcgm_exporter,
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut tasks = Vec::new();
    if !docs.is_empty() {
        tasks.extend(apply_manifest(task, &spec.path, join_documents(&docs)));
    }
    if let Some(values) = objects.gpu_operator_values {
        tasks.push((
            format!("{task} (GPU Operator values)"),
            Action::File(FileArgs {
                path: spec.gpu_operator_values.clone(),
                content: values,
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
                backup: true,
            }),
        ));
    }
    Ok(tasks)
}

/// Multi-document YAML: each manifest after the first starts a new document.
fn join_documents(docs: &[String]) -> String {
    let mut out = String::new();
    for doc in docs {
        if !out.is_empty() {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("---\n");
        }
        out.push_str(doc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_separated_once() {
        let joined = join_documents(&["a: 1\n".into(), "b: 2".into(), "c: 3\n".into()]);
        assert_eq!(joined, "a: 1\n---\nb: 2\n---\nc: 3\n");
        assert_eq!(join_documents(&["a: 1\n".into()]), "a: 1\n");
    }
}
