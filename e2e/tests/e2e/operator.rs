//! The `kubegrid operator` binary end to end: it watches a management cluster's API — the
//! TEST STAND-IN API server (e2e/fake-apiserver) over HTTPS, since no kube-apiserver runs
//! here — and installs the Cluster it finds there onto real lab hosts with the engine, then
//! resets them when the Cluster is deleted with `deletionPolicy: Reset`.

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine as _;
use kubegrid_e2e::{LabGuard, bundle_dir, bundle_public_key, kubegrid_bin};
use kubegrid_fake_apiserver::{FakeCluster, serve_tls};
use kubegrid_pki::{Ca, LeafSpec, Usage};
use serde_json::{Value, json};

const NS: &str = "lab";
const API: &str = "kubegrid.io/v1alpha1";

/// Kills the operator when the test ends, however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The lab spec's Cluster and Nodes as API objects in namespace `lab`, with the SSH key and
/// the bundle key in Secrets as the operator takes them.
fn seed(fake: &FakeCluster, lab: &LabGuard) -> String {
    let text = fs::read_to_string(lab.spec()).expect("read lab spec");
    let mut cluster_name = String::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let yaml: serde_yaml::Value = serde::Deserialize::deserialize(doc).expect("yaml doc");
        let mut d: Value = serde_json::to_value(yaml).expect("yaml as json");
        d["metadata"]["namespace"] = json!(NS);
        if d["kind"] == "Cluster" {
            cluster_name = d["metadata"]["name"].as_str().unwrap().to_string();
            let ssh = &mut d["spec"]["ssh"];
            ssh.as_object_mut().unwrap().remove("privateKeyFile");
            ssh["privateKeySecretRef"] = json!({"name": "lab-ssh"});
            d["spec"]["bundle"] = json!({
                "source": bundle_dir().display().to_string(),
                "publicKeyRef": {"name": "bundle-key"},
            });
            d["spec"]["deletionPolicy"] = json!("Reset");
        }
        fake.put(d);
    }
    let key = fs::read(&lab.key).expect("lab ssh key");
    let public = fs::read(bundle_public_key()).expect("bundle public key");
    for (name, k, v) in [
        ("lab-ssh", "ssh-privatekey", key),
        ("bundle-key", "public-key", public),
    ] {
        fake.put(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS},
            "data": {k: b64(&v)},
        }));
    }
    cluster_name
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `GET path` on the operator's HTTP endpoint: (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the operator's endpoint");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn wait(
    fake: &FakeCluster,
    what: &str,
    secs: u64,
    check: impl FnMut(&FakeCluster) -> Option<()>,
    log: &std::path::Path,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(secs), fake.wait_for(check)).await
    });
    if done.is_err() {
        let logs = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = logs.lines().rev().take(40).collect();
        panic!(
            "timed out after {secs}s waiting for {what}; operator log (newest first):\n{}",
            tail.join("\n")
        );
    }
}

#[test]
fn the_operator_installs_a_cluster_from_the_api_onto_lab_hosts_and_resets_it_on_delete() {
    eprintln!(
        "NOTE: the management cluster's API is the TEST STAND-IN (e2e/fake-apiserver); kubeadm, \
         kubelet, kubectl and crictl on the lab hosts are STAND-INS (e2e/src/bin/kubegrid-standin). \
         The workload cluster's API checks are skipped (--skip-check cluster-api)."
    );
    let lab = LabGuard::up(2);
    let fake = FakeCluster::new();
    fake.enable_status_subresource("kubegrid.io", "clusters");
    fake.enable_status_subresource("kubegrid.io", "nodes");
    let cluster = seed(&fake, &lab);

    let ca = Ca::generate("e2e management cluster CA", Duration::from_secs(86_400)).unwrap();
    let server = ca
        .issue(&LeafSpec {
            common_name: "kube-apiserver".into(),
            organizations: Vec::new(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec![Ipv4Addr::LOCALHOST.into()],
            usage: Usage::Server,
            validity: Duration::from_secs(86_400),
        })
        .unwrap();
    let (api, _server) = serve_tls(
        &fake,
        (Ipv4Addr::LOCALHOST, 0).into(),
        &server.cert_pem,
        &server.key_pem,
    )
    .expect("serve the stand-in API");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster:\n    server: https://{api}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: e2e\ncontexts:\n- name: m\n  context: {{cluster: m, user: u, namespace: {NS}}}\ncurrent-context: m\n",
            b64(ca.cert_pem().as_bytes())
        ),
    )
    .unwrap();
    let listen: SocketAddr = (Ipv4Addr::LOCALHOST, free_port()).into();
    let log = dir.path().join("operator.log");
    let journal = dir.path().join("journal.db");
    let start = |log_name: &str| {
        let child = Command::new(kubegrid_bin())
            .args(["operator", "--journal"])
            .arg(&journal)
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            // The Cluster names the bundle by its absolute path: the one bundle root.
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
            // Short, so the restarted operator takes over the dead one's Lease soon.
            .args(["--lease-duration", "3"])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join(log_name)).unwrap())
            .spawn()
            .expect("start kubegrid operator");
        Operator(child)
    };

    // Killed (SIGKILL, no cleanup) in the middle of the install: once both hosts started a
    // task after the container-runtime phase. Phases are barriers, so by then the engine has
    // journaled that phase's results for every host.
    let mut first = start("operator-killed.log");
    let halfway = |f: &FakeCluster| {
        let done = |n: &Value| {
            let step = n["status"]["currentStep"].as_str().unwrap_or("");
            let finished = n["status"]["phaseTimes"]
                .as_array()
                .is_some_and(|t| t.iter().any(|p| p["phase"] == "container-runtime"));
            finished && !step.is_empty() && !step.starts_with("container-runtime")
        };
        let nodes = f.list_objects(API, "Node", Some(NS));
        (nodes.len() == 2 && nodes.iter().all(done)).then_some(())
    };
    wait(
        &fake,
        "both hosts past container-runtime",
        600,
        halfway,
        &dir.path().join("operator-killed.log"),
    );
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    drop(first);
    let mut operator = start("operator.log");

    let ready = |f: &FakeCluster| {
        let c = f.get_object(API, "Cluster", NS, &cluster)?;
        (c["status"]["phase"] == "Ready").then_some(())
    };
    wait(&fake, "the Cluster to be Ready", 600, ready, &log);

    // The restarted operator resumed the killed one's operation: the phases finished before
    // the kill were not run again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let j = kubegrid_journal::Journal::open(&journal).await.unwrap();
        let ops = j.operations(10).await.unwrap();
        let done = ops
            .iter()
            .find(|o| o.status == kubegrid_journal::OperationStatus::Succeeded)
            .expect("a finished operation");
        let killed = ops
            .iter()
            .find(|o| o.id < done.id)
            .expect("the killed operation");
        assert_eq!(
            killed.status,
            kubegrid_journal::OperationStatus::Interrupted,
            "{ops:#?}"
        );
        let events = j.events(done.id, None).await.unwrap();
        assert!(
            !events
                .iter()
                .any(|e| e.phase == "os-prepare" || e.phase == "container-runtime"),
            "phases finished before the kill ran again: {events:#?}"
        );
        let carried = j.host_results(done.id).await.unwrap();
        for h in &lab.hosts {
            assert!(
                carried
                    .iter()
                    .any(|r| r.host == h.name && r.phase == "container-runtime" && r.ok),
                "{carried:#?}"
            );
        }
        assert!(
            events
                .iter()
                .any(|e| e.phase == "kubernetes-packages" || e.phase == "control-plane-init"),
            "{events:#?}"
        );
    });

    let c = fake.get_object(API, "Cluster", NS, &cluster).unwrap();
    assert_eq!(
        c["status"]["nodes"],
        json!({"total": 2, "ready": 2}),
        "{c:#}"
    );
    // The installed version, as the engine recorded it after kubeadm init.
    let wanted = c["spec"]["kubernetesVersion"].as_str().unwrap();
    assert_eq!(
        c["status"]["kubernetesVersion"],
        format!("v{}", wanted.trim_start_matches('v')),
        "{c:#}"
    );
    assert_eq!(c["status"]["operation"]["kind"], "install", "{c:#}");
    for h in &lab.hosts {
        let n = fake.get_object(API, "Node", NS, &h.name).unwrap();
        assert_eq!(n["status"]["phase"], "Ready", "{n:#}");
        assert_eq!(n["status"]["facts"]["arch"], "amd64", "{n:#}");
        // The pinned key is the host's real one, as OpenSSH prints its fingerprint.
        let seen = lab.ssh_ok(
            h,
            "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2",
        );
        assert_eq!(
            n["status"]["hostKey"],
            format!("ssh-ed25519 {}", seen.trim()),
            "{n:#}"
        );
        assert!(
            !n["status"]["phaseTimes"].as_array().unwrap().is_empty(),
            "{n:#}"
        );
        assert_eq!(
            lab.ssh_ok(h, "systemctl is-active containerd").trim(),
            "active"
        );
        // Versions are what the host's own binaries print.
        let containerd = n["status"]["versions"]["containerd"]
            .as_str()
            .unwrap_or_else(|| panic!("no containerd version: {n:#}"));
        let printed = lab.ssh_ok(h, "containerd --version");
        assert!(
            printed.contains(containerd.trim_start_matches('v')),
            "{containerd} vs {printed}"
        );
        if let Some(kubelet) = n["status"]["versions"]["kubelet"].as_str() {
            let printed = lab.ssh_ok(h, "/usr/bin/kubelet --version");
            assert!(
                printed.contains(kubelet.trim_start_matches('v')),
                "{kubelet} vs {printed}"
            );
        }
    }
    let secret = fake
        .get_object("v1", "Secret", NS, &format!("{cluster}-kubeconfig"))
        .expect("the kubeconfig Secret");
    let text = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["value"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8_lossy(&text).contains("client-key-data"));

    let (status, metrics) = http_get(listen, "/metrics");
    assert!(status.contains("200"), "{status}");
    let ready_line = format!("kubegrid_hosts{{cluster=\"{NS}/{cluster}\",phase=\"Ready\"}} 2");
    assert!(metrics.contains(&ready_line), "{metrics}");
    assert!(metrics.contains("kubegrid_leader 1"), "{metrics}");
    assert!(http_get(listen, "/healthz").0.contains("200"));
    assert!(http_get(listen, "/readyz").0.contains("200"));
    // JSON log lines, with the cluster on the operation's lines.
    let logs = fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "no JSON log lines:\n{logs}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "operation finished"
                && l["cluster"] == format!("{NS}/{cluster}")),
        "no `operation finished` line with the cluster field:\n{logs}"
    );

    // Deleting the Cluster (deletionPolicy: Reset) resets every host before it goes.
    lab.ssh_ok(
        &lab.hosts[0],
        "systemctl is-active --quiet etcd.service && test -d /var/lib/etcd/member",
    );
    assert!(fake.delete_object(API, "Cluster", NS, &cluster));
    let gone = |f: &FakeCluster| {
        f.get_object(API, "Cluster", NS, &cluster)
            .is_none()
            .then_some(())
    };
    wait(
        &fake,
        "the Cluster to be reset and removed",
        300,
        gone,
        &log,
    );
    for h in &lab.hosts {
        assert_eq!(
            lab.ssh_ok(h, "test -e /etc/kubernetes/kubelet.conf || echo reset")
                .trim(),
            "reset",
            "{} still has its kubelet.conf",
            h.name
        );
        // kubegrid's external etcd (lab-1 has the etcd role) went too, with its data.
        assert_eq!(
            lab.ssh_ok(
                h,
                "for p in /var/lib/etcd /etc/etcd/pki /etc/systemd/system/etcd.service; \
                 do test -e $p && echo \"$p left\"; done; true"
            ),
            "",
            "{}",
            h.name
        );
        let n = fake.get_object(API, "Node", NS, &h.name).unwrap();
        assert!(
            n["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty()),
            "{n:#}"
        );
    }

    // SIGTERM: it releases the Lease and exits 0.
    let pid = nix::unistd::Pid::from_raw(operator.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = operator.0.wait().unwrap();
    assert!(status.success(), "operator exited with {status}");
    let lease = fake
        .get_object(
            "coordination.k8s.io/v1",
            "Lease",
            "kubegrid-system",
            "kubegrid-operator",
        )
        .expect("the Lease");
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{lease:#}"
    );
}
