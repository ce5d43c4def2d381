//! Resolving each Node into a host to connect to: the Cluster's SSH defaults merged with the
//! Node's overrides, paths made absolute.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use crate::{
    Arch, Manifest, Node, Role, SecretKeyRef, Taint,
    manifest::name_of,
    ssh::{BastionSpec, DEFAULT_SSH_USER},
};

/// Everything needed to reach and prepare one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostTarget {
    /// The Node's name.
    pub name: String,
    /// IP address or DNS name.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key file, absolute.
    pub key_file: Option<PathBuf>,
    /// Secret that holds the private key (for the operator).
    pub key_secret: Option<SecretKeyRef>,
    /// Environment variable that holds the password (the CLI).
    pub password_env: Option<String>,
    /// Secret that holds the password (the operator): the Node's own, or else the
    /// Cluster's.
    pub password_secret: Option<SecretKeyRef>,
    /// Whether tasks run through sudo.
    pub sudo: bool,
    /// Jump host.
    pub bastion: Option<BastionTarget>,
    /// What the host runs.
    pub roles: BTreeSet<Role>,
    /// CPU architecture, when the spec names it.
    pub arch: Option<Arch>,
    /// Kubernetes labels.
    pub labels: BTreeMap<String, String>,
    /// Kubernetes taints.
    pub taints: Vec<Taint>,
    /// Whether it is a GPU Node as the spec says: the Node's `gpu`, or `none` whenever the
    /// Cluster has no `spec.gpu` (kubegrid then installs no GPU software anywhere).
    pub gpu: crate::gpu::NodeGpu,
}

/// A resolved jump host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BastionTarget {
    /// IP address or DNS name.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key file, absolute: the bastion's own, or else the host's.
    pub key_file: Option<PathBuf>,
}

impl Manifest {
    /// One target per Node, in file order.
    pub fn hosts(&self) -> Vec<HostTarget> {
        self.nodes().iter().map(|node| self.host(node)).collect()
    }

    /// The target for one Node of this manifest.
    pub fn host(&self, node: &Node) -> HostTarget {
        let cluster = &self.cluster().spec.ssh;
        let own = node.spec.ssh.clone().unwrap_or_default();
        let user = own
            .user
            .or_else(|| node.spec.user.clone())
            .unwrap_or_else(|| cluster.user.clone());
        let key_file = own
            .private_key_file
            .as_ref()
            .or(cluster.private_key_file.as_ref())
            .map(|raw| self.resolve_path(raw));
        let bastion = own.bastion.as_ref().or(cluster.bastion.as_ref());
        HostTarget {
            name: name_of(&node.metadata.name).to_string(),
            address: node.spec.address.clone(),
            port: own.port.or(node.spec.port).unwrap_or(cluster.port),
            sudo: own
                .sudo
                .or(cluster.sudo)
                .unwrap_or(user != DEFAULT_SSH_USER),
            user,
            bastion: bastion.map(|b| self.bastion(b, key_file.as_ref())),
            key_file,
            key_secret: cluster.private_key_secret_ref.clone(),
            password_env: own.password_env.or_else(|| cluster.password_env.clone()),
            password_secret: own
                .password_secret_ref
                .or_else(|| cluster.password_secret_ref.clone()),
            roles: node.spec.roles.iter().copied().collect(),
            arch: node.spec.arch,
            labels: node.spec.labels.clone(),
            taints: node.spec.taints.clone(),
            gpu: if self.cluster().spec.gpu.is_some() {
                node.spec.gpu
            } else {
                crate::gpu::NodeGpu::None
            },
        }
    }

    fn bastion(&self, spec: &BastionSpec, host_key: Option<&PathBuf>) -> BastionTarget {
        BastionTarget {
            address: spec.address.clone(),
            port: spec.port,
            user: spec.user.clone(),
            key_file: spec
                .private_key_file
                .as_ref()
                .map(|raw| self.resolve_path(raw))
                .or_else(|| host_key.cloned()),
        }
    }
}
