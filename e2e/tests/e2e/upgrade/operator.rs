//! The operator runs the same upgrade: the `kubegrid operator` process, with its Clusters and
//! Nodes on the real apiextensions-apiserver (e2e/real-apiserver, behind the harness's front,
//! which serves Secrets, Events and Leases from the fake API server), installs five lab hosts,
//! then rolls them to the next Kubernetes minor with the engine when the Cluster's
//! `spec.kubernetesVersion` changes. The workload cluster's API is the TEST STAND-IN of the
//! upgrade bed; kubeadm and the kubelet are the e2e bundle's stand-ins.

use std::{
    fs,
    net::{Ipv4Addr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use kubegrid_e2e::{bundle_dir, bundle_public_key, kubegrid_bin};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::{Binaries, Front, RealApiServer};
use serde_json::{Value, json};

use super::{
    bed::{Bed, MEMBERS},
    failed::{FROM, TO},
    records::{calls, kubeadm_upgrades},
};

const NS: &str = "lab";

/// Kills the operator when the test ends, however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubegrid.io", "v1alpha1", kind),
        plural,
    )
}

/// Waits until `check` sees what it waits for in the Cluster and its Nodes, looking every
/// 200 ms; on timeout, fails with the operator's log.
fn wait_for(
    rt: &tokio::runtime::Runtime,
    clusters: &Api<DynamicObject>,
    nodes: &Api<DynamicObject>,
    name: &str,
    what: &str,
    log: &Path,
    mut check: impl FnMut(&Value, &[Value]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (cluster, all) = rt.block_on(async {
            let c = clusters.get(name).await.ok();
            let n = nodes.list(&Default::default()).await.ok();
            (c, n)
        });
        if let (Some(c), Some(n)) = (cluster, all) {
            let c = serde_json::to_value(c).unwrap();
            let n: Vec<Value> = n
                .items
                .into_iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect();
            if check(&c, &n) {
                return;
            }
        }
        if Instant::now() > deadline {
            let text = fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            panic!(
                "timed out waiting for {what}; operator log (newest first):\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn condition<'a>(cluster: &'a Value, kind: &str) -> Option<&'a Value> {
    cluster["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

#[test]
fn the_operator_upgrades_a_cluster_from_its_spec_with_the_engine() {
    let Some(binaries) = Binaries::for_test("operator upgrade") else {
        return;
    };
    let mut bed = Bed::up();
    let spec = bed.spec("operator-from", FROM, None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(RealApiServer::start(binaries))
        .expect("the real API server starts");
    rt.block_on(server.apply_crds(&kubegrid_api::crds()))
        .expect("kubegrid's CRDs apply");
    let mgmt = FakeCluster::new();
    let front = rt
        .block_on(Front::start(&server, &mgmt))
        .expect("the front starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator.kubeconfig");
    front
        .write_kubeconfig(&server, "kubegrid-operator", &kubeconfig)
        .expect("front kubeconfig");

    // The lab spec's Cluster and Nodes on the real server, the keys in Secrets.
    let clusters = Api::<DynamicObject>::namespaced_with(
        server.client(),
        NS,
        &resource("Cluster", "clusters"),
    );
    let nodes =
        Api::<DynamicObject>::namespaced_with(server.client(), NS, &resource("Node", "nodes"));
    let text = fs::read_to_string(&spec).unwrap();
    let mut name = String::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let yaml: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        let mut d: Value = serde_json::to_value(yaml).unwrap();
        d["metadata"]["namespace"] = json!(NS);
        let api = if d["kind"] == "Cluster" {
            name = d["metadata"]["name"].as_str().unwrap().to_string();
            let ssh = &mut d["spec"]["ssh"];
            ssh.as_object_mut().unwrap().remove("privateKeyFile");
            ssh["privateKeySecretRef"] = json!({"name": "lab-ssh"});
            d["spec"]["bundle"] = json!({
                "source": bundle_dir().display().to_string(),
                "publicKeyRef": {"name": "bundle-key"},
            });
            &clusters
        } else {
            &nodes
        };
        let obj: DynamicObject = serde_json::from_value(d).unwrap();
        rt.block_on(api.create(&PostParams::default(), &obj))
            .expect("create on the real server");
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for (secret, key, value) in [
        ("lab-ssh", "ssh-privatekey", fs::read(&bed.lab.key).unwrap()),
        (
            "bundle-key",
            "public-key",
            fs::read(bundle_public_key()).unwrap(),
        ),
    ] {
        mgmt.put(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret, "namespace": NS},
            "data": {key: b64(&value)},
        }));
    }

    let listen = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .unwrap();
    let journal = dir.path().join("journal.db");
    let log = dir.path().join("operator.log");
    let _operator = Operator(
        Command::new(kubegrid_bin())
            .args(["operator", "--journal"])
            .arg(&journal)
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .arg("--bundle-root")
            .arg(bundle_dir())
            .args([
                "--listen",
                &listen.to_string(),
                "--lease-namespace",
                "kubegrid-system",
            ])
            .args([
                "--identity",
                "e2e-operator",
                "--skip-check",
                "cluster-api",
                "--backoff-base",
                "1",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kubegrid operator"),
    );
    wait_for(
        &rt,
        &clusters,
        &nodes,
        &name,
        "the Cluster to be Ready",
        &log,
        |c, _| c["status"]["phase"] == "Ready",
    );

    // The workload cluster's API, with a certificate from the CA in the operator's journal.
    bed.serve_api(&journal, &format!("{NS}/{name}"));
    let patch = json!({"spec": {"kubernetesVersion": TO.kubernetes}});
    rt.block_on(clusters.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)))
        .expect("change the Cluster's version");

    // While it rolls: Upgrading on the Cluster, a Node in phase Upgrading with its step.
    let mut step = String::new();
    wait_for(
        &rt,
        &clusters,
        &nodes,
        &name,
        "a Node in phase Upgrading",
        &log,
        |c, n| {
            let upgrading = condition(c, "Upgrading").is_some_and(|u| u["status"] == "True");
            let node = n.iter().find(|n| n["status"]["phase"] == "Upgrading");
            if let (true, Some(node)) = (upgrading, node) {
                step = node["status"]["currentStep"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return true;
            }
            false
        },
    );
    assert!(
        step.starts_with("upgrade"),
        "currentStep while upgrading: {step}"
    );
    wait_for(
        &rt,
        &clusters,
        &nodes,
        &name,
        "the upgrade to succeed",
        &log,
        |c, _| {
            condition(c, "Upgrading")
                .is_some_and(|u| u["status"] == "False" && u["reason"] == "Succeeded")
                && c["status"]["kubernetesVersion"] == TO.kubernetes
        },
    );
    let workers: Vec<String> = bed.workers.clone();
    for host in MEMBERS
        .iter()
        .copied()
        .chain(workers.iter().map(String::as_str))
    {
        let kubelet = bed
            .lab
            .ssh_ok(bed.lab.host(host), "/usr/bin/kubelet --version");
        assert!(kubelet.contains(TO.kubernetes), "{host}: {kubelet}");
    }
    let applied: Vec<String> = kubeadm_upgrades(&calls(&bed, &MEMBERS))
        .iter()
        .filter(|c| c.args.get(1).map(String::as_str) == Some("apply"))
        .map(|c| format!("{} {}", c.host, c.args.get(2).cloned().unwrap_or_default()))
        .collect();
    assert_eq!(applied, [format!("lab-1 {}", TO.kubernetes)]);
    let patches = bed.fake.state().node_patches.len();
    assert!(
        patches >= 10,
        "every Node was cordoned and uncordoned through the API ({patches} patches)"
    );
}
