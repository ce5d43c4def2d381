//! `spec.serving`: the serving layer's namespace and cache size, and the GPU stack it needs.
//! The same rules are CEL rules on the CRD (the functions below), so `kubectl apply` refuses
//! what the CLI refuses.

use kube::core::{Message, Rule};

use super::{Checker, Subject, names::dns_label};
use crate::{
    serving::MAX_CACHE_CAPACITY_LEN,
    text::{EXCERPT_CHARS, excerpt},
};

/// A quantity of bytes, as the cache's `--capacity` reads it: digits with an optional
/// fraction and a binary or decimal suffix up to tera. `[.]` for the dot, so that the rule needs no
/// escapes (see crate::rules).
const CAPACITY_REGEX: &str = "^[0-9]+([.][0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$";
/// What a capacity looks like.
const CAPACITY: &str = "a size above zero such as 500Gi, 800G or 1.5Ti";
/// What the namespace looks like.
const NAMESPACE: &str = "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
/// Why the layer needs `spec.gpu`.
const NEEDS_GPU: &str = "the model cache runs on the Nodes kubegrid labels nvidia.com/gpu.present=true, which only a Cluster with spec.gpu has";

fn rule(text: &str, message: &str) -> Rule {
    Rule::new(text).message(Message::Message(message.into()))
}

/// `spec.serving.namespace`: a DNS-1123 label.
pub(crate) fn namespace_rule() -> Rule {
    rule(
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        &format!("must be {NAMESPACE}"),
    )
}

/// `spec.serving.cacheCapacity`: a positive quantity.
pub(crate) fn capacity_rule() -> Rule {
    rule(
        &format!("self.matches('{CAPACITY_REGEX}') && !self.matches('^[0.]+[A-Za-z]*$')"),
        &format!("must be {CAPACITY}"),
    )
}

/// Cluster `spec`: the serving layer needs the GPU stack.
pub(crate) fn serving_needs_gpu_rule() -> Rule {
    Rule::new("!has(self.serving) || has(self.gpu)")
        .message(Message::Message(format!(
            "spec.serving needs spec.gpu: {NEEDS_GPU}"
        )))
        .field_path(".serving")
}

/// Whether `text` is a capacity [`capacity_rule`] accepts.
fn is_capacity(text: &str) -> bool {
    let suffixes = ["Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"];
    let number = suffixes
        .iter()
        .find_map(|s| text.strip_suffix(s))
        .unwrap_or(text);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    text.len() <= MAX_CACHE_CAPACITY_LEN
        && digits(whole)
        && digits(fraction)
        && number.bytes().any(|b| b.is_ascii_digit() && b != b'0')
}

impl Checker<'_> {
    /// Refuses a serving layer that cannot be deployed as written.
    pub(super) fn serving(&mut self, at: &Subject) {
        let spec = &self.manifest.cluster().spec;
        let Some(serving) = &spec.serving else {
            return;
        };
        if spec.gpu.is_none() {
            self.report(
                at,
                "spec.serving",
                "spec.serving without spec.gpu",
                format!("spec.gpu set as well; hint: {NEEDS_GPU}"),
            );
        }
        if let Some(ns) = &serving.namespace
            && let Err(why) = dns_label(ns)
        {
            self.report(
                at,
                "spec.serving.namespace",
                format!("`{}`, {why}", excerpt(ns, EXCERPT_CHARS)),
                format!("{NAMESPACE}, or unset for kubegrid-serving"),
            );
        }
        if let Some(c) = &serving.cache_capacity
            && !is_capacity(c)
        {
            self.report(
                at,
                "spec.serving.cacheCapacity",
                format!("`{}`", excerpt(c, MAX_CACHE_CAPACITY_LEN)),
                format!("{CAPACITY}; hint: leave it out for no limit"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities() {
        for ok in ["500Gi", "800G", "1.5Ti", "1", "0.5Ti", "10k"] {
            assert!(is_capacity(ok), "{ok}");
        }
        for bad in [
            "", "0", "0Gi", "0.0Ti", "Gi", "1.Gi", "-1Gi", "1GB", "1 Gi", "1e3", "1Pi",
        ] {
            assert!(!is_capacity(bad), "{bad}");
        }
    }
}
