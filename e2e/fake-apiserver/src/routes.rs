//! The REST paths the fake answers: the special routes kubegrid-cluster's checks use, then
//! the generic object store for everything else.

use std::sync::Mutex;

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{
    State, generic,
    objects::{merge_patch, status_error},
    watch::WatchPlan,
};

/// A status and a body (JSON, or plain text for `/readyz` and logs).
pub(crate) type Reply = (StatusCode, String);

/// What a request gets: a whole answer, or a watch whose body streams.
#[derive(Debug)]
pub(crate) enum Outcome {
    Reply(Reply),
    Watch(WatchPlan),
}

/// One request as the routes read it.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: &'a str,
    pub accept: &'a str,
    pub body: Value,
    /// The named client ([`crate::FakeCluster::client_as`]) that sent it, if any.
    pub client: Option<&'a str>,
}

/// A failure injected with [`crate::FakeCluster::fail_next`].
#[derive(Debug, Clone)]
pub(crate) struct InjectedFailure {
    pub method: String,
    pub path_prefix: String,
    pub code: u16,
    pub left: usize,
}

/// Answers one request from its head and body bytes, recording it in the state.
pub(crate) fn handle(
    state: &Mutex<State>,
    client: Option<&str>,
    parts: &http::request::Parts,
    bytes: &[u8],
) -> Outcome {
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(bytes) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Reply(bad_request(&format!(
                    "fake: request body is not JSON: {e}"
                )));
            }
        }
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let request = Request {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        content_type: header(http::header::CONTENT_TYPE),
        accept: header(http::header::ACCEPT),
        body,
        client,
    };
    let mut state = state.lock().expect("fake state lock poisoned");
    let line = format!("{} {}?{}", request.method, request.path, request.query);
    if let Some(client) = client {
        state
            .client_requests
            .push((client.to_owned(), line.clone()));
    }
    state.requests.push(line);
    if let Some(reply) = injected_failure(&mut state, &request) {
        return Outcome::Reply(reply);
    }
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    if let Some(reply) = route(&mut state, &request, &segments) {
        return Outcome::Reply(reply);
    }
    generic::route(&mut state.store, &request, &segments)
        .unwrap_or_else(|| Outcome::Reply(not_found("paths", request.path)))
}

/// The HTTP response for `reply`, its body made by `body` (each transport has its own type).
pub(crate) fn response<B>(reply: Reply, body: impl FnOnce(Vec<u8>) -> B) -> Response<B> {
    let (status, text) = reply;
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body(text.into_bytes()))
        .expect("response")
}

/// A 400 answer, for requests the fake cannot read.
pub(crate) fn bad_request(message: &str) -> Reply {
    error(400, "BadRequest", message)
}

/// The decoded value of query parameter `key`.
pub(crate) fn param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, value)| percent_decode(value))
}

fn injected_failure(state: &mut State, request: &Request<'_>) -> Option<Reply> {
    let index = state.failures.iter().position(|f| {
        f.left > 0
            && f.method.eq_ignore_ascii_case(request.method.as_str())
            && request.path.starts_with(&f.path_prefix)
    })?;
    let failure = &mut state.failures[index];
    failure.left -= 1;
    let code = failure.code;
    if failure.left == 0 {
        state.failures.remove(index);
    }
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    Some(error(
        code,
        reason,
        &format!(
            "fake: injected failure for {} {}",
            request.method, request.path
        ),
    ))
}

/// The special routes, or `None` for a path they do not answer.
fn route(state: &mut State, request: &Request<'_>, segments: &[&str]) -> Option<Reply> {
    let (method, query, content_type) = (request.method, request.query, request.content_type);
    let body = request.body.clone();
    Some(match (method.as_str(), segments) {
        ("GET", ["readyz"]) => readyz(state),
        ("GET", ["api", "v1", "nodes"]) => ok(list("NodeList", state.nodes.values())),
        ("GET", ["api", "v1", "nodes", name]) => found(state.nodes.get(*name), "nodes", name),
        ("PATCH", ["api", "v1", "nodes", name]) => {
            if content_type != "application/merge-patch+json" {
                return Some(error(
                    415,
                    "UnsupportedMediaType",
                    &format!("fake expects merge patches, got {content_type}"),
                ));
            }
            match state.nodes.get_mut(*name) {
                Some(node) => {
                    merge_patch(node, &body);
                    let reply = ok(node.clone());
                    state.node_patches.push(crate::NodePatch {
                        at: std::time::SystemTime::now(),
                        node: name.to_string(),
                        body: body.clone(),
                    });
                    // Nodes live outside the object store; a test waiting on a label must
                    // still wake.
                    state.store.notify();
                    reply
                }
                None => not_found("nodes", name),
            }
        }
        ("DELETE", ["api", "v1", "nodes", name]) => match state.nodes.remove(*name) {
            Some(node) => ok(node),
            None => not_found("nodes", name),
        },
        ("POST", ["api", "v1", "namespaces"]) => {
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !state.namespaces.insert(name.clone()) {
                return Some(error(
                    409,
                    "AlreadyExists",
                    &format!("namespaces \"{name}\" already exists"),
                ));
            }
            (StatusCode::CREATED, body.to_string())
        }
        // Server-side apply of a Namespace creates it when missing; the fake keeps names only.
        ("PATCH", ["api", "v1", "namespaces", name])
            if content_type == "application/apply-patch+yaml" =>
        {
            state.namespaces.insert((*name).to_owned());
            ok(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } }))
        }
        ("GET", ["api", "v1", "namespaces", name]) => {
            if state.namespaces.contains(*name) {
                ok(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } }))
            } else {
                not_found("namespaces", name)
            }
        }
        ("GET", ["api", "v1", "pods"]) => {
            let node = field_selector(query, "spec.nodeName");
            let pods = state
                .pods
                .values()
                .filter(|pod| node.as_deref().is_none_or(|n| pod["spec"]["nodeName"] == n));
            ok(list("PodList", pods))
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => ok(list(
            "PodList",
            state
                .pods
                .iter()
                .filter(|((pns, _), _)| pns == ns)
                .map(|(_, pod)| pod),
        )),
        ("POST", ["api", "v1", "namespaces", ns, "pods"]) => {
            if !state.namespaces.contains(*ns) {
                return Some(not_found("namespaces", ns));
            }
            if state.pod_create_refusals > 0 {
                state.pod_create_refusals -= 1;
                let message = format!(
                    "pods \"{}\" is forbidden: error looking up service account {ns}/default: \
                     serviceaccount \"default\" not found",
                    body["metadata"]["generateName"]
                        .as_str()
                        .unwrap_or_default()
                );
                return Some(error(403, "Forbidden", &message));
            }
            state.created_pods.push(body.clone());
            (StatusCode::CREATED, state.admit_pod(ns, body).to_string())
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            let key = ((*ns).to_owned(), (*name).to_owned());
            state.advance(&key);
            found(state.pods.get(&key), "pods", name)
        }
        ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match state.pods.remove(&((*ns).to_owned(), (*name).to_owned())) {
                Some(pod) => ok(pod),
                None => not_found("pods", name),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name, "log"]) => {
            let key = ((*ns).to_owned(), (*name).to_owned());
            if !state.pods.contains_key(&key) {
                return Some(not_found("pods", name));
            }
            (
                StatusCode::OK,
                state.logs.get(&key).cloned().unwrap_or_default(),
            )
        }
        ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            evict(state, ns, name, body)
        }
        _ => return None,
    })
}

fn readyz(state: &mut State) -> Reply {
    if state.readyz_down {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "[-]etcd failed: reason withheld\nreadyz check failed".into(),
        );
    }
    if state.readyz_failures > 0 {
        state.readyz_failures -= 1;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "[-]poststarthook/rbac failed\nreadyz check failed".into(),
        );
    }
    (StatusCode::OK, "ok".into())
}

fn evict(state: &mut State, ns: &str, name: &str, body: Value) -> Reply {
    let key = (ns.to_owned(), name.to_owned());
    if !state.pods.contains_key(&key) {
        return not_found("pods", name);
    }
    // The apiserver rejects eviction bodies that are not a policy/v1 Eviction for this pod.
    if body["apiVersion"] != "policy/v1"
        || body["kind"] != "Eviction"
        || body["metadata"]["name"] != name
    {
        return error(
            400,
            "BadRequest",
            &format!("fake: not a policy/v1 Eviction for {name}: {body}"),
        );
    }
    let pod_ref = format!("{ns}/{name}");
    if state.eviction_errors.contains(&pod_ref) {
        return error(
            500,
            "InternalError",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        );
    }
    if let Some(block) = state.eviction_blocks.get_mut(&pod_ref) {
        let refuse = match block {
            None => true,
            Some(0) => false,
            Some(left) => {
                *left -= 1;
                true
            }
        };
        if refuse {
            return error(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
        }
    }
    state.pods.remove(&key);
    state.evictions.push((pod_ref, body));
    (
        StatusCode::CREATED,
        json!({ "apiVersion": "v1", "kind": "Status", "status": "Success", "code": 201 })
            .to_string(),
    )
}

fn list<'a>(kind: &str, items: impl Iterator<Item = &'a Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": kind, "metadata": { "resourceVersion": "1" }, "items": items.cloned().collect::<Vec<_>>() })
}

/// The value of `field=` in a `fieldSelector` query parameter.
fn field_selector(query: &str, field: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "fieldSelector")
        .map(|(_, value)| percent_decode(value))
        .find_map(|selector| {
            selector
                .strip_prefix(&format!("{field}="))
                .map(str::to_owned)
        })
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

fn ok(object: Value) -> Reply {
    (StatusCode::OK, object.to_string())
}

fn found(object: Option<&Value>, resource: &str, name: &str) -> Reply {
    match object {
        Some(object) => ok(object.clone()),
        None => not_found(resource, name),
    }
}

fn not_found(resource: &str, name: &str) -> Reply {
    error(404, "NotFound", &format!("{resource} \"{name}\" not found"))
}

fn error(code: u16, reason: &str, message: &str) -> Reply {
    (
        StatusCode::from_u16(code).expect("status code"),
        status_error(code, reason, message).to_string(),
    )
}
