//! Integer formats the Kubernetes API server recognizes.
//!
//! schemars names Rust's integer types in `format` (`uint16`, `uint32`, `uint64`, ...), but
//! the API server knows only `int32` and `int64` for integers (and `float`/`double` for
//! numbers): it warns "unrecognized format" on `kubectl apply` for any other and ignores it.
//! Each such format becomes the API server's integer format that holds it, with the type's
//! range as `minimum`/`maximum`, so the bound that the Rust type set stays checked. A bound
//! the schema already has and that is tighter (a port's `minimum: 1`) is kept.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool, JSONSchemaPropsOrStringArray,
};

/// `(schemars format, API server format, minimum, maximum)`: the range of each Rust integer
/// type that the API server format can hold. `None` where the API server format's own range
/// is the bound (a `u64` above `i64::MAX` cannot be stored as a JSON integer by the server).
const INTEGER_FORMATS: &[(&str, &str, Option<f64>, Option<f64>)] = &[
    ("int8", "int32", Some(i8::MIN as f64), Some(i8::MAX as f64)),
    (
        "int16",
        "int32",
        Some(i16::MIN as f64),
        Some(i16::MAX as f64),
    ),
    ("uint8", "int32", Some(0.0), Some(u8::MAX as f64)),
    ("uint16", "int32", Some(0.0), Some(u16::MAX as f64)),
    ("uint32", "int64", Some(0.0), Some(u32::MAX as f64)),
    ("uint64", "int64", Some(0.0), None),
    ("uint128", "int64", Some(0.0), None),
    ("uint", "int64", Some(0.0), None),
    ("int128", "int64", None, None),
    ("int", "int64", None, None),
];

/// Rewrites every integer format in `schema` and the schemas inside it that the API server
/// does not recognize (see the module doc).
pub(crate) fn recognized_integer_formats(schema: &mut JSONSchemaProps) {
    each_schema(schema, &mut |s| {
        if s.type_.as_deref() != Some("integer") {
            return;
        }
        let Some(&(_, to, min, max)) = INTEGER_FORMATS
            .iter()
            .find(|(from, ..)| Some(*from) == s.format.as_deref())
        else {
            return;
        };
        s.format = Some(to.to_string());
        if let Some(min) = min {
            s.minimum = Some(s.minimum.map_or(min, |have| have.max(min)));
        }
        if let Some(max) = max {
            s.maximum = Some(s.maximum.map_or(max, |have| have.min(max)));
        }
    });
}

/// Calls `f` on `schema` and on every schema nested in it, parents first.
fn each_schema(schema: &mut JSONSchemaProps, f: &mut impl FnMut(&mut JSONSchemaProps)) {
    f(schema);
    let maps = [
        schema.properties.as_mut(),
        schema.pattern_properties.as_mut(),
        schema.definitions.as_mut(),
    ];
    for child in maps.into_iter().flatten().flat_map(|m| m.values_mut()) {
        each_schema(child, f);
    }
    let lists = [
        schema.all_of.as_mut(),
        schema.any_of.as_mut(),
        schema.one_of.as_mut(),
    ];
    for child in lists.into_iter().flatten().flatten() {
        each_schema(child, f);
    }
    if let Some(not) = schema.not.as_mut() {
        each_schema(not, f);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(child)) => each_schema(child, f),
        Some(JSONSchemaPropsOrArray::Schemas(children)) => {
            children.iter_mut().for_each(|c| each_schema(c, f));
        }
        None => {}
    }
    for child in [
        schema.additional_items.as_mut(),
        schema.additional_properties.as_mut(),
    ] {
        if let Some(JSONSchemaPropsOrBool::Schema(child)) = child {
            each_schema(child, f);
        }
    }
    for child in schema.dependencies.iter_mut().flat_map(|m| m.values_mut()) {
        if let JSONSchemaPropsOrStringArray::Schema(child) = child {
            each_schema(child, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integer(format: &str, minimum: Option<f64>, maximum: Option<f64>) -> JSONSchemaProps {
        JSONSchemaProps {
            type_: Some("integer".into()),
            format: Some(format.into()),
            minimum,
            maximum,
            ..Default::default()
        }
    }

    fn rewritten(schema: JSONSchemaProps) -> (Option<String>, Option<f64>, Option<f64>) {
        let mut root = JSONSchemaProps {
            type_: Some("object".into()),
            properties: Some([("field".to_string(), schema)].into()),
            ..Default::default()
        };
        recognized_integer_formats(&mut root);
        let field = &root.properties.unwrap()["field"];
        (field.format.clone(), field.minimum, field.maximum)
    }

    #[test]
    fn unsigned_formats_become_signed_with_the_type_range() {
        assert_eq!(
            rewritten(integer("uint16", Some(0.0), Some(65535.0))),
            (Some("int32".into()), Some(0.0), Some(65535.0))
        );
        assert_eq!(
            rewritten(integer("uint32", Some(0.0), None)),
            (Some("int64".into()), Some(0.0), Some(4294967295.0))
        );
        assert_eq!(
            rewritten(integer("uint64", None, None)),
            (Some("int64".into()), Some(0.0), None)
        );
        assert_eq!(
            rewritten(integer("int8", None, None)),
            (Some("int32".into()), Some(-128.0), Some(127.0))
        );
    }

    #[test]
    fn tighter_bounds_are_kept() {
        assert_eq!(
            rewritten(integer("uint16", Some(1.0), Some(65535.0))),
            (Some("int32".into()), Some(1.0), Some(65535.0))
        );
        assert_eq!(
            rewritten(integer("uint32", Some(3.0), Some(10.0))),
            (Some("int64".into()), Some(3.0), Some(10.0))
        );
    }

    #[test]
    fn nested_schemas_are_rewritten_and_others_left_alone() {
        let item = integer("uint8", None, None);
        let mut root = JSONSchemaProps {
            type_: Some("array".into()),
            items: Some(JSONSchemaPropsOrArray::Schema(Box::new(JSONSchemaProps {
                type_: Some("object".into()),
                additional_properties: Some(JSONSchemaPropsOrBool::Schema(Box::new(item))),
                ..Default::default()
            }))),
            ..Default::default()
        };
        recognized_integer_formats(&mut root);
        let Some(JSONSchemaPropsOrArray::Schema(object)) = &root.items else {
            panic!("items changed shape");
        };
        let Some(JSONSchemaPropsOrBool::Schema(value)) = &object.additional_properties else {
            panic!("additionalProperties changed shape");
        };
        assert_eq!(value.format.as_deref(), Some("int32"));
        assert_eq!((value.minimum, value.maximum), (Some(0.0), Some(255.0)));
        assert_eq!(
            rewritten(integer("int64", None, None)),
            (Some("int64".into()), None, None)
        );
        let mut text = JSONSchemaProps {
            type_: Some("string".into()),
            format: Some("uint16".into()),
            ..Default::default()
        };
        recognized_integer_formats(&mut text);
        assert_eq!(
            text.format.as_deref(),
            Some("uint16"),
            "only integers change"
        );
    }
}
