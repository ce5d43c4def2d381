//! A small stand-in for the API server's schema checks: every `x-kubernetes-validations`
//! rule of a CRD, compiled with the `cel` interpreter and evaluated where the API server would
//! (transition rules only on an update whose old object has the field), next to the OpenAPI
//! bounds it checks with them (`minimum`, `maximum`, `maxLength`).

use std::{collections::BTreeSet, sync::Arc};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value as Json;

/// One rule of a CRD, compiled.
pub struct SchemaRule {
    /// Property names from the schema root to the node that carries the rule.
    pub path: Vec<String>,
    pub rule: String,
    field_path: Option<String>,
    /// Mentions `oldSelf`: runs only on an update, where the old object has the field.
    transition: bool,
    program: cel::Program,
}

/// Every rule in a CRD, with the bounds checks beside them.
pub struct Schema {
    pub kind: String,
    pub root: Json,
    pub rules: Vec<SchemaRule>,
    env: Arc<cel::Env>,
}

impl Schema {
    pub fn of(crd: &CustomResourceDefinition) -> Self {
        let root = crate::common::open_api_schema(crd);
        let env = Arc::new(cel::Env::stdlib());
        let mut rules = Vec::new();
        collect(&env, &root, &mut Vec::new(), &mut rules);
        Self {
            kind: crd.spec.names.kind.clone(),
            root,
            rules,
            env,
        }
    }

    /// The fields whose rules or bounds `object` (an update of `old`, when given) breaks,
    /// with the rules that failed.
    pub fn failures(&self, object: &Json, old: Option<&Json>) -> BTreeSet<(String, String)> {
        let mut failed = BTreeSet::new();
        bounds(&self.root, object, &mut Vec::new(), &mut failed);
        for rule in &self.rules {
            let Some(value) = at(object, &rule.path) else {
                continue;
            };
            let old_value = old.and_then(|o| at(o, &rule.path));
            if rule.transition && old_value.is_none() {
                continue;
            }
            let mut context = cel::Context::with_env(self.env.clone());
            context.add_variable_from_value("self", to_cel(value));
            if let Some(old_value) = old_value {
                context.add_variable_from_value("oldSelf", to_cel(old_value));
            }
            let verdict = rule.program.execute(&context).unwrap_or_else(|err| {
                panic!(
                    "{} rule `{}` at {} failed to evaluate on {value}: {err}",
                    self.kind,
                    rule.rule,
                    rule.path.join(".")
                )
            });
            if verdict != cel::Value::Bool(true) {
                assert_eq!(verdict, cel::Value::Bool(false), "rule `{}`", rule.rule);
                let mut field = rule.path.join(".");
                if let Some(extra) = &rule.field_path {
                    field.push_str(extra);
                }
                failed.insert((field, rule.rule.clone()));
            }
        }
        failed
    }
}

/// Gathers the rules under `node`; rules below lists or maps would need the API server's
/// element correlation for `oldSelf`, which this harness does not model, so there must be
/// none.
fn collect(env: &cel::Env, node: &Json, path: &mut Vec<String>, out: &mut Vec<SchemaRule>) {
    if let Some(rules) = node.get("x-kubernetes-validations") {
        for rule in rules.as_array().unwrap() {
            let text = rule["rule"].as_str().unwrap().to_string();
            let program = env.compile(&text).unwrap_or_else(|err| {
                panic!("the cel crate cannot parse `{text}` at {path:?}: {err}")
            });
            out.push(SchemaRule {
                path: path.clone(),
                transition: text.contains("oldSelf"),
                field_path: rule
                    .get("fieldPath")
                    .and_then(Json::as_str)
                    .map(String::from),
                rule: text,
                program,
            });
        }
    }
    if let Some(properties) = node.get("properties").and_then(Json::as_object) {
        for (name, child) in properties {
            path.push(name.clone());
            collect(env, child, path, out);
            path.pop();
        }
    }
    for nested in ["items", "additionalProperties"] {
        if let Some(child) = node.get(nested).filter(|c| c.is_object()) {
            let mut below = Vec::new();
            collect(env, child, &mut Vec::new(), &mut below);
            assert!(
                below.is_empty(),
                "a rule under {path:?}.{nested}; teach this harness list/map correlation first"
            );
        }
    }
}

/// The OpenAPI bounds that the API server checks beside the rules.
fn bounds(
    schema: &Json,
    value: &Json,
    path: &mut Vec<String>,
    out: &mut BTreeSet<(String, String)>,
) {
    let mut fail = |what: &str| {
        out.insert((path.join("."), what.to_string()));
    };
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Json::as_f64), value.as_f64())
        && n < min
    {
        fail("minimum");
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Json::as_f64), value.as_f64())
        && n > max
    {
        fail("maximum");
    }
    if let (Some(max), Some(s)) = (
        schema.get("maxLength").and_then(Json::as_u64),
        value.as_str(),
    ) && s.chars().count() as u64 > max
    {
        fail("maxLength");
    }
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Json::as_object),
        value.as_object(),
    ) {
        for (name, child) in properties {
            if let Some(child_value) = object.get(name) {
                path.push(name.clone());
                bounds(child, child_value, path, out);
                path.pop();
            }
        }
    }
}

fn at<'v>(value: &'v Json, path: &[String]) -> Option<&'v Json> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

/// JSON as the API server hands it to CEL: integers are `int`.
fn to_cel(value: &Json) -> cel::Value {
    match value {
        Json::Null => cel::Value::Null,
        Json::Bool(b) => cel::Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap()),
        },
        Json::String(s) => cel::Value::String(Arc::new(s.clone())),
        Json::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(map) => cel::Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<std::collections::HashMap<_, _>>()
                .into(),
        ),
    }
}
