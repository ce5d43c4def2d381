//! `apply`'s cluster checks end to end, through the real `kubegrid` binary: after the lab
//! apply, the engine builds the admin kubeconfig from its own CA, connects over mutual TLS,
//! labels the Nodes and runs every check, reporting them and journaling them under
//! `cluster-checks`.
//!
//! The API it talks to is a TEST STAND-IN for kube-apiserver (kubegrid-fake-apiserver),
//! served over HTTPS on the lab bridge with a server certificate from the cluster's CA and
//! requiring client certificates from that CA, as kube-apiserver does. No real apiserver runs
//! here; the hosts run the kubeadm/kubelet stand-ins as in the bootstrap test.

use std::{
    fs,
    net::{IpAddr, SocketAddr, TcpListener},
    path::PathBuf,
    process::Output,
    time::Duration,
};

use kubegrid_e2e::{LabGuard, describe, json};
use kubegrid_fake_apiserver::{FakeCluster, node, serve_mutual_tls, system_pod};
use kubegrid_pki::{Ca, LeafSpec, Usage};
use serde_json::Value;

const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
const WORKER_LABEL: &str = "node-role.kubernetes.io/worker";
const CHECKS: [&str; 5] = [
    "api-readyz",
    "nodes-ready",
    "system-pods",
    "dns",
    "pod-network",
];

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The lab spec with `controlPlaneEndpoint` at `address:port`.
fn spec_with_endpoint(lab: &LabGuard, address: IpAddr, port: u16) -> PathBuf {
    let text = fs::read_to_string(lab.spec()).expect("read lab spec");
    let docs: Vec<String> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let mut d: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("yaml doc");
            if d["kind"] == "Cluster" {
                d["spec"]["controlPlaneEndpoint"] =
                    serde_yaml::from_str(&format!("{{address: \"{address}\", port: {port}}}"))
                        .unwrap();
            }
            serde_yaml::to_string(&d).expect("yaml")
        })
        .collect();
    let path = lab.state_dir.join("specs-e2e-cluster-checks.yaml");
    fs::write(&path, docs.join("---\n")).expect("write spec");
    path
}

/// The cluster CA the first apply kept in the journal, as the engine stored it.
fn cluster_ca(lab: &LabGuard, cluster: &str) -> Ca {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stored = runtime.block_on(async {
        let journal = kubegrid_journal::Journal::open(&lab.journal())
            .await
            .expect("open journal");
        journal
            .cert(cluster, "kubernetes-ca")
            .await
            .expect("read kubernetes-ca")
            .unwrap_or_else(|| panic!("the journal holds no kubernetes-ca for {cluster}"))
    });
    Ca::from_pem(&stored.cert_pem, &stored.key_pem).expect("load the cluster CA")
}

/// Nodes as kubeadm and the kubelets register them: lab-1 with kubeadm's control-plane
/// label, the workers without the worker label (kubegrid must add it), all Ready, with
/// kube-system running and probe pods that behave like busybox.
fn registered_cluster() -> FakeCluster {
    let fake = FakeCluster::new();
    fake.add_node(node("lab-1", true, &[(CONTROL_PLANE_LABEL, "")], &[]))
        .add_node(node("lab-2", true, &[], &[]))
        .add_node(node("lab-3", true, &[], &[]));
    for (name, on) in [
        ("kube-apiserver-lab-1", "lab-1"),
        ("kube-controller-manager-lab-1", "lab-1"),
        ("kube-scheduler-lab-1", "lab-1"),
        ("coredns-7c65d6cfc9-a1", "lab-2"),
        ("coredns-7c65d6cfc9-b2", "lab-3"),
        ("cilium-x1", "lab-1"),
        ("cilium-x2", "lab-2"),
        ("cilium-x3", "lab-3"),
    ] {
        fake.add_pod(system_pod(name, on, true));
    }
    fake.busybox_rules("cluster.local");
    fake
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["kubernetes"]["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {}", report["kubernetes"]))
}

/// The journal's `cluster-checks` events of operation `op`, as `(task, status, message)`.
fn journaled_checks(lab: &LabGuard, op: &Value) -> Vec<(String, String, String)> {
    let out = lab.run(&["logs", &op.to_string(), "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    json(&out)["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["phase"] == "cluster-checks")
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("task"), text("status"), text("message"))
        })
        .collect()
}

#[test]
fn apply_runs_the_cluster_checks_through_the_api_and_fails_on_a_not_ready_node() {
    eprintln!(
        "NOTE: the Kubernetes API in this test is a TEST STAND-IN (kubegrid-fake-apiserver) \
         served over HTTPS on the lab bridge; the hosts run the kubeadm/kubelet stand-ins."
    );
    let lab = LabGuard::up(3);
    let first = &lab.hosts[0].address;
    // The machine's own address on the lab bridge: the engine runs here and reaches it.
    let bridge: IpAddr = format!("{}.1", first.rsplit_once('.').unwrap().0)
        .parse()
        .expect("bridge address");
    let port = TcpListener::bind((bridge, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port on the lab bridge")
        .port();
    let spec = spec_with_endpoint(&lab, bridge, port);

    // Install without the API checks: this makes the cluster CA the fake's certificates
    // come from.
    let out = lab.apply_json(&spec, &["--skip-check", "cluster-api"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(
        report["kubernetes"]["skipped"], "--skip-check cluster-api",
        "{report}"
    );
    let cluster = report["cluster"]
        .as_str()
        .expect("cluster name")
        .to_string();

    let ca = cluster_ca(&lab, &cluster);
    let server = ca
        .issue(&LeafSpec {
            common_name: "kube-apiserver".into(),
            organizations: Vec::new(),
            dns_names: vec!["kubernetes".into()],
            ip_addresses: vec![bridge],
            usage: Usage::Server,
            validity: Duration::from_secs(86_400),
        })
        .expect("issue the apiserver certificate");
    let fake = registered_cluster();
    let (address, apiserver) = serve_mutual_tls(
        &fake,
        SocketAddr::new(bridge, port),
        &server.cert_pem,
        &server.key_pem,
        ca.cert_pem(),
    )
    .expect("serve the fake apiserver");

    // With the API up, every check passes and the workers get their role label.
    let out = lab.apply_json(&spec, &[]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let names: Vec<&str> = report["kubernetes"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, CHECKS, "{}", report["kubernetes"]);
    for name in CHECKS {
        assert_eq!(check(&report, name)["ok"], true, "{}", report["kubernetes"]);
    }
    assert!(
        check(&report, "nodes-ready")["detail"]
            .as_str()
            .unwrap()
            .contains("lab-1, lab-2, lab-3"),
        "{}",
        report["kubernetes"]
    );
    let kubeconfig = fs::read_to_string(lab.state_dir.join("admin.conf")).expect("kubeconfig");
    assert!(
        kubeconfig.contains(&format!("server: https://{address}")),
        "{kubeconfig}"
    );

    let state = fake.state();
    assert!(state.tls_errors.is_empty(), "{:?}", state.tls_errors);
    assert!(state.tls_connections >= 1);
    drop(state);
    for worker in ["lab-2", "lab-3"] {
        let labels = fake.node_labels(worker).expect("worker node");
        assert_eq!(labels[WORKER_LABEL], "", "{worker}: {labels}");
        assert_eq!(labels["kubegrid.io/lab"], "true", "{worker}: {labels}");
    }
    let lab1 = fake.node_labels("lab-1").expect("lab-1");
    assert!(lab1.get(WORKER_LABEL).is_none(), "{lab1}");
    let patched: Vec<String> = fake.requests_matching("PATCH /api/v1/nodes/");
    for name in ["lab-2", "lab-3"] {
        assert!(
            patched
                .iter()
                .any(|r| r.starts_with(&format!("PATCH /api/v1/nodes/{name}?"))),
            "{patched:?}"
        );
    }
    assert!(
        !fake
            .requests_matching("POST /api/v1/namespaces/kubegrid-checks/pods")
            .is_empty(),
        "no probe pods were created"
    );
    let journaled = journaled_checks(&lab, &report["operation"]);
    let tasks: Vec<&str> = journaled.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tasks, CHECKS, "{journaled:?}");
    assert!(
        journaled.iter().all(|(_, status, _)| status != "failed"),
        "{journaled:?}"
    );

    // lab-3's kubelet stops reporting Ready: nodes-ready fails naming it, the rest pass.
    assert!(fake.set_node_ready("lab-3", false));
    let out = lab.apply_json(&spec, &["--check-timeout", "10"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "clusterFailed", "{report}");
    let nodes = check(&report, "nodes-ready");
    assert_eq!(nodes["ok"], false, "{nodes}");
    let detail = nodes["detail"].as_str().unwrap();
    assert!(
        detail.contains("node lab-3: Ready=False") && detail.contains("expected Ready=True"),
        "{detail}"
    );
    assert!(!detail.contains("node lab-2"), "{detail}");
    assert!(detail.starts_with("after 10s:"), "{detail}");
    for name in CHECKS.iter().filter(|n| **n != "nodes-ready") {
        assert_eq!(check(&report, name)["ok"], true, "{}", report["kubernetes"]);
    }
    let journaled = journaled_checks(&lab, &report["operation"]);
    let failed: Vec<&(String, String, String)> = journaled
        .iter()
        .filter(|(_, status, _)| status == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{journaled:?}");
    assert_eq!(failed[0].0, "nodes-ready");
    assert!(failed[0].2.contains("node lab-3"), "{journaled:?}");

    apiserver.stop();
}
