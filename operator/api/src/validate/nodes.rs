//! Rules about Nodes: each on its own, all of them together (names, addresses, roles), and
//! whether every host has SSH credentials.

use std::{collections::BTreeMap, net::IpAddr};

use super::{Checker, Subject, ValidateFor};
use crate::{Node, Role, manifest::name_of};

impl Checker<'_> {
    pub(super) fn node_subject(&self, index: usize, node: &Node) -> Subject {
        Subject {
            resource: format!("Node/{}", name_of(&node.metadata.name)),
            location: self.manifest.node_location(index),
        }
    }

    pub(super) fn nodes(&mut self) {
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        let mut endpoints: BTreeMap<(String, u16), String> = BTreeMap::new();
        for (index, node) in self.manifest.nodes().iter().enumerate() {
            let at = self.node_subject(index, node);
            let name = name_of(&node.metadata.name);
            if let Some(first) = names.get(name) {
                self.report(
                    &at,
                    "metadata.name",
                    format!("a second Node named `{name}` (the first is {first})"),
                    "unique Node names",
                );
            } else {
                names.insert(name, describe(&at));
            }
            self.node(&at, node);
            let host = self.manifest.host(node);
            let key = (host.address.trim().to_ascii_lowercase(), host.port);
            if key.0.is_empty() {
                continue;
            }
            if let Some(first) = endpoints.get(&key) {
                self.report(
                    &at,
                    "spec.address",
                    format!(
                        "`{}` port {}, which {first} already uses",
                        host.address, host.port
                    ),
                    "one Node per address and SSH port",
                );
            } else {
                endpoints.insert(key, at.resource.clone());
            }
        }
    }

    fn node(&mut self, at: &Subject, node: &Node) {
        let spec = &node.spec;
        if spec.cluster_name.trim().is_empty() {
            self.report(
                at,
                "spec.clusterName",
                "an empty string",
                "the Cluster's name",
            );
        }
        let valid = self.address(at, "spec.address", &spec.address);
        // kubeadm's advertise address, the kubelet's node IP and etcd's listen URLs take IP
        // addresses only, and they all come from the Node's address.
        if valid && spec.address.parse::<std::net::IpAddr>().is_err() {
            self.report(
                at,
                "spec.address",
                format!(
                    "`{}`, a DNS name",
                    crate::text::excerpt(&spec.address, crate::text::EXCERPT_CHARS)
                ),
                "the host's IP address: it is also the API server's advertise address, the \
                 kubelet's node IP and etcd's listen address, which take IP addresses only",
            );
        }
        self.outside_cluster_networks(at, &spec.address);
        if let Some(port) = spec.port {
            self.port(at, "spec.port", port);
        }
        if spec.roles.is_empty() {
            self.report(
                at,
                "spec.roles",
                "an empty list",
                "at least one of control-plane, etcd, worker",
            );
        }
        if spec.user.as_ref().is_some_and(|u| u.trim().is_empty()) {
            self.report(at, "spec.user", "an empty string", "a login user name");
        }
        let mut taints = BTreeMap::new();
        for (i, taint) in spec.taints.iter().enumerate() {
            if taint.key.trim().is_empty() {
                self.report(
                    at,
                    &format!("spec.taints[{i}].key"),
                    "an empty string",
                    "a taint key such as dedicated",
                );
            }
            if let Some(first) = taints.insert((taint.key.as_str(), taint.effect), i) {
                self.report(
                    at,
                    &format!("spec.taints[{i}]"),
                    format!(
                        "key `{}` with effect {:?} again (first at spec.taints[{first}])",
                        taint.key, taint.effect
                    ),
                    "one taint per key and effect",
                );
            }
        }
        let Some(ssh) = &spec.ssh else {
            return;
        };
        if let (Some(short), Some(long)) = (spec.port, ssh.port) {
            self.report(
                at,
                "spec.ssh.port",
                format!("both spec.port ({short}) and spec.ssh.port ({long})"),
                "the port in one of the two fields",
            );
        }
        if let (Some(short), Some(long)) = (&spec.user, &ssh.user) {
            self.report(
                at,
                "spec.ssh.user",
                format!("both spec.user (`{short}`) and spec.ssh.user (`{long}`)"),
                "the user in one of the two fields",
            );
        }
        if let Some(port) = ssh.port {
            self.port(at, "spec.ssh.port", port);
        }
        if ssh.user.as_ref().is_some_and(|u| u.trim().is_empty()) {
            self.report(at, "spec.ssh.user", "an empty string", "a login user name");
        }
        if let Some(file) = &ssh.private_key_file {
            self.key_file(at, "spec.ssh.privateKeyFile", file);
        }
        if let Some(var) = &ssh.password_env {
            self.password_env(at, "spec.ssh.passwordEnv", var);
        }
        if let Some(bastion) = &ssh.bastion {
            self.bastion(at, "spec.ssh.bastion", bastion);
        }
    }

    /// A host inside the pod or service network would be unreachable once the CNI or
    /// kube-proxy routes that range.
    fn outside_cluster_networks(&mut self, at: &Subject, address: &str) {
        let Ok(ip) = address.trim().parse::<IpAddr>() else {
            return;
        };
        let network = &self.manifest.cluster().spec.network;
        for (name, net) in [
            ("podCIDR", network.pod_cidr),
            ("serviceCIDR", network.service_cidr),
        ] {
            if net.contains(&ip) {
                self.report(
                    at,
                    "spec.address",
                    format!("`{address}`, which is inside the Cluster's {name} `{net}`"),
                    "a host address outside the pod and service networks",
                );
            }
        }
    }

    /// Rules about the Nodes as a set: a control plane exists and, before the cluster is
    /// installed, etcd has an odd count.
    pub(super) fn topology(&mut self) {
        let at = self.cluster_subject();
        let nodes = self.manifest.nodes();
        let with = |role: Role| -> Vec<&str> {
            nodes
                .iter()
                .filter(|n| n.spec.roles.contains(&role))
                .map(|n| name_of(&n.metadata.name))
                .collect()
        };
        let control_plane = with(Role::ControlPlane);
        if control_plane.is_empty() {
            let seen = if nodes.is_empty() {
                "no Nodes that name this Cluster".to_string()
            } else {
                format!("{} Nodes, none with role control-plane", nodes.len())
            };
            self.report(
                &at,
                "Node spec.roles",
                seen,
                "at least one Node with role control-plane",
            );
        }
        let etcd = with(Role::Etcd);
        let (members, how) = if etcd.is_empty() {
            (control_plane, "stacked on the control-plane Nodes")
        } else {
            (etcd, "Nodes with role etcd")
        };
        if !self.installed && !members.is_empty() && members.len() % 2 == 0 {
            self.report(
                &at,
                "Node spec.roles",
                format!(
                    "{} etcd members ({how}: {})",
                    members.len(),
                    members.join(", ")
                ),
                format!(
                    "an odd number of etcd members, e.g. {} or {}: an even count survives no \
                     more failures than one member fewer",
                    members.len() - 1,
                    members.len() + 1
                ),
            );
        }
    }

    /// Every host needs some way to log in. Reported once on the Cluster when no host has
    /// any, else on each Node that lacks them.
    pub(super) fn credentials(&mut self) {
        let operator = self.target == ValidateFor::Operator;
        let hosts = self.manifest.hosts();
        let lacking: Vec<usize> = hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.key_file.is_none()
                    && h.password_env.is_none()
                    && !(operator && (h.key_secret.is_some() || h.password_secret.is_some()))
            })
            .map(|(i, _)| i)
            .collect();
        let secret_only = !operator
            && (hosts.iter().any(|h| h.password_secret.is_some())
                || self
                    .manifest
                    .cluster()
                    .spec
                    .ssh
                    .private_key_secret_ref
                    .is_some());
        let (seen, expected) = if operator {
            (
                "no privateKeySecretRef or passwordSecretRef",
                "privateKeySecretRef on the Cluster, or passwordSecretRef on the Cluster or \
                 the Node (Secrets in their namespace)",
            )
        } else if secret_only {
            (
                "only privateKeySecretRef or passwordSecretRef, which the CLI cannot read \
                 (Secrets are for the operator)",
                "privateKeyFile or passwordEnv on the Cluster or the Node",
            )
        } else {
            (
                "no privateKeyFile or passwordEnv",
                "privateKeyFile or passwordEnv on the Cluster or the Node",
            )
        };
        if hosts.is_empty() || lacking.len() == hosts.len() {
            if hosts.is_empty() && self.cluster_has_credentials(operator) {
                return;
            }
            let at = self.cluster_subject();
            self.report(&at, "spec.ssh", seen, expected);
            return;
        }
        for index in lacking {
            let node = &self.manifest.nodes()[index];
            let at = self.node_subject(index, node);
            self.report(&at, "spec.ssh", seen, expected);
        }
    }

    fn cluster_has_credentials(&self, operator: bool) -> bool {
        let ssh = &self.manifest.cluster().spec.ssh;
        ssh.private_key_file.is_some()
            || ssh.password_env.is_some()
            || (operator
                && (ssh.private_key_secret_ref.is_some() || ssh.password_secret_ref.is_some()))
    }
}

/// "Node/a (line 12)" or "Node/a", for pointing at an earlier resource.
fn describe(at: &Subject) -> String {
    match &at.location {
        Some(l) => format!("{} on line {}", at.resource, l.line),
        None => at.resource.clone(),
    }
}
