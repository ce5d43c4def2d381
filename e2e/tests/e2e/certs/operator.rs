//! The operator watches certificates and renews them by itself: the `kubegrid operator`
//! process, its Clusters and Nodes on the real apiextensions-apiserver (behind the harness's
//! front, which serves Secrets, Events and Leases from the fake API server), installs a lab
//! host with 5-minute certificates (`KUBEGRID_TEST_SHORT_CERTIFICATES=1` in the operator's
//! environment: TEST-ONLY), raises `CertificatesExpiring`, renews before they expire (the
//! not-after on the host moves later), and flags a certificate replaced by hand at its next
//! check. kubeadm, the kubelet and the API server are the e2e bundle's STAND-INS; etcd and
//! its TLS are real.

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
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use kubegrid_e2e::{LabGuard, bundle_dir, bundle_public_key, kubegrid_bin};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::{Binaries, Front, RealApiServer};
use serde_json::{Value, json};

const NS: &str = "lab";
/// etcd's serving certificate: kubegrid issues it, real etcd serves it on 2379.
const ETCD_SERVER: &str = "/etc/etcd/pki/server.crt";
/// The API server's etcd client pair (the stand-in API server does not talk to etcd).
const BY_HAND: &str = "/etc/kubernetes/pki/apiserver-etcd-client.crt";
const BY_HAND_KEY: &str = "/etc/kubernetes/pki/apiserver-etcd-client.key";

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

/// Waits (10 minutes at most) until `check` sees what it waits for in the Cluster, looking
/// every 500 ms; on timeout, fails with the operator's log and the Cluster's status.
fn wait_for(
    rt: &tokio::runtime::Runtime,
    clusters: &Api<DynamicObject>,
    name: &str,
    what: &str,
    log: &Path,
    mut check: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = Value::Null;
    loop {
        if let Ok(c) = rt.block_on(clusters.get(name)) {
            last = serde_json::to_value(c).unwrap();
            if check(&last) {
                return last;
            }
        }
        if Instant::now() > deadline {
            let text = fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            panic!(
                "timed out waiting for {what}; status: {:#}\noperator log (newest first):\n{}",
                last["status"],
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn condition<'a>(cluster: &'a Value, kind: &str) -> Option<&'a Value> {
    cluster["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The Events' `reason: note` lines.
fn events(mgmt: &FakeCluster) -> Vec<String> {
    mgmt.list_objects("events.k8s.io/v1", "Event", Some(NS))
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or(""),
                e["note"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The notAfter of the certificate at `path` on `host`, read from the host's filesystem.
fn not_after(lab: &LabGuard, host: &str, path: &str) -> kubegrid_pki::time::OffsetDateTime {
    let file = lab
        .state_dir
        .join("hosts")
        .join(host)
        .join("rootfs")
        .join(path.trim_start_matches('/'));
    let pem = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    kubegrid_pki::read_expiry(&pem).unwrap().not_after
}

#[test]
fn the_operator_renews_short_lived_certificates_by_itself_and_flags_one_changed_by_hand() {
    let Some(binaries) = Binaries::for_test("operator certificates") else {
        return;
    };
    eprintln!(
        "NOTE: kubeadm, the kubelet and the API server in this test are the e2e bundle's TEST \
         STAND-INS; etcd, its TLS and the certificates kubegrid writes are real. The 5-minute \
         certificates need KUBEGRID_TEST_SHORT_CERTIFICATES=1, a TEST-ONLY override."
    );
    let lab = LabGuard::up(1);
    let spec = lab.spec_with("certs-operator", |c| {
        c["spec"]["certificates"] = serde_yaml::to_value(json!({
            "validity": "5m",
            "renewBefore": "4m",
            "checkInterval": "10s",
        }))
        .unwrap();
    });
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
        ("lab-ssh", "ssh-privatekey", fs::read(&lab.key).unwrap()),
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
    let log = dir.path().join("operator.log");
    let _operator = Operator(
        Command::new(kubegrid_bin())
            .args(["operator", "--journal"])
            .arg(dir.path().join("journal.db"))
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .arg("--bundle-root")
            .arg(bundle_dir())
            .args([
                "--listen",
                &listen.to_string(),
                "--lease-namespace",
                "kubegrid-system",
                "--identity",
                "e2e-operator",
                "--skip-check",
                "cluster-api",
                "--backoff-base",
                "1",
            ])
            .env("KUBECONFIG", &kubeconfig)
            // TEST-ONLY: lets spec.certificates.validity be 5m.
            .env("KUBEGRID_TEST_SHORT_CERTIFICATES", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start kubegrid operator"),
    );
    wait_for(
        &rt,
        &clusters,
        &name,
        "the Cluster to be Ready",
        &log,
        |c| c["status"]["phase"] == "Ready",
    );

    // The check after the install: 5-minute certificates are within warnBefore (120 days).
    let checked = wait_for(&rt, &clusters, &name, "CertificatesExpiring", &log, |c| {
        c["status"]["certificates"]["lastChecked"].is_string()
            && condition(c, "CertificatesExpiring").is_some_and(|x| x["status"] == "True")
    });
    assert!(
        checked["status"]["certificates"]["earliestExpiry"]["notAfter"].is_string(),
        "{:#}",
        checked["status"]
    );
    assert!(
        events(&mgmt)
            .iter()
            .any(|e| e.starts_with("CertificatesExpiring: ")),
        "{:#?}",
        events(&mgmt)
    );
    let before = not_after(&lab, "lab-1", ETCD_SERVER);

    // Within renewBefore (4 of its 5 minutes) the operator renews by itself.
    let renewed = wait_for(&rt, &clusters, &name, "a renewal", &log, |c| {
        c["status"]["certificates"]["lastRenewed"].is_string()
    });
    let after = not_after(&lab, "lab-1", ETCD_SERVER);
    assert!(
        after > before,
        "etcd's certificate on lab-1: {before} -> {after}"
    );
    let all = events(&mgmt);
    for reason in ["RenewalStarted: ", "RenewalFinished: "] {
        assert!(
            all.iter().any(|e| e.starts_with(reason)),
            "no {reason}{all:#?}"
        );
    }
    // What real etcd serves on 2379 after the renewal: the renewed certificate.
    let served = renewed["status"]["certificates"]["served"].clone();
    eprintln!("served after the renewal: {served:#}");
    let etcd = served
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["port"] == 2379)
        .unwrap_or_else(|| panic!("no 2379 in {served:#}"));
    assert_eq!(
        (&etcd["answered"], &etcd["matches"]),
        (&json!(true), &json!(true)),
        "{etcd:#}"
    );

    // A certificate replaced by hand is flagged at the next check.
    let stranger = kubegrid_pki::Ca::generate("someone-else", Duration::from_secs(86_400)).unwrap();
    let leaf = stranger
        .issue(&kubegrid_pki::LeafSpec {
            common_name: "by-hand".into(),
            organizations: Vec::new(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: kubegrid_pki::Usage::Client,
            validity: Duration::from_secs(86_400),
        })
        .unwrap();
    let host_path = |p: &str| {
        lab.state_dir
            .join("hosts/lab-1/rootfs")
            .join(p.trim_start_matches('/'))
    };
    fs::write(host_path(BY_HAND), &leaf.cert_pem).unwrap();
    fs::write(host_path(BY_HAND_KEY), &leaf.key_pem).unwrap();
    let flagged = wait_for(
        &rt,
        &clusters,
        &name,
        "the hand-made certificate flagged",
        &log,
        |c| {
            c["status"]["certificates"]["flagged"]
                .as_array()
                .is_some_and(|f| {
                    f.iter()
                        .any(|x| x["node"] == "lab-1" && x["file"] == BY_HAND)
                })
        },
    );
    eprintln!(
        "flagged: {:#}",
        flagged["status"]["certificates"]["flagged"]
    );
    assert!(
        events(&mgmt)
            .iter()
            .any(|e| e.starts_with("CertificateFlagged: ") && e.contains(BY_HAND)),
        "{:#?}",
        events(&mgmt)
    );
    let status = serde_json::to_string(&flagged["status"]).unwrap();
    assert!(!status.contains("PRIVATE KEY"), "{status}");
}
