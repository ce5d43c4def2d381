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
    SUPPORTED_CONTAINERD_LINES, SUPPORTED_KUBERNETES_MINORS, kubernetes_version_expectation,
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
