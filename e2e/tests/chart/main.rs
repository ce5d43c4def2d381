//! The Helm chart `charts/kubegrid`, rendered offline and checked object by object.
//!
//! No Helm CLI and no cluster here: `charts/kubegrid/tests/check_chart.py` renders and lints
//! the chart with helm-python-sdk (Helm v4's Go SDK, in-process) and validates every object
//! with kubernetes-validate in strict mode against the Kubernetes 1.31.4 API schemas, both
//! from the virtualenv .ci/setup builds. kubernetes-validate has no schema for the Prometheus
//! Operator's ServiceMonitor (a CRD); the helper checks that object against the fields the
//! chart uses, copied from the monitoring.coreos.com/v1 CRD, and this test asserts the
//! upstream "no schema" so a kubernetes-validate release that adds one is noticed.
//!
//! Helm's lint mode turns `fail` into a log line, so the "replicas > 1 needs a database"
//! refusal is checked on the render, where `helm install` and `helm template` hit it too.

mod crds;
mod dashboard;
mod image;
mod render;

use std::{collections::BTreeSet, path::Path};

use render::{NAMESPACE, Render};
use serde_json::json;

#[test]
fn default_values_render_a_hardened_sqlite_operator() {
    let r = Render::valid(json!({}));
    let kinds: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    .map(String::from)
    .into();
    assert_eq!(r.kinds(), kinds);
    let d = r.deployment();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(r.container()["image"], "ghcr.io/kubegrid/kubegrid:0.1.0");
    assert_eq!(r.container()["command"], json!(["/kubegrid"]));
    assert_eq!(
        r.args(),
        [
            "operator",
            "--journal=/var/lib/kubegrid/journal.db",
            "--lease-namespace=$(POD_NAMESPACE)",
            "--lease-name=kubegrid-operator",
            "--identity=$(POD_NAME)",
            "--listen=0.0.0.0:8080",
            "--log-format=json",
            "--work-dir=/var/run/kubegrid",
            "--bundle-dir=/var/lib/kubegrid/bundles",
            "--bundle-root=/var/lib/kubegrid/bundles",
            "--distribution=ssh",
        ]
    );
    let env = &r.container()["env"];
    assert_eq!(
        env[0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env[1]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        r.container()["ports"],
        json!([{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        r.container()["livenessProbe"]["httpGet"]["path"],
        "/healthz"
    );
    assert_eq!(
        r.container()["readinessProbe"]["httpGet"]["path"],
        "/readyz"
    );
    let pvc = r.one("PersistentVolumeClaim");
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(
        pvc["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let journal = r.volume("journal").expect("journal volume");
    assert_eq!(
        journal["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    assert_eq!(
        r.mount("journal").unwrap()["mountPath"],
        "/var/lib/kubegrid"
    );
    let work = r.volume("work").expect("work volume");
    assert_eq!(work["emptyDir"]["medium"], "Memory");
    assert_eq!(r.mount("work").unwrap()["mountPath"], "/var/run/kubegrid");
    assert!(r.volume("tmp").unwrap()["emptyDir"].is_object());
    assert_eq!(r.mount("tmp").unwrap()["mountPath"], "/tmp");
    assert!(r.volume("bundles").is_none(), "no bundle source was given");
    let svc = r.one("Service");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http-metrics");
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    r.validate_with_cli();
}

#[test]
fn postgres_lets_three_replicas_roll_without_a_volume() {
    let url = "postgres://kubegrid:pw@pg:5432/kubegrid";
    let r = Render::valid(json!({"replicas": 3, "database": {"url": url}}));
    let d = r.deployment();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(!r.kinds().contains("PersistentVolumeClaim"));
    assert!(r.volume("journal").is_none() && r.mount("journal").is_none());
    // `kubegrid operator` reads --database-url from KUBEGRID_DATABASE_URL: no argument, so
    // the password is not in argv.
    let args = r.args();
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--journal") || a.contains("database"))
    );
    let secret = r.one("Secret");
    let env = r.container()["env"].as_array().unwrap();
    let db = env
        .iter()
        .find(|e| e["name"] == "KUBEGRID_DATABASE_URL")
        .expect("env");
    let key_ref = &db["valueFrom"]["secretKeyRef"];
    assert_eq!(key_ref["name"], secret["metadata"]["name"]);
    assert_eq!(key_ref["key"], "url");
    // "postgres://kubegrid:pw@pg:5432/kubegrid", base64.
    assert_eq!(
        secret["data"]["url"],
        "cG9zdGdyZXM6Ly9rdWJlZ3JpZDpwd0BwZzo1NDMyL2t1YmVncmlk"
    );
    assert!(
        !d.to_string().contains(url),
        "the URL must stay in the Secret"
    );
    r.validate_with_cli();

    let r = Render::valid(json!({"replicas": 2,
        "database": {"existingSecret": "pg", "existingSecretKey": "dsn"}}));
    assert!(
        !r.kinds().contains("Secret"),
        "an existing Secret is not rendered"
    );
    r.validate_with_cli();
    let env = r.container()["env"].as_array().unwrap();
    let db = env
        .iter()
        .find(|e| e["name"] == "KUBEGRID_DATABASE_URL")
        .expect("env");
    assert_eq!(
        db["valueFrom"]["secretKeyRef"],
        json!({"name": "pg", "key": "dsn"})
    );
}

#[test]
fn watch_namespace_swaps_the_cluster_role_for_a_role_there_and_lease_follows_its_name() {
    let values = json!({"watchNamespace": "team-a", "leaseName": "kg-a", "distribution": "http"});
    let r = Render::valid(values);
    for arg in [
        "--namespace=team-a",
        "--lease-name=kg-a",
        "--distribution=http",
    ] {
        assert!(r.args().contains(&arg), "no {arg} in {:?}", r.args());
    }
    assert!(!r.kinds().contains("ClusterRole") && !r.kinds().contains("ClusterRoleBinding"));
    let namespaces: BTreeSet<&str> = r
        .all("Role")
        .iter()
        .map(|role| role["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["team-a", NAMESPACE]));
    r.validate_with_cli();
}

#[test]
fn service_monitor_scrapes_the_metrics_service() {
    let values = json!({"metrics": {"serviceMonitor": {"enabled": true, "interval": "15s",
                                                       "labels": {"release": "prom"}}}});
    let r = Render::valid(values);
    let sm = r
        .objects()
        .iter()
        .find(|o| o["object"]["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor");
    assert_eq!(
        sm["upstream_status"], "no-schema",
        "kubernetes-validate now has a schema for ServiceMonitor: validate it there and \
         update this test and check_chart.py, which say it has none"
    );
    assert_eq!(sm["validator"], "servicemonitor-subset");
    let (sm, svc) = (&sm["object"], r.one("Service"));
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["port"], svc["spec"]["ports"][0]["name"]);
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "the Service lacks label {k}"
        );
    }
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    let cli = r.validate_with_cli();
    assert!(
        cli.contains("Couldn't find schema for kind ServiceMonitor"),
        "{cli}"
    );
}

#[test]
fn existing_claims_and_host_paths_are_mounted_not_created() {
    let r = Render::valid(json!({"persistence": {"existingClaim": "journal-old"},
                                 "bundles": {"existingClaim": "bundles"}}));
    assert!(!r.kinds().contains("PersistentVolumeClaim"));
    assert_eq!(r.deployment()["spec"]["strategy"]["type"], "Recreate");
    let journal = &r.volume("journal").unwrap()["persistentVolumeClaim"];
    assert_eq!(journal["claimName"], "journal-old");
    let bundles = &r.volume("bundles").unwrap()["persistentVolumeClaim"];
    assert_eq!(*bundles, json!({"claimName": "bundles", "readOnly": true}));
    let mount = r.mount("bundles").unwrap();
    assert_eq!(mount["mountPath"], "/var/lib/kubegrid/bundles");
    assert_eq!(mount["readOnly"], true);
    r.validate_with_cli();

    let r = Render::valid(json!({"bundles": {"hostPath": "/srv/kubegrid/bundles"},
                                 "persistence": {"enabled": false}}));
    let host = &r.volume("bundles").unwrap()["hostPath"];
    assert_eq!(
        *host,
        json!({"path": "/srv/kubegrid/bundles", "type": "Directory"})
    );
    assert_eq!(r.mount("bundles").unwrap()["readOnly"], true);
    // persistence.enabled=false: the journal on an emptyDir, no claim anywhere.
    assert!(!r.kinds().contains("PersistentVolumeClaim"));
    assert_eq!(r.volume("journal").unwrap()["emptyDir"], json!({}));
    r.validate_with_cli();
}

#[test]
fn replicas_above_one_without_a_database_refuse_to_render() {
    for values in [
        json!({"replicas": 3}),
        json!({"replicas": 2, "persistence": {"existingClaim": "j"}}),
    ] {
        let r = Render::new(values.clone());
        let err = &r.report["render_error"];
        assert_eq!(err["type"], "HelmRenderError", "{values} rendered: {err}");
        let message = err["message"].as_str().unwrap();
        for needle in [
            "ReadWriteOnce",
            "database.url or database.existingSecret",
            "replicas to 1",
        ] {
            assert!(message.contains(needle), "{values}: {message}");
        }
        assert!(r.objects().is_empty());
    }
}

#[test]
fn the_values_schema_rejects_typos_and_bad_types() {
    for (values, needle) in [
        (json!({"replica": 1}), "'replica' not allowed"),
        (json!({"replicas": 0}), "/replicas"),
        (json!({"distribution": "ftp"}), "/distribution"),
        (
            json!({"image": {"pullPolicy": "Sometimes"}}),
            "/image/pullPolicy",
        ),
        // null removes a default (Helm's rule), so this renders with no memory limit.
        (json!({"resources": {"limits": {"memory": null}}}), "memory"),
        (
            json!({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}),
            "interval",
        ),
    ] {
        let r = Render::new(values.clone());
        let err = &r.report["render_error"];
        assert_eq!(err["type"], "HelmValuesError", "{values}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{values}: {err}"
        );
        let lint_errors = r.report["lint"]["errors"].as_array().unwrap();
        assert!(!lint_errors.is_empty(), "helm lint accepted {values}");
    }
}

#[test]
fn strict_validation_catches_an_unknown_field() {
    // extraEnv is passed through as written, so a misspelt EnvVar field reaches the
    // Deployment; kubernetes-validate must reject it, proving the validation is live.
    let values = json!({"extraEnv": [{"name": "X", "valueFromm": {}}]});
    let r = Render::new(values);
    let d = r
        .objects()
        .iter()
        .find(|o| o["object"]["kind"] == "Deployment")
        .unwrap();
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["message"].as_str().unwrap().contains("valueFromm"),
        "{}",
        d["message"]
    );
}

#[test]
fn the_chart_ships_both_crds_and_they_validate() {
    let r = Render::new(json!({}));
    let crds = r.report["crds"].as_array().unwrap();
    let names: BTreeSet<&str> = crds
        .iter()
        .map(|c| c["object"]["metadata"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["clusters.kubegrid.io", "nodes.kubegrid.io"]),
        "charts/kubegrid/crds must hold exactly the two CRDs; regenerate them with \
         `kubegrid crd --output-dir charts/kubegrid/crds`"
    );
    for c in crds {
        assert_eq!(
            c["object"]["kind"], "CustomResourceDefinition",
            "{}",
            c["file"]
        );
        assert_eq!(c["status"], "passed", "{}: {}", c["file"], c["message"]);
    }
}

/// Every value in values.yaml has a row in README.md's table and a comment line right above
/// it in values.yaml.
#[test]
fn every_value_is_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kubegrid");
    let text = std::fs::read_to_string(dir.join("values.yaml")).expect("values.yaml");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let values: serde_yaml::Value = serde_yaml::from_str(&text).expect("values.yaml parses");
    let mut paths = Vec::new();
    leaves("", &values, &mut paths);
    assert!(paths.len() > 30, "{paths:?}");
    for path in &paths {
        // `resources` is one row: its requests/limits are a Kubernetes object, not values.
        let row = if path.starts_with("resources.") {
            "resources"
        } else {
            path.as_str()
        };
        assert!(
            readme.contains(&format!("| `{row}` |")),
            "README.md has no row for `{row}`"
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut top = "";
    for (i, line) in lines.iter().enumerate() {
        let key = line.trim_start();
        if line.len() == key.len() && !key.is_empty() && !key.starts_with('#') {
            top = key;
        }
        if key.is_empty() || key.starts_with('#') || key.starts_with('-') {
            continue;
        }
        // A key that only opens a map is documented by its keys; `resources` holds a
        // Kubernetes object, documented as a whole.
        let next = lines[i + 1..]
            .iter()
            .map(|l| l.trim_start())
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        let opens_map = key.ends_with(':') && !next.starts_with('-');
        if opens_map || (top.starts_with("resources:") && line.starts_with(' ')) {
            continue;
        }
        let above = lines[..i].last().map_or("", |l| l.trim_start());
        assert!(
            above.starts_with('#'),
            "values.yaml line {}: `{key}` has no comment right above it",
            i + 1
        );
    }
}

/// Dotted paths of the values under `prefix`: maps are descended unless empty.
fn leaves(prefix: &str, value: &serde_yaml::Value, out: &mut Vec<String>) {
    match value.as_mapping() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = k.as_str().expect("string keys");
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}
