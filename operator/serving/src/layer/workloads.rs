//! The controller's Deployment and the cache's DaemonSet. Both run the one kubegrid image
//! (pinned by digest) with a read-only root filesystem and no capabilities; the cache runs
//! as root only because it writes the node's model directory, which the serving pods mount.

use serde_json::{Value, json};

use super::{
    CACHE, CONTROL_PORT, CONTROLLER, FANOUT_PORT, LayerOptions, S3_SECRET, TOKEN_SECRET, labels,
};
use crate::names::MODEL_ROOT;

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

fn selector(name: &str) -> Value {
    json!({"matchLabels": {"app.kubernetes.io/name": name}})
}

/// The serving controller: two replicas, one acting through the Lease
/// `kubegrid-serving-controller`, the other standing by.
pub fn controller_deployment(opts: &LayerOptions) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CONTROLLER, "namespace": opts.namespace, "labels": labels(CONTROLLER)},
        "spec": {
            "replicas": 2,
            "selector": selector(CONTROLLER),
            "template": {
                "metadata": {"labels": labels(CONTROLLER)},
                "spec": {
                    "serviceAccountName": CONTROLLER,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "controller",
                        "image": opts.image,
                        "command": ["/kubegrid"],
                        "args": [
                            "serving-controller",
                            format!("--lease-name={CONTROLLER}"),
                            // Routers of services that scale to zero run the same image.
                            format!("--router-image={}", opts.image),
                            "--log-format=json",
                        ],
                        "env": [
                            field_env("POD_NAMESPACE", "metadata.namespace"),
                            field_env("POD_NAME", "metadata.name"),
                        ],
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"cpu": "1", "memory": "256Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

/// The node model cache on every GPU node: host networking (other nodes reach its fan-out
/// and control ports at the node's address), the model root from the host, the token from
/// its Secret, S3 settings from the optional [`S3_SECRET`], readiness and liveness on
/// `/healthz`.
pub fn cache_daemon_set(opts: &LayerOptions) -> Value {
    let mut args = vec![
        "model-cache".to_string(),
        "--follow-llmservices".into(),
        format!("--root={MODEL_ROOT}"),
        "--token-file=/etc/kubegrid/fanout/token".into(),
        format!("--fanout-port={FANOUT_PORT}"),
        format!("--control-port={CONTROL_PORT}"),
        "--log-format=json".into(),
    ];
    if let Some(c) = &opts.cache_capacity {
        args.push(format!("--capacity={c}"));
    }
    let (label, value) = &opts.gpu_node_label;
    let probe = |period: i32| json!({"httpGet": {"path": "/healthz", "port": CONTROL_PORT}, "periodSeconds": period});
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": CACHE, "namespace": opts.namespace, "labels": labels(CACHE)},
        "spec": {
            "selector": selector(CACHE),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels(CACHE)},
                "spec": {
                    "serviceAccountName": CACHE,
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "nodeSelector": {label: value},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    // Time to hand the coordinator Leases back at SIGTERM.
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "cache",
                        "image": opts.image,
                        "command": ["/kubegrid"],
                        "args": args,
                        "env": [
                            field_env("NODE_NAME", "spec.nodeName"),
                            field_env("POD_IP", "status.podIP"),
                            field_env("POD_NAMESPACE", "metadata.namespace"),
                        ],
                        // S3 settings and credentials for s3:// models, when the cluster's
                        // admin creates the Secret; `env` above wins over any clash.
                        "envFrom": [{"secretRef": {"name": S3_SECRET, "optional": true}}],
                        "ports": [
                            {"name": "fanout", "containerPort": FANOUT_PORT, "protocol": "TCP"},
                            {"name": "control", "containerPort": CONTROL_PORT, "protocol": "TCP"},
                        ],
                        "readinessProbe": probe(10),
                        "livenessProbe": probe(20),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "2", "memory": "1Gi"},
                        },
                        // Root, without capabilities: the model root on the host is root's.
                        "securityContext": {
                            "runAsUser": 0,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [
                            {"name": "models", "mountPath": MODEL_ROOT},
                            {"name": "token", "mountPath": "/etc/kubegrid/fanout", "readOnly": true},
                        ],
                    }],
                    "volumes": [
                        {"name": "models", "hostPath": {"path": MODEL_ROOT, "type": "DirectoryOrCreate"}},
                        {"name": "token", "secret": {"secretName": TOKEN_SECRET, "defaultMode": 0o400}},
                    ],
                },
            },
        },
    })
}
