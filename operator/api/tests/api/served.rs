//! The CRDs as a real API server serves them: `kubectl apply` warns about no schema format,
//! and every printer column reads one plain value, as kubectl users expect.

use kubegrid_api::{NodeSpec, crds};

use crate::common::open_api_schema;
use serde_json::{Value as Json, json};

/// The formats the API server recognizes in CRD schemas, by schema type, as of Kubernetes
/// 1.36. Upstream: `k8s.io/apiextensions-apiserver/pkg/apiserver/validation/formats.go`
/// (`supportedVersionedFormats`, and `GetUnrecognizedFormats` for integers and numbers),
/// which `pkg/registry/customresourcedefinition/strategy.go` (`getUnrecognizedFormatsInSchema`)
/// turns into `kubectl apply`'s "unrecognized format" warning. Any format on another type is
/// unrecognized. The server compares string formats with their dashes removed.
fn recognized(type_: &str, format: &str) -> bool {
    const INTEGER: &[&str] = &["int32", "int64"];
    const NUMBER: &[&str] = &["float", "double"];
    const STRING: &[&str] = &[
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
        "datetime",
        // Since 1.34.
        "k8s-short-name",
        "k8s-long-name",
    ];
    let plain = |f: &str| f.replace('-', "");
    match type_ {
        "integer" => INTEGER.contains(&format),
        "number" => NUMBER.contains(&format),
        "" | "string" => STRING.iter().any(|f| plain(f) == plain(format)),
        _ => false,
    }
}

/// The openAPIV3Schema of each shipped CRD's one version, by kind.
fn schemas() -> Vec<(String, Json)> {
    crds()
        .iter()
        .map(|crd| (crd.spec.names.kind.clone(), open_api_schema(crd)))
        .collect()
}

/// Every schema in `node` (itself included), with its path, through each keyword that
/// holds schemas.
fn walk<'a>(node: &'a Json, path: String, out: &mut Vec<(String, &'a Json)>) {
    for (key, child) in node.as_object().into_iter().flatten() {
        match (key.as_str(), child) {
            (
                "properties" | "patternProperties" | "definitions" | "dependencies",
                Json::Object(m),
            ) => {
                for (name, schema) in m {
                    walk(schema, format!("{path}.{name}"), out);
                }
            }
            ("items" | "additionalItems", Json::Object(_)) => {
                walk(child, format!("{path}[]"), out);
            }
            ("additionalProperties", Json::Object(_)) => walk(child, format!("{path}.*"), out),
            ("not", Json::Object(_)) => walk(child, format!("{path}(not)"), out),
            ("items" | "allOf" | "anyOf" | "oneOf", Json::Array(list)) => {
                for (i, schema) in list.iter().enumerate() {
                    walk(schema, format!("{path}({key} {i})"), out);
                }
            }
            _ => {}
        }
    }
    out.push((path, node));
}

/// The schema at `path` (`.status.nodes.ready`) from `root`, following `properties`.
fn field<'a>(root: &'a Json, path: &str) -> Option<&'a Json> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(root, |node, name| node.get("properties")?.get(name))
}

#[test]
fn every_schema_format_is_one_the_api_server_recognizes() {
    let mut seen = 0;
    for (kind, root) in schemas() {
        let mut all = Vec::new();
        walk(&root, String::new(), &mut all);
        for (path, schema) in all {
            let Some(format) = schema.get("format").and_then(Json::as_str) else {
                continue;
            };
            seen += 1;
            let type_ = schema.get("type").and_then(Json::as_str).unwrap_or("");
            assert!(
                recognized(type_, format),
                "{kind} {path}: format {format:?} on type {type_:?} is not one the API server \
                 recognizes; `kubectl apply` would warn about it"
            );
        }
    }
    // The schemas have integer fields: the walk reached them.
    assert!(seen >= 10, "only {seen} formats found");
}

#[test]
fn integer_fields_keep_their_type_range_as_bounds() {
    let schemas = schemas();
    let root = |kind: &str| &schemas.iter().find(|(k, _)| k == kind).unwrap().1;
    let bounds = |kind: &str, path: &str| {
        let f = field(root(kind), path).unwrap_or_else(|| panic!("{kind} {path}"));
        (
            f["format"].clone(),
            f["minimum"].clone(),
            f["maximum"].clone(),
        )
    };
    // u32: int64 from 0 to u32::MAX.
    assert_eq!(
        bounds("Cluster", ".status.nodes.ready"),
        (json!("int64"), json!(0.0), json!(4294967295.0))
    );
    assert_eq!(
        bounds("Node", ".status.facts.cpus"),
        (json!("int64"), json!(0.0), json!(4294967295.0))
    );
    // u64: int64 from 0.
    assert_eq!(
        bounds("Node", ".status.facts.memoryMiB"),
        (json!("int64"), json!(0.0), Json::Null)
    );
    // u16 ports: int32 with their own, tighter, minimum 1.
    assert_eq!(
        bounds("Node", ".spec.port"),
        (json!("int32"), json!(1.0), json!(65535.0))
    );
    assert_eq!(
        bounds("Cluster", ".spec.controlPlaneEndpoint.port"),
        (json!("int32"), json!(1.0), json!(65535.0))
    );
}

#[test]
fn every_printer_column_reads_one_plain_field_of_its_type() {
    for crd in crds() {
        let kind = &crd.spec.names.kind;
        let root = open_api_schema(&crd);
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .as_deref()
            .unwrap();
        for column in columns {
            let (name, path) = (&column.name, &column.json_path);
            // A path with `[` or `*` shows only its first match in the server's table.
            assert!(
                path.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
                "{kind} column {name}: {path} is not a plain field path"
            );
            if path == ".metadata.creationTimestamp" {
                assert_eq!(column.type_, "date", "{kind} column {name}");
                continue;
            }
            let schema = field(&root, path)
                .unwrap_or_else(|| panic!("{kind} column {name}: no field {path} in the schema"));
            let type_ = schema["type"].as_str().unwrap_or("");
            let fits = match column.type_.as_str() {
                "string" | "date" => type_ == "string",
                "integer" => type_ == "integer",
                "number" => type_ == "integer" || type_ == "number",
                "boolean" => type_ == "boolean",
                other => panic!("{kind} column {name}: column type {other}"),
            };
            assert!(
                fits,
                "{kind} column {name}: {path} is of type {type_:?}, the column says {:?}; \
                 kubectl would print it as JSON",
                column.type_
            );
        }
    }
}

#[test]
fn the_roles_column_reads_the_comma_separated_status_roles() {
    let [_, node] = crds();
    let columns = node.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let roles = columns.iter().find(|c| c.name == "Roles").unwrap();
    assert_eq!(roles.json_path, ".status.roles");
    assert_eq!(roles.type_, "string");
    let spec = |roles: Json| -> NodeSpec {
        serde_json::from_value(json!({"clusterName": "gpu", "address": "10.0.0.1", "roles": roles}))
            .unwrap()
    };
    // In spec order, as written.
    assert_eq!(
        spec(json!(["etcd", "control-plane"]))
            .roles_column()
            .as_deref(),
        Some("etcd,control-plane")
    );
    assert_eq!(
        spec(json!(["worker"])).roles_column().as_deref(),
        Some("worker")
    );
    assert_eq!(spec(json!([])).roles_column(), None);
}
