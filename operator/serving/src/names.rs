//! Names, labels and paths shared by the controller, the objects it renders and the node
//! cache: one place, so a Service's selector and its pods' labels cannot drift apart.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The label every object of an LLMService carries, with the LLMService's name as value;
/// the scale subresource's selector is built on it.
pub const SERVICE_LABEL: &str = "serving.kubegrid.io/llmservice";
/// The label of a service-mode replica's StatefulSet, pod and Service: its index.
pub const REPLICA_LABEL: &str = "serving.kubegrid.io/replica";
/// The field manager of the controller's server-side applies.
pub const MANAGER: &str = "kubegrid-serving";
/// The finalizer that lets the controller remove a deleted LLMService's replicas in order,
/// each drained, before the object goes.
pub const FINALIZER: &str = "serving.kubegrid.io/drain";
/// Where the node cache keeps models on each host, one directory per model.
pub const MODEL_ROOT: &str = "/var/lib/kubegrid/models";
/// Where a serving pod sees its model's directory (read-only).
pub const MODEL_MOUNT: &str = "/models";
/// The file the node cache writes in a model's directory once every file of the current
/// commit verified; it holds the commit. The serving pod's init container waits for it.
pub const READY_MARKER: &str = "ready";
/// The link in a model's directory to the verified commit's directory.
pub const CURRENT_LINK: &str = "current";
/// The node label prefix the cache sets, `<prefix><cache key>=ready`, on nodes holding a
/// verified copy; serving pods prefer those nodes.
pub const CACHED_LABEL_PREFIX: &str = "cache.serving.kubegrid.io/";
/// The longest LLMService name the controller serves: `<name>-<index>-0` (a service-mode
/// pod) stays a DNS label, and `<name>-<index>` leaves room for the StatefulSet's
/// `controller-revision-hash` label value.
pub const MAX_NAME_LEN: usize = 40;

/// The labels of every object and pod of LLMService `name`.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "vllm".into()),
        ("app.kubernetes.io/instance".into(), name.into()),
        ("app.kubernetes.io/managed-by".into(), "kubegrid".into()),
        (SERVICE_LABEL.into(), name.into()),
    ])
}

/// The selector of LLMService `name`'s pods, as labels.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(SERVICE_LABEL.into(), name.into())])
}

/// The selector of LLMService `name`'s pods as a string, what `status.selector` (and so
/// the scale subresource, HPA and KEDA) reports.
pub fn selector(name: &str) -> String {
    format!("{SERVICE_LABEL}={name}")
}

/// The name of service-mode replica `index` of `name`: its StatefulSet and its Service.
pub fn replica(name: &str, index: i32) -> String {
    format!("{name}-{index}")
}

/// The node-cache key of a model URI: 16 hex digits of its sha256, short enough for a
/// label key and a path segment whatever the URI holds.
pub fn cache_key(uri: &str) -> String {
    let digest = Sha256::digest(uri.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` is a DNS-1035 label of at most [`MAX_NAME_LEN`] bytes, as a Service name
/// must be.
pub fn is_servable_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_short_stable_and_distinct() {
        let a = cache_key("hf://meta-llama/Llama-3.1-8B-Instruct@main");
        assert_eq!(a.len(), 16);
        assert_eq!(a, cache_key("hf://meta-llama/Llama-3.1-8B-Instruct@main"));
        assert_ne!(a, cache_key("hf://meta-llama/Llama-3.1-8B-Instruct@v2"));
    }

    #[test]
    fn servable_names_are_short_dns_labels() {
        assert!(is_servable_name("llama-8b"));
        assert!(!is_servable_name("8b"));
        assert!(!is_servable_name("llama.8b"));
        assert!(!is_servable_name("llama-"));
        assert!(!is_servable_name(&"a".repeat(41)));
    }
}
