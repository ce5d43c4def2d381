//! Names, labels and taints, checked the way Kubernetes checks them (apimachinery's
//! `IsDNS1123Label`, `IsQualifiedName` and `IsValidLabelValue`), so nothing the API server
//! or the kubelet would refuse gets as far as a host.
//!
//! The kubelet takes a Node's labels as one comma-separated `--node-labels` flag of `k=v`
//! pairs; keys and values that pass these rules hold neither `,` nor `=`, so one label
//! cannot smuggle in another.

use super::{Checker, Subject};
use crate::{
    Node,
    manifest::name_of,
    text::{EXCERPT_CHARS, excerpt},
};

/// The longest DNS-1123 label, and the longest name part of a label key or a label value.
const MAX_LABEL: usize = 63;
/// The longest DNS-1123 subdomain (a label key's prefix).
const MAX_SUBDOMAIN: usize = 253;

const LABEL_NAME_RULE: &str = "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending \
     with a letter or digit, e.g. gpu-1";
const KEY_RULE: &str = "a label key as Kubernetes takes it: an optional DNS subdomain prefix \
     and '/', then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending \
     with a letter or digit, e.g. example.com/gpu-model";
const VALUE_RULE: &str = "an empty value, or at most 63 letters, digits, '-', '_' or '.', \
     starting and ending with a letter or digit, e.g. h100";

impl Checker<'_> {
    /// The Cluster's and the Nodes' names, and each Node's labels and taints.
    pub(super) fn names(&mut self) {
        let at = self.cluster_subject();
        let cluster = self.manifest.name().to_string();
        if let Err(why) = dns_label(&cluster) {
            self.report(
                &at,
                "metadata.name",
                format!("`{}`, {why}", excerpt(&cluster, EXCERPT_CHARS)),
                format!("{LABEL_NAME_RULE}: it names the cluster's Secrets and files"),
            );
        }
        for (index, node) in self.manifest.nodes().iter().enumerate() {
            let at = self.node_subject(index, node);
            self.node_names(&at, node);
        }
    }

    fn node_names(&mut self, at: &Subject, node: &Node) {
        let name = name_of(&node.metadata.name);
        if let Err(why) = dns_label(name) {
            self.report(
                at,
                "metadata.name",
                format!("`{}`, {why}", excerpt(name, EXCERPT_CHARS)),
                format!(
                    "{LABEL_NAME_RULE}: it becomes the host's Kubernetes Node name and is \
                     written into its certificates"
                ),
            );
        }
        for (key, value) in &node.spec.labels {
            // The whole key, so the field's line can be found; the message shortens it.
            let field = format!("spec.labels[{key}]");
            if let Err(why) = qualified_name(key) {
                self.report(
                    at,
                    &field,
                    format!("the key `{}`, {why}", excerpt(key, EXCERPT_CHARS)),
                    KEY_RULE,
                );
            }
            if let Err(why) = label_value(value) {
                self.report(
                    at,
                    &field,
                    format!("the value `{}`, {why}", excerpt(value, EXCERPT_CHARS)),
                    VALUE_RULE,
                );
            }
        }
        for (i, taint) in node.spec.taints.iter().enumerate() {
            // An empty key is reported with the other taint rules.
            if !taint.key.trim().is_empty()
                && let Err(why) = qualified_name(&taint.key)
            {
                self.report(
                    at,
                    &format!("spec.taints[{i}].key"),
                    format!("`{}`, {why}", excerpt(&taint.key, EXCERPT_CHARS)),
                    KEY_RULE.replace("label key", "taint key"),
                );
            }
            if let Some(value) = &taint.value
                && let Err(why) = label_value(value)
            {
                self.report(
                    at,
                    &format!("spec.taints[{i}].value"),
                    format!("`{}`, {why}", excerpt(value, EXCERPT_CHARS)),
                    VALUE_RULE,
                );
            }
        }
    }
}

/// Why `name` is not a DNS-1123 label, as "which ..." for a problem's `seen`.
pub(crate) fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("which is empty".into());
    }
    if name.chars().count() > MAX_LABEL {
        return Err(format!("which is {} characters long", name.chars().count()));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("which has uppercase letters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("which has the character {}", shown(c)));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("which starts or ends with '-'".into());
    }
    Ok(())
}

/// Why `address` is neither an IP address nor a lowercase RFC 1123 host name (letters,
/// digits and '-' in dot-separated labels; one trailing dot allowed). Lowercase, since the
/// endpoint's name goes into the API server certificate's SANs, which kubeadm takes only
/// as DNS-1123 subdomains.
pub(crate) fn host(address: &str) -> Result<(), String> {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = address.strip_suffix('.').unwrap_or(address);
    if address.starts_with('[') || address.contains(':') {
        return Err(
            "which is not an IP address, and a host name has no ':' or brackets (the \
                    port goes in the port field)"
                .into(),
        );
    }
    if name.len() > MAX_SUBDOMAIN {
        return Err(format!("which is {} characters long", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("which has an empty part between dots".into());
        }
        dns_label(label)?;
    }
    Ok(())
}

/// Why `name` is not a DNS-1123 subdomain (dot-separated DNS-1123 labels).
fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > MAX_SUBDOMAIN {
        return Err(format!("which is {} characters long", name.len()));
    }
    name.split('.').try_for_each(|label| {
        dns_label(label).map_err(|why| {
            if label.is_empty() {
                "which has an empty part between dots".to_string()
            } else {
                why
            }
        })
    })
}

/// Why `key` is not a qualified name (label and taint keys): `[prefix/]name`.
pub(crate) fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("whose prefix before '/' is empty".into());
        }
        if name.contains('/') {
            return Err("which has more than one '/'".into());
        }
        dns_subdomain(prefix).map_err(|why| {
            format!(
                "whose prefix `{}` is not a DNS subdomain ({why})",
                excerpt(prefix, EXCERPT_CHARS)
            )
        })?;
    }
    if name.is_empty() {
        return Err("whose name part is empty".into());
    }
    label_text(name).map_err(|why| match prefix {
        Some(_) => format!("whose name part after '/' is not valid: {why}"),
        None => why,
    })
}

/// Why `value` is not a label value (empty is allowed).
pub(crate) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    label_text(value)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn label_text(text: &str) -> Result<(), String> {
    let count = text.chars().count();
    if count > MAX_LABEL {
        return Err(format!("which is {count} characters long"));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("which has the character {}", shown(c)));
    }
    if !text.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !text.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err("which does not start and end with a letter or digit".into());
    }
    Ok(())
}

/// One character for a message: escaped when invisible, with a word for the blank ones.
fn shown(c: char) -> String {
    match c {
        ' ' => "' ' (a space)".into(),
        ',' => "',' (the kubelet would read it as the start of another label)".into(),
        _ => format!("'{}'", excerpt(&c.to_string(), 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_kubernetes_rules() {
        for good in ["a", "gpu-1", "0", "a-b-c", &"a".repeat(63)] {
            assert_eq!(dns_label(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "A",
            "a_b",
            "-a",
            "a-",
            "a.b",
            "a\nb",
            &"a".repeat(64),
            "é",
        ] {
            assert!(dns_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts_are_ip_addresses_or_host_names() {
        for good in [
            "10.0.0.1",
            "fd00::1",
            "node-1.example.com",
            "lb.example.",
            "a",
        ] {
            assert_eq!(host(good), Ok(()), "{good}");
        }
        for bad in [
            "[fd00::1]",
            "10.0.0.1:22",
            "a..b",
            "-a.b",
            "a_b.c",
            "a/b",
            "é.com",
            "LB.example",
        ] {
            assert!(host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn qualified_names_follow_the_kubernetes_rules() {
        for good in [
            "a",
            "A_b.c-D",
            "example.com/gpu",
            "node.kubernetes.io/instance-type",
            &format!("{}/x", "a".repeat(63)),
            &"Z".repeat(63),
        ] {
            assert_eq!(qualified_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a/b/c",
            "Example.com/a",
            "-a",
            "a_",
            "a,b=c",
            "a=b",
            "a b",
            &"a".repeat(64),
            &format!("{}/x", "a".repeat(254)),
        ] {
            assert!(qualified_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn label_values_follow_the_kubernetes_rules() {
        for good in ["", "a", "H100_80GB.hbm3-x", &"a".repeat(63)] {
            assert_eq!(label_value(good), Ok(()), "{good}");
        }
        for bad in ["a,b=c", "a=b", "-a", "a.", " a", "a/b", &"a".repeat(64)] {
            assert!(label_value(bad).is_err(), "{bad:?}");
        }
        assert!(
            label_value("x,evil=1")
                .unwrap_err()
                .contains("another label")
        );
    }
}
