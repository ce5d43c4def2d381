//! Rules about the bundle registry (`spec.bundle.registry`): it runs on a Node of this
//! cluster, on a port nothing else of the cluster's takes there, and no user mirror competes
//! with it for the registries it serves.

use super::{Checker, Subject};
use crate::{
    Role,
    cluster::{BUNDLE_REGISTRY_MIRRORED, BundleRegistrySpec, DEFAULT_API_SERVER_PORT},
    manifest::name_of,
};

/// Ports a Kubernetes or etcd component binds on a host with `role` (None: every host that
/// runs a kubelet), so the registry cannot take them.
const CLUSTER_PORTS: &[(u16, &str, Option<Role>)] = &[
    (2379, "etcd's client port", Some(Role::Etcd)),
    (2380, "etcd's peer port", Some(Role::Etcd)),
    (2381, "etcd's metrics port", Some(Role::Etcd)),
    (10248, "the kubelet's health port", None),
    (10249, "kube-proxy's metrics port", None),
    (10250, "the kubelet's API port", None),
    (10256, "kube-proxy's health port", None),
    (
        10257,
        "kube-controller-manager's port",
        Some(Role::ControlPlane),
    ),
    (10259, "kube-scheduler's port", Some(Role::ControlPlane)),
];

impl Checker<'_> {
    pub(super) fn bundle_registry(&mut self, at: &Subject) {
        let spec = &self.manifest.cluster().spec;
        let Some(registry) = spec.bundle.as_ref().and_then(|b| b.registry.as_ref()) else {
            return;
        };
        self.registry_host(at, registry);
        for (i, mirror) in spec.container_runtime.registry_mirrors.iter().enumerate() {
            let name = mirror.registry.trim().to_ascii_lowercase();
            if BUNDLE_REGISTRY_MIRRORED.contains(&name.as_str()) {
                self.report(
                    at,
                    &format!("spec.containerRuntime.registryMirrors[{i}].registry"),
                    format!(
                        "`{}`, whose pulls the bundle registry (spec.bundle.registry) already serves",
                        mirror.registry
                    ),
                    format!(
                        "no mirror for {} while spec.bundle.registry is set (their pulls go to the bundle registry and never upstream); remove this mirror or spec.bundle.registry",
                        BUNDLE_REGISTRY_MIRRORED.join(", ")
                    ),
                );
            }
        }
    }

    fn registry_host(&mut self, at: &Subject, registry: &BundleRegistrySpec) {
        const FIELD: &str = "spec.bundle.registry";
        self.port(at, &format!("{FIELD}.port"), registry.port);
        let nodes = self.manifest.nodes();
        let Some(node) = nodes
            .iter()
            .find(|n| name_of(&n.metadata.name) == registry.host)
        else {
            let known: Vec<&str> = nodes.iter().map(|n| name_of(&n.metadata.name)).collect();
            let expected = if known.is_empty() {
                "the name of a Node of this cluster (none names it yet)".to_string()
            } else {
                format!("the name of one of its Nodes: {}", known.join(", "))
            };
            self.report(
                at,
                &format!("{FIELD}.host"),
                format!("`{}`, which is not a Node of this cluster", registry.host),
                expected,
            );
            return;
        };
        let roles = &node.spec.roles;
        let mut taken: Vec<(u16, &str)> = CLUSTER_PORTS
            .iter()
            .filter(|(_, _, role)| match role {
                Some(role) => {
                    roles.contains(role) || (*role == Role::Etcd && self.stacked_etcd_on(roles))
                }
                None => roles.contains(&Role::ControlPlane) || roles.contains(&Role::Worker),
            })
            .map(|(port, what, _)| (*port, *what))
            .collect();
        if roles.contains(&Role::ControlPlane) {
            let endpoint = &self.manifest.cluster().spec.control_plane_endpoint;
            // With kube-vip the API server binds the endpoint's port; behind a load balancer
            // it binds kubeadm's default.
            let api = if endpoint.vip.is_some() {
                endpoint.port
            } else {
                DEFAULT_API_SERVER_PORT
            };
            taken.push((api, "the API server's port"));
        }
        if let Some((_, what)) = taken.iter().find(|(port, _)| *port == registry.port) {
            self.report(
                at,
                &format!("{FIELD}.port"),
                format!(
                    "{}, which is {what} on Node {}",
                    registry.port, registry.host
                ),
                "a port no Kubernetes or etcd component uses on that Node, such as 5000",
            );
        }
    }

    /// Whether a control-plane Node runs stacked etcd: no Node of the cluster has the etcd
    /// role.
    fn stacked_etcd_on(&self, roles: &[Role]) -> bool {
        roles.contains(&Role::ControlPlane)
            && !self
                .manifest
                .nodes()
                .iter()
                .any(|n| n.spec.roles.contains(&Role::Etcd))
    }
}
