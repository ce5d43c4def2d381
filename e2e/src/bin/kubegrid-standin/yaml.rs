//! Multi-document YAML as JSON values, and small accessors over them.

use serde::Deserialize;
use serde_json::Value;

/// Parses every document of `text`, skipping empty ones (as kubeadm and kubectl do).
pub fn parse_docs(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc =
            serde_yaml::Value::deserialize(de).map_err(|e| format!("document {}: {e}", i + 1))?;
        if doc.is_null() {
            continue;
        }
        let json = serde_json::to_value(&doc)
            .map_err(|e| format!("document {}: not representable as JSON: {e}", i + 1))?;
        docs.push(json);
    }
    Ok(docs)
}

/// The value at a dotted path (`"etcd.external.endpoints"`), treating null as absent.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// A short description of a JSON value's type, for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
