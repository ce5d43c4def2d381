//! The CRDs that the operator's Helm chart installs, rendered the way `kubegrid crd` prints
//! them and `charts/kubegrid/crds/` holds them.

mod formats;

/// The CRD type, re-exported so that callers need no k8s-openapi dependency of their own.
pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Cluster, Error, Node, Result};

/// Both CRDs, Cluster first: a Node names its Cluster, so the Cluster kind is installed
/// before the Node kind.
///
/// These are the CRDs to install and test, not `Cluster::crd()` / `Node::crd()`: their
/// schemas carry only integer formats the API server recognizes (see [`formats`]).
pub fn crds() -> [CustomResourceDefinition; 2] {
    [Cluster::crd(), Node::crd()].map(|mut crd| {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                formats::recognized_integer_formats(schema);
            }
        }
        crd
    })
}

/// One CRD as a YAML document without a leading `---`, as `kubectl apply -f` takes it.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String> {
    serde_yaml::to_string(crd).map_err(|source| Error::RenderCrd {
        name: crd_name(crd).to_string(),
        source,
    })
}

/// The file a CRD is kept in: its name with `.yaml`, e.g. `clusters.kubegrid.io.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd_name(crd))
}

fn crd_name(crd: &CustomResourceDefinition) -> &str {
    crd.metadata.name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_come_cluster_first_with_their_file_names() {
        let names: Vec<String> = crds().iter().map(crd_file_name).collect();
        assert_eq!(
            names,
            ["clusters.kubegrid.io.yaml", "nodes.kubegrid.io.yaml"]
        );
        let text = crd_yaml(&crds()[0]).unwrap();
        assert!(
            text.starts_with("apiVersion: apiextensions.k8s.io/v1\n"),
            "{text}"
        );
    }
}
