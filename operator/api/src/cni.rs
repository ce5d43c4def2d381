//! What a CNI manifest must be before kubegrid applies it on a host: a stream of
//! Kubernetes objects. The CLI reads it from the file `spec.network.cniManifest` names; the
//! operator runs the same check on what it reads from the cluster.

use crate::{
    parse::{guard, split, wording},
    text::excerpt,
};

/// The largest CNI manifest accepted. The largest common ones (Calico's, with its CRDs)
/// are under 1 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 8 << 20;

/// Checks that `text` is a stream of Kubernetes objects: YAML documents, each empty or a
/// mapping with a non-empty `apiVersion` and `kind`, and at least one object in all.
///
/// The error says what is wrong and on which line, quoting at most a short excerpt, for
/// a validation problem's "got ..." part.
pub fn check_manifest(text: &str) -> Result<(), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    guard::text(text).map_err(|r| format!("{} at line {} column {}", r.what, r.line, r.column))?;
    let mut objects = 0;
    for chunk in split(text).iter().filter(|c| !c.is_empty()) {
        let line = chunk.first_content_line();
        let value: serde_yaml::Value = serde_yaml::from_str(&chunk.text).map_err(|e| {
            let at = e.location().map_or(line, |l| l.line() + chunk.offset);
            format!(
                "line {at}: not YAML ({})",
                excerpt(&wording::plain(&e.to_string()), 200)
            )
        })?;
        if value.is_null() {
            continue;
        }
        if !value.is_mapping() {
            return Err(format!(
                "the document on line {line}, which is not a Kubernetes object (a mapping with \
                 apiVersion and kind)"
            ));
        }
        for key in ["apiVersion", "kind"] {
            match value.get(key) {
                Some(serde_yaml::Value::String(s)) if !s.trim().is_empty() => {}
                Some(_) => {
                    return Err(format!(
                        "the document on line {line}, whose {key} is not a non-empty string"
                    ));
                }
                None => return Err(format!("the document on line {line}, which has no {key}")),
            }
        }
        objects += 1;
    }
    if objects == 0 {
        return Err("no Kubernetes objects, only empty documents".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_streams_pass() {
        let text = "# cni\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\
                    ---\napiVersion: apps/v1\nkind: DaemonSet\n";
        assert_eq!(check_manifest(text), Ok(()));
    }

    #[test]
    fn documents_without_apiversion_or_kind_are_refused_with_their_line() {
        let err = check_manifest("apiVersion: v1\nkind: A\n---\nkind: B\n").unwrap_err();
        assert_eq!(err, "the document on line 4, which has no apiVersion");
        let err = check_manifest("apiVersion: v1\nkind: ''\n").unwrap_err();
        assert!(err.contains("kind is not a non-empty string"), "{err}");
        let err = check_manifest("- a\n- b\n").unwrap_err();
        assert!(err.contains("not a Kubernetes object"), "{err}");
        let err = check_manifest("just text\n").unwrap_err();
        assert!(err.contains("not a Kubernetes object"), "{err}");
        assert!(
            check_manifest("")
                .unwrap_err()
                .contains("no Kubernetes objects")
        );
        assert!(check_manifest("# only\n---\n").is_err());
    }

    #[test]
    fn broken_yaml_and_binary_are_refused_briefly() {
        let err = check_manifest("apiVersion: v1\nkind: [\n").unwrap_err();
        assert!(err.starts_with("line "), "{err}");
        let err = check_manifest(&format!("a: {}", "[".repeat(100_000))).unwrap_err();
        assert!(err.contains("nested more than 64"), "{err}");
        assert!(err.len() < 300, "{err}");
        let err = check_manifest("kind: \u{1b}[2J\n").unwrap_err();
        assert!(err.contains("\\u{1b}"), "{err}");
    }
}
