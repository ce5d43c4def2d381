//! How kubegrid reaches hosts: the Cluster's SSH defaults and a Node's overrides.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The SSH user when the spec names none.
pub const DEFAULT_SSH_USER: &str = "root";

/// The SSH port when the spec names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// The Secret key that holds the private key when a reference names none: the key of the
/// `kubernetes.io/ssh-auth` Secret type.
pub const DEFAULT_SECRET_KEY: &str = "ssh-privatekey";

/// The Secret key that holds an SSH password when `passwordSecretRef` names none: the key of
/// the `kubernetes.io/basic-auth` Secret type.
pub const DEFAULT_PASSWORD_KEY: &str = "password";

pub(crate) fn default_user() -> String {
    DEFAULT_SSH_USER.to_string()
}

pub(crate) fn default_port() -> u16 {
    DEFAULT_SSH_PORT
}

/// SSH defaults for every host of a Cluster.
///
/// The operator takes credentials only from Secrets of the Cluster's namespace
/// (`privateKeySecretRef`, `passwordSecretRef`); `privateKeyFile` and `passwordEnv` name the
/// CLI user's own files and variables, and the API server refuses them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = crate::rules::cli_only("privateKeyFile", crate::rules::Names::File, crate::rules::USE_KEY_SECRET),
    validation = crate::rules::cli_only("passwordEnv", crate::rules::Names::Variable, crate::rules::USE_PASSWORD_SECRET)
)]
pub struct SshSpec {
    /// Login user; hosts are prepared through sudo when it is not root.
    #[serde(default = "default_user")]
    pub user: String,
    /// SSH port.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Private key file, for the CLI only (the operator refuses it: use
    /// `privateKeySecretRef`); relative paths resolve against the spec file's directory and a
    /// leading `~/` against the home directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    /// Secret in the Cluster's namespace that holds the private key, for the operator (the
    /// CLI cannot read Secrets); key `ssh-privatekey` unless `key` names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_secret_ref: Option<SecretKeyRef>,
    /// Name of an environment variable that holds a password, for password authentication,
    /// for the CLI only (the operator refuses it: use `passwordSecretRef`). The passphrase
    /// of an encrypted key is read from the environment too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Secret in the Cluster's namespace that holds the SSH password, for the operator (the
    /// CLI cannot read Secrets); key `password` unless `key` names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Run tasks through sudo; defaults to true when `user` is not root.
    #[serde(rename = "become", default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// Jump host that every connection goes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bastion: Option<BastionSpec>,
}

impl Default for SshSpec {
    fn default() -> Self {
        Self {
            user: default_user(),
            port: default_port(),
            private_key_file: None,
            private_key_secret_ref: None,
            password_env: None,
            password_secret_ref: None,
            sudo: None,
            bastion: None,
        }
    }
}

/// A Node's overrides of the Cluster's SSH defaults; unset fields inherit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = crate::rules::cli_only("privateKeyFile", crate::rules::Names::File, crate::rules::USE_KEY_SECRET),
    validation = crate::rules::cli_only("passwordEnv", crate::rules::Names::Variable, crate::rules::USE_PASSWORD_SECRET)
)]
pub struct NodeSshSpec {
    /// Login user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// SSH port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Private key file, resolved like the Cluster's; CLI only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
    /// Name of an environment variable that holds the password; CLI only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Secret in the Node's namespace that holds this host's SSH password, for the operator;
    /// key `password` unless `key` names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Run tasks through sudo.
    #[serde(rename = "become", default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// Jump host for this Node instead of the Cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bastion: Option<BastionSpec>,
}

/// A jump host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = crate::rules::cli_only("privateKeyFile", crate::rules::Names::File, crate::rules::USE_BASTION_KEY))]
pub struct BastionSpec {
    /// IP address or DNS name.
    pub address: String,
    /// SSH port.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Login user on the jump host.
    pub user: String,
    /// Private key file for the jump host, for the CLI only; the host's own key when unset
    /// (in the operator, always the host's key from `privateKeySecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<String>,
}

/// A key in a Secret of the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key within the Secret; when unset, `ssh-privatekey` for a private key and
    /// `password` for a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKeyRef {
    /// The key to read for a private key, with the default applied.
    pub fn key(&self) -> &str {
        self.key_or(DEFAULT_SECRET_KEY)
    }

    /// The key to read, or `default` when the reference names none.
    pub fn key_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.key.as_deref().unwrap_or(default)
    }
}

/// A key in a ConfigMap of the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapKeyRef {
    /// ConfigMap name.
    pub name: String,
    /// Key within the ConfigMap, e.g. `cni.yaml`.
    pub key: String,
}

/// A named object (a Secret or ConfigMap) in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectRef {
    /// Object name.
    pub name: String,
}
