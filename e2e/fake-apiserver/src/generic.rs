//! The generic REST paths: any resource without a special route is stored in the
//! [`Store`] and answers get, list, watch, create, replace, patch and delete.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::{
    kinds::{Resource, api_version, kind_of},
    objects::merge_patch,
    routes::{Outcome, Reply, Request, param},
    select::Selector,
    store::{Deleted, Failure, ObjectKey, Part, Store},
    watch::{Filter, WatchPlan, event},
};

/// Core-group resources that have special routes; the generic store never holds them, so a
/// verb those routes do not answer stays a 404 as before.
const SPECIAL_CORE: &[&str] = &["pods", "nodes", "namespaces"];

/// What a generic path names.
#[derive(Debug)]
struct Target {
    resource: Resource,
    version: String,
    /// `None` for a path across all namespaces (or a cluster-scoped resource).
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

impl Target {
    fn parse(segments: &[&str]) -> Option<Self> {
        let (group, version, rest) = match segments {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
            _ => (None, rest),
        };
        let (plural, name, status) = match rest {
            [plural] => (*plural, None, false),
            [plural, name] => (*plural, Some(*name), false),
            [plural, name, "status"] => (*plural, Some(*name), true),
            _ => return None,
        };
        if group.is_empty() && SPECIAL_CORE.contains(&plural) {
            return None;
        }
        Some(Self {
            resource: Resource::new(group, plural),
            version: version.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            status,
        })
    }

    fn key(&self, name: &str) -> ObjectKey {
        ObjectKey {
            resource: self.resource.clone(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: name.to_owned(),
        }
    }

    fn api_version(&self) -> String {
        api_version(&self.resource.group, &self.version)
    }
}

/// Answers a generic path, or `None` when the path is not one.
pub(crate) fn route(
    store: &mut Store,
    request: &Request<'_>,
    segments: &[&str],
) -> Option<Outcome> {
    let target = Target::parse(segments)?;
    let method = request.method.as_str();
    let result = match (method, &target.name) {
        (_, Some(_)) if target.status && !store.has_status(&target.resource) => Err(Failure::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource: {} has no status \
                 subresource in this fake",
                target.resource.qualified()
            ),
        )),
        ("GET", None) if matches!(param(request.query, "watch").as_deref(), Some("true" | "1")) => {
            return Some(watch(store, request, &target));
        }
        ("GET", None) => list(store, request, &target),
        ("GET", Some(name)) => store
            .get(&target.key(name))
            .map(|object| (StatusCode::OK, shape(object, request)))
            .ok_or_else(|| Failure::not_found(&target.key(name))),
        ("POST", None) => create(store, request, &target),
        ("PUT", Some(name)) => replace(store, request, &target, name),
        ("PATCH", Some(name)) => patch(store, request, &target, name),
        ("DELETE", Some(name)) => {
            delete(store, request, &target.key(name)).map(|body| (StatusCode::OK, body))
        }
        _ => Err(Failure::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource: {method}"),
        )),
    };
    Some(Outcome::Reply(match result {
        Ok((status, body)) => (status, body.to_string()),
        Err(failure) => failure_reply(&failure),
    }))
}

/// A failure as the status and `Status` body the apiserver sends.
pub(crate) fn failure_reply(failure: &Failure) -> Reply {
    (
        StatusCode::from_u16(failure.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        crate::objects::status_error(failure.code, failure.reason, &failure.message).to_string(),
    )
}

type Answer = Result<(StatusCode, Value), Failure>;

fn list(store: &Store, request: &Request<'_>, target: &Target) -> Answer {
    let filter = filter(request, target)?;
    let items: Vec<Value> = store
        .list(&target.resource, target.namespace.as_deref())
        .filter(|object| filter.matches(object))
        .map(|object| shape(object, request))
        .collect();
    let (api_version, kind) = if partial(request) {
        (
            "meta.k8s.io/v1".to_owned(),
            "PartialObjectMetadataList".to_owned(),
        )
    } else {
        (
            target.api_version(),
            format!("{}List", kind_of(&target.resource)),
        )
    };
    Ok((
        StatusCode::OK,
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": { "resourceVersion": store.revision().to_string() },
            "items": items,
        }),
    ))
}

fn create(store: &mut Store, request: &Request<'_>, target: &Target) -> Answer {
    let mut body = object_body(request)?;
    let namespace = target.namespace.clone().unwrap_or_default();
    if let Some(given) = body["metadata"]["namespace"].as_str()
        && !namespace.is_empty()
        && given != namespace
    {
        return Err(Failure::new(
            400,
            "BadRequest",
            format!(
                "the namespace of the provided object ({given}) does not match the namespace \
                 sent on the request ({namespace})"
            ),
        ));
    }
    fill_type(&mut body, target);
    let created = store.create(&target.resource, &namespace, body)?;
    Ok((StatusCode::CREATED, created))
}

fn replace(store: &mut Store, request: &Request<'_>, target: &Target, name: &str) -> Answer {
    let mut body = object_body(request)?;
    check_name(&body, name)?;
    body["metadata"]["name"] = json!(name);
    fill_type(&mut body, target);
    let part = if target.status {
        Part::Status
    } else {
        Part::Main
    };
    Ok((StatusCode::OK, store.update(&target.key(name), body, part)?))
}

fn patch(store: &mut Store, request: &Request<'_>, target: &Target, name: &str) -> Answer {
    let key = target.key(name);
    let content_type = request
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let apply = content_type == "application/apply-patch+yaml";
    if apply && param(request.query, "fieldManager").is_none_or(|m| m.is_empty()) {
        return Err(Failure::new(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is \
             required for apply patch",
        ));
    }
    let manager = param(request.query, "fieldManager").unwrap_or_default();
    let Some(mut document) = store.get(&key).cloned() else {
        if apply && !target.status {
            // Server-side apply creates what does not exist yet.
            let mut body = object_body(request)?;
            check_name(&body, name)?;
            body["metadata"]["name"] = json!(name);
            fill_type(&mut body, target);
            let created = store.create(&target.resource, &key.namespace, body)?;
            store.applied.insert((key, manager), request.body.clone());
            return Ok((StatusCode::CREATED, created));
        }
        return Err(Failure::not_found(&key));
    };
    match content_type {
        // The fake does not track list merge keys: strategic merge patches are merged like
        // JSON merge patches, and so is an apply, after removing the map keys the manager's
        // previous apply set and this one does not (field ownership, for one manager).
        "application/apply-patch+yaml" => {
            let record = (key.clone(), manager);
            if let Some(before) = store.applied.get(&record) {
                drop_unset(&mut document, before, &request.body);
            }
            merge_patch(&mut document, &request.body);
            store.applied.insert(record, request.body.clone());
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            merge_patch(&mut document, &request.body)
        }
        "application/json-patch+json" => json_patch(&mut document, &request.body)?,
        other => {
            return Err(Failure::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {other:?}"
                ),
            ));
        }
    }
    let part = if target.status {
        Part::Status
    } else {
        Part::Main
    };
    Ok((StatusCode::OK, store.update(&key, document, part)?))
}

/// Removes from `document` the map keys that `before` (a manager's previous apply) set and
/// `now` (its new apply) does not, recursing where both set a map.
fn drop_unset(document: &mut Value, before: &Value, now: &Value) {
    let (Some(doc), Some(before)) = (document.as_object_mut(), before.as_object()) else {
        return;
    };
    for (k, old) in before {
        match now.get(k) {
            None => {
                doc.remove(k);
            }
            Some(new) if old.is_object() && new.is_object() => {
                if let Some(child) = doc.get_mut(k) {
                    drop_unset(child, old, new);
                }
            }
            Some(_) => {}
        }
    }
}

/// RFC 6902, with the apiserver's reading of `test`: a `null` value matches a missing path
/// (kube-runtime's finalizer helper relies on it to add the first finalizer).
fn json_patch(document: &mut Value, body: &Value) -> Result<(), Failure> {
    let operations: Vec<json_patch::PatchOperation> = serde_json::from_value(body.clone())
        .map_err(|e| Failure::new(400, "BadRequest", format!("invalid JSON patch: {e}")))?;
    for operation in &operations {
        if let json_patch::PatchOperation::Test(test) = operation
            && test.value.is_null()
            && document.pointer(test.path.as_str()).is_none()
        {
            continue;
        }
        // `document` is the caller's copy: a failed operation leaves the store unchanged.
        json_patch::patch(document, std::slice::from_ref(operation)).map_err(|e| {
            Failure::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(())
}

fn delete(store: &mut Store, request: &Request<'_>, key: &ObjectKey) -> Result<Value, Failure> {
    match store.delete(key, &request.body["preconditions"])? {
        Deleted::Pending(object) => Ok(object),
        Deleted::Gone(object) => Ok(json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": key.name,
                "group": key.resource.group,
                "kind": key.resource.plural,
                "uid": object["metadata"]["uid"],
            },
        })),
    }
}

fn watch(store: &Store, request: &Request<'_>, target: &Target) -> Outcome {
    let filter = match filter(request, target) {
        Ok(filter) => filter,
        Err(failure) => return Outcome::Reply(failure_reply(&failure)),
    };
    let partial = partial(request);
    let timeout = param(request.query, "timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let from = param(request.query, "resourceVersion").unwrap_or_default();
    let mut initial = Vec::new();
    let cursor = if from.is_empty() || from == "0" {
        // "Any version": synthetic ADDED events for what exists now, then the changes.
        initial.extend(
            store
                .list(&target.resource, target.namespace.as_deref())
                .filter(|object| filter.matches(object))
                .map(|object| event("ADDED", object, partial)),
        );
        if param(request.query, "sendInitialEvents").as_deref() == Some("true") {
            initial.push(json!({
                "type": "BOOKMARK",
                "object": {
                    "apiVersion": target.api_version(),
                    "kind": kind_of(&target.resource),
                    "metadata": {
                        "resourceVersion": store.revision().to_string(),
                        "annotations": { "k8s.io/initial-events-end": "true" },
                    },
                },
            }));
        }
        store.revision()
    } else {
        match from.parse::<u64>() {
            Ok(revision) => revision,
            Err(_) => {
                return Outcome::Reply(failure_reply(&Failure::new(
                    400,
                    "BadRequest",
                    format!("invalid resource version {from:?}: expected a number"),
                )));
            }
        }
    };
    Outcome::Watch(WatchPlan {
        filter,
        initial,
        cursor,
        timeout,
        partial,
        client: request.client.map(str::to_owned),
        changes: store.subscribe(),
    })
}

fn filter(request: &Request<'_>, target: &Target) -> Result<Filter, Failure> {
    Ok(Filter {
        resource: target.resource.clone(),
        namespace: target.namespace.clone(),
        labels: Selector::parse(
            &param(request.query, "labelSelector").unwrap_or_default(),
            "labelSelector",
        )?,
        fields: Selector::parse(
            &param(request.query, "fieldSelector").unwrap_or_default(),
            "fieldSelector",
        )?,
    })
}

/// Whether the client asked for metadata only (`Api::list_metadata`, metadata watchers).
fn partial(request: &Request<'_>) -> bool {
    request.accept.contains("as=PartialObjectMetadata")
}

/// The object as the client asked for it: whole, or only its metadata.
fn shape(object: &Value, request: &Request<'_>) -> Value {
    if partial(request) {
        crate::watch::partial_metadata(object)
    } else {
        object.clone()
    }
}

/// The request body, when it is an object whose `metadata` (if any) is an object too.
fn object_body(request: &Request<'_>) -> Result<Value, Failure> {
    let body = &request.body;
    if body.is_object() && body.get("metadata").is_none_or(Value::is_object) {
        Ok(body.clone())
    } else {
        Err(Failure::new(
            400,
            "BadRequest",
            "the request body is not an object with an object `metadata`",
        ))
    }
}

fn check_name(body: &Value, name: &str) -> Result<(), Failure> {
    match body["metadata"]["name"].as_str() {
        Some(given) if given != name => Err(Failure::new(
            400,
            "BadRequest",
            format!("the name of the object ({given}) does not match the name on the URL ({name})"),
        )),
        _ => Ok(()),
    }
}

/// Sets `apiVersion` and `kind` from the path when the body leaves them out.
fn fill_type(body: &mut Value, target: &Target) {
    if body["apiVersion"].is_null() {
        body["apiVersion"] = json!(target.api_version());
    }
    if body["kind"].is_null() {
        body["kind"] = json!(kind_of(&target.resource));
    }
}
