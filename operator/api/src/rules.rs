//! The CEL rules (`x-kubernetes-validations`) that the CRD schemas carry, so the API server
//! refuses a bad object at `kubectl apply` instead of the operator finding it later.
//!
//! Each rule mirrors a check that also runs in code (`Manifest::validate`, or
//! `Cluster::validate_update` / `Node::validate_update` for the transition rules), because an
//! API server may run without them (CEL validation needs Kubernetes 1.25+) and the CLI has no
//! API server at all. Rules that need more than one object, such as the odd etcd member count
//! (members are separate Node objects), cannot be CEL rules and stay code-only.
//!
//! Every rule is kept to what the `cel` interpreter in the tests evaluates, and to the
//! Kubernetes cost budget: strings that a regex reads have a `maxLength`.

use kube::core::{Message, Rule};

use crate::version::{
    SUPPORTED_CONTAINERD_LINES, SUPPORTED_ETCD_LINES, SUPPORTED_KUBERNETES_MINORS,
    kubernetes_version_expectation,
};

/// A rule with a fixed failure message.
fn rule(text: impl Into<String>, message: impl Into<String>) -> Rule {
    Rule::new(text).message(Message::Message(message.into()))
}

/// The regular expression (RE2 and Rust `regex` alike) that a Kubernetes version matches:
/// semantic-version grammar with major 1 and a supported minor, leading `v` optional; the
/// same language that [`crate::parse_kubernetes_version`] accepts.
///
/// `[.]` and `[+]` stand for the literal characters so that the rule needs no backslash
/// escapes, which read differently in YAML, CEL string literals and regex syntax.
pub(crate) fn kubernetes_version_regex() -> String {
    let minors: Vec<String> = SUPPORTED_KUBERNETES_MINORS.map(|m| m.to_string()).collect();
    // Numeric identifiers carry no leading zero; alphanumeric ones may start with digits.
    let number = "(0|[1-9][0-9]*)";
    let pre = "(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";
    let build = "[0-9A-Za-z-]+";
    format!(
        "^v?1[.]({})[.]{number}(-{pre}([.]{pre})*)?([+]{build}([.]{build})*)?$",
        minors.join("|")
    )
}

/// `spec.kubernetesVersion`: a supported version.
pub(crate) fn kubernetes_version() -> Rule {
    rule(
        format!("self.matches('{}')", kubernetes_version_regex()),
        format!("must be {}", kubernetes_version_expectation()),
    )
}

/// `spec.containerRuntime.containerd.version`: a supported release line.
pub(crate) fn containerd_line() -> Rule {
    let lines: Vec<String> = SUPPORTED_CONTAINERD_LINES
        .iter()
        .map(|l| format!("'{l}'"))
        .collect();
    rule(
        format!("self in [{}]", lines.join(", ")),
        format!(
            "must be a containerd release line, one of {}",
            SUPPORTED_CONTAINERD_LINES.join(", ")
        ),
    )
}

/// `spec.etcd.version`: a supported external etcd release line.
pub(crate) fn etcd_line() -> Rule {
    let lines: Vec<String> = SUPPORTED_ETCD_LINES
        .iter()
        .map(|l| format!("'{l}'"))
        .collect();
    rule(
        format!("self in [{}]", lines.join(", ")),
        format!(
            "must be an etcd release line, one of {}",
            SUPPORTED_ETCD_LINES.join(", ")
        ),
    )
}

/// `spec.controlPlaneEndpoint`: exactly one of `address` and `vip`.
pub(crate) fn endpoint_address_or_vip() -> Rule {
    rule(
        "has(self.address) != has(self.vip)",
        "must set exactly one of address or vip",
    )
}

/// Why `spec.controlPlaneEndpoint` cannot change, for the rule's message and the code's problem.
pub(crate) const WHY_ENDPOINT: &str =
    "the endpoint is in every certificate and kubeconfig; create a new Cluster to move it";
/// Why `spec.network.podCIDR` cannot change.
pub(crate) const WHY_POD_CIDR: &str =
    "the CNI and every host route the pod network; create a new Cluster to change it";
/// Why `spec.network.serviceCIDR` cannot change.
pub(crate) const WHY_SERVICE_CIDR: &str = "Services and the API server certificate use addresses \
                                           from it; create a new Cluster to change it";
/// Why a Node's `spec.clusterName` cannot change.
pub(crate) const WHY_CLUSTER_NAME: &str =
    "delete the Node and create one that names the other Cluster";

/// A transition rule: the field keeps the value it was created with. `why` ends the message.
pub(crate) fn immutable(why: &str) -> Rule {
    rule("self == oldSelf", format!("is immutable: {why}"))
}

/// Node `spec`: the SSH port in `port` or `ssh.port`, not both.
pub(crate) fn node_port_once() -> Rule {
    rule(
        "!(has(self.port) && has(self.ssh) && has(self.ssh.port))",
        "must set the SSH port in one of spec.port and spec.ssh.port, not both",
    )
    .field_path(".ssh.port")
}

/// Node `spec`: the SSH user in `user` or `ssh.user`, not both.
pub(crate) fn node_user_once() -> Rule {
    rule(
        "!(has(self.user) && has(self.ssh) && has(self.ssh.user))",
        "must set the SSH user in one of spec.user and spec.ssh.user, not both",
    )
    .field_path(".ssh.user")
}

/// The hint of a refused `privateKeyFile` (the Cluster's or a Node's).
pub(crate) const USE_KEY_SECRET: &str = "put the key in a Secret of the same namespace and name \
                                         it in the Cluster's spec.ssh.privateKeySecretRef";
/// The hint of a refused bastion `privateKeyFile`.
pub(crate) const USE_BASTION_KEY: &str = "the operator reaches the jump host with the host's key \
                                          from privateKeySecretRef; remove the field";
/// The hint of a refused `passwordEnv`.
pub(crate) const USE_PASSWORD_SECRET: &str =
    "put the password in a Secret of the same namespace and name it in passwordSecretRef";
/// The hint of a refused `cniManifest`.
pub(crate) const USE_CNI_CONFIGMAP: &str =
    "put the manifest in a ConfigMap of the same namespace and name it in cniManifestRef";
/// The hint of a refused `bundle.publicKeyFile`.
pub(crate) const USE_BUNDLE_KEY_SECRET: &str =
    "put the public key in a Secret of the same namespace and name it in publicKeyRef";

/// What a CLI-only field names.
#[derive(Clone, Copy)]
pub(crate) enum Names {
    /// A file path.
    File,
    /// An environment variable.
    Variable,
}

/// The message of a refused CLI-only field, shared by the CEL rule and the code validation:
/// such a field would name a file or variable of the operator's own pod, and a Cluster may
/// reach only objects of its namespace.
pub(crate) fn cli_only_message(field: &str, names: Names, hint: &str) -> String {
    let what = match names {
        Names::File => "a file",
        Names::Variable => "an environment variable",
    };
    format!(
        "{field} is for the kubegrid CLI only: it names {what}, which the operator would read \
         from its own pod, and a Cluster may reach only Secrets and ConfigMaps of its \
         namespace; {hint}"
    )
}

/// A rule on an object: its property `field` is absent. CRDs are only ever used by the
/// operator, so the rule refuses the field outright.
pub(crate) fn cli_only(field: &str, names: Names, hint: &str) -> Rule {
    rule(
        format!("!has(self.{field})"),
        cli_only_message(field, names, hint),
    )
    .field_path(format!(".{field}"))
}

/// The regular expression that a path with a `..` component matches.
pub(crate) const PARENT_DIR_REGEX: &str = "(^|/)[.][.](/|$)";

/// Why a `..` in `spec.bundle.source` is refused.
pub(crate) const WHY_NO_PARENT_DIR: &str =
    "must not contain a `..` component: name the bundle by its path inside a bundle root";

/// `spec.bundle.source`: no `..` component, so a path cannot climb out of the bundle roots.
pub(crate) fn no_parent_dir() -> Rule {
    rule(
        format!("!self.matches('{PARENT_DIR_REGEX}')"),
        WHY_NO_PARENT_DIR,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_regex_lists_every_supported_minor() {
        let regex = kubernetes_version_regex();
        for minor in SUPPORTED_KUBERNETES_MINORS {
            assert!(regex.contains(&minor.to_string()), "{minor} in {regex}");
        }
        assert!(!regex.contains('\\'), "no escapes: {regex}");
    }
}
