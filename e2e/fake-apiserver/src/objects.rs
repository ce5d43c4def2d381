//! JSON objects the fake stores, and how created pods progress.

use serde_json::{Value, json};

use super::{Behaviour, Script, State};

/// A Node with a Ready condition, labels and taints `(key, value, effect)`.
pub fn node(
    name: &str,
    ready: bool,
    labels: &[(&str, &str)],
    taints: &[(&str, Option<&str>, &str)],
) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let taints: Vec<Value> = taints
        .iter()
        .map(|(key, value, effect)| json!({ "key": key, "value": value, "effect": effect }))
        .collect();
    let (status, reason, message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: cni plugin not initialized",
        )
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "uid": format!("node-{name}"), "labels": labels },
        "spec": { "taints": taints },
        "status": {
            "conditions": [
                { "type": "MemoryPressure", "status": "False" },
                { "type": "Ready", "status": status, "reason": reason, "message": message },
            ],
        },
    })
}

/// A kube-system pod: Running with its one container ready or not.
pub fn system_pod(name: &str, node: &str, ready: bool) -> Value {
    let waiting = if ready {
        json!({ "running": {} })
    } else {
        json!({ "waiting": { "reason": "CrashLoopBackOff" } })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": "kube-system", "uid": format!("uid-{name}") },
        "spec": { "nodeName": node, "containers": [{ "name": "main", "image": "registry.k8s.io/x" }] },
        "status": {
            "phase": "Running",
            "podIP": "10.244.9.9",
            "containerStatuses": [{
                "name": "main", "ready": ready, "restartCount": 0, "image": "x", "imageID": "x", "state": waiting,
            }],
        },
    })
}

/// A Running pod on `node` whose controller is `owner` (e.g. `ReplicaSet`,
/// `DaemonSet`) or a mirror pod when `owner` is `None`.
pub fn owned_pod(namespace: &str, name: &str, node: &str, owner: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}") },
        "spec": { "nodeName": node, "containers": [{ "name": "main", "image": "app" }] },
        "status": { "phase": "Running" },
    });
    match owner {
        Some(kind) => {
            pod["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": kind, "name": format!("{name}-owner"),
                "uid": "owner-uid", "controller": true,
            }]);
        }
        None => {
            pod["metadata"]["annotations"] = json!({ "kubernetes.io/config.mirror": "abc" });
        }
    }
    pod
}

pub fn key_of(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_owned(),
        meta["name"].as_str().unwrap_or_default().to_owned(),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A Kubernetes `Status` error body.
pub fn status_error(code: u16, reason: &str, message: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message })
}

fn command_line(pod: &Value) -> String {
    let container = &pod["spec"]["containers"][0];
    container["command"]
        .as_array()
        .into_iter()
        .chain(container["args"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

impl State {
    /// Stores a posted pod the way the apiserver would and picks its script.
    pub(crate) fn admit_pod(&mut self, namespace: &str, mut pod: Value) -> Value {
        self.counter += 1;
        let n = self.counter;
        if pod["metadata"]["name"].as_str().is_none() {
            let prefix = pod["metadata"]["generateName"]
                .as_str()
                .unwrap_or("pod-")
                .to_owned();
            pod["metadata"]["name"] = json!(format!("{prefix}{n:05}"));
        }
        pod["metadata"]["namespace"] = json!(namespace);
        pod["metadata"]["uid"] = json!(format!("uid-created-{n}"));
        pod["status"] = json!({ "phase": "Pending" });
        let line = command_line(&pod);
        let behaviour = self
            .rules
            .iter()
            .find(|(needle, _)| line.contains(needle.as_str()))
            .map(|(_, b)| b.clone());
        let key = key_of(&pod);
        self.scripts
            .insert(key.clone(), Script { behaviour, step: 0 });
        self.pods.insert(key, pod.clone());
        pod
    }

    /// Moves a scripted pod one step on; unscripted pods stay as they are.
    pub(crate) fn advance(&mut self, key: &(String, String)) {
        let Some(script) = self.scripts.get_mut(key) else {
            return;
        };
        let Some(behaviour) = script.behaviour.clone() else {
            return;
        };
        script.step = script.step.saturating_add(1);
        let step = script.step;
        let ip = format!("10.244.{}.{}", self.counter % 250, 10 + step);
        let fetched = match (&behaviour, step) {
            (Behaviour::Fetch { network_up }, 2) => Some(self.fetch(key, *network_up)),
            _ => None,
        };
        let Some(pod) = self.pods.get_mut(key) else {
            return;
        };
        let status = &mut pod["status"];
        match (behaviour, step) {
            (_, 1) => {
                if status["podIP"].is_null() {
                    status["podIP"] = json!(ip);
                }
                status["phase"] = json!("Running");
                status["conditions"] = json!([{ "type": "Ready", "status": "False" }]);
            }
            (Behaviour::Serve { page }, _) => {
                status["conditions"] = json!([{ "type": "Ready", "status": "True" }]);
                self.logs.insert(key.clone(), format!("serving {page}"));
            }
            (Behaviour::Exit { succeed, log }, 2) => {
                status["phase"] = json!(if succeed { "Succeeded" } else { "Failed" });
                self.logs.insert(key.clone(), log);
            }
            (Behaviour::Fetch { .. }, 2) => {
                let (succeed, log) = fetched.expect("computed for step 2");
                status["phase"] = json!(if succeed { "Succeeded" } else { "Failed" });
                self.logs.insert(key.clone(), log);
            }
            _ => {}
        }
    }

    /// What `wget ... <url>` in pod `key` gets.
    fn fetch(&self, key: &(String, String), network_up: bool) -> (bool, String) {
        let pod = &self.pods[key];
        let line = command_line(pod);
        let url = line.rsplit(' ').next().unwrap_or_default();
        let host = url
            .trim_start_matches("http://")
            .split(':')
            .next()
            .unwrap_or_default();
        let own_node = pod["spec"]["nodeName"].as_str();
        let server = self.pods.iter().find(|((ns, name), other)| {
            other["status"]["podIP"].as_str() == Some(host)
                && other["status"]["phase"] == "Running"
                && matches!(
                    self.scripts
                        .get(&(ns.clone(), name.clone()))
                        .and_then(|s| s.behaviour.as_ref()),
                    Some(Behaviour::Serve { .. })
                )
        });
        match server {
            Some((server_key, server_pod))
                if network_up && server_pod["spec"]["nodeName"].as_str() != own_node =>
            {
                let page = match self.scripts[server_key].behaviour.as_ref() {
                    Some(Behaviour::Serve { page }) => page.clone(),
                    _ => String::new(),
                };
                (true, page)
            }
            Some((_, server_pod)) if server_pod["spec"]["nodeName"].as_str() == own_node => {
                (false, "fake: client and server on the same node".into())
            }
            _ => (
                false,
                format!("wget: can't connect to remote host ({host}): Connection timed out"),
            ),
        }
    }
}
