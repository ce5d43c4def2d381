//! `kubegrid model-cache` as processes: two nodes on loopback, their Leases on the TEST
//! STAND-IN API server (e2e/fake-apiserver, over HTTPS), the model on the TEST STAND-IN hub
//! (e2e/hub-standin). Both end with the model verified and the hub sent each file once, and,
//! following LLMServices, report their copies in the LLMService's status.

use std::{net::Ipv4Addr, path::Path, process::Stdio, time::Duration};

use base64::Engine as _;
use kubegrid_fake_apiserver::{FakeCluster, serve_tls};
use kubegrid_hub_standin::Hub;
use kubegrid_pki::{Ca, LeafSpec, Usage};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const COMMIT: &str = "00112233445566778899aabbccddeeff00112233";
const PATIENCE: Duration = Duration::from_secs(60);

fn kubeconfig(path: &Path, api: std::net::SocketAddr, ca: &Ca, token: &str) {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca.cert_pem());
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster:\n    server: https://{api}\n    certificate-authority-data: {ca_data}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: m\n  context: {{cluster: m, user: u}}\ncurrent-context: m\n"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn two_nodes_cache_a_model_with_one_download_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights");
    std::fs::write(&weights, vec![7u8; 3 << 20]).unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "{}").unwrap();
    let hub = Hub::start().await.unwrap();
    hub.add(
        "acme/llama",
        "main",
        COMMIT,
        &[("model.safetensors", &weights), ("config.json", &config)],
    );
    let fake = FakeCluster::new();
    fake.enable_status_subresource("serving.kubegrid.io", "llmservices");
    fake.put(serde_json::json!({
        "apiVersion": "serving.kubegrid.io/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "llama", "namespace": "ml", "uid": "u1"},
        "spec": {"model": {"uri": "hf://acme/llama@main"},
                 "engine": {"image": "vllm/vllm-openai:v0.11.0"}},
    }));
    let ca = Ca::generate("test CA", Duration::from_secs(3600)).unwrap();
    let server = ca
        .issue(&LeafSpec {
            common_name: "kube-apiserver".into(),
            organizations: Vec::new(),
            dns_names: Vec::new(),
            ip_addresses: vec![Ipv4Addr::LOCALHOST.into()],
            usage: Usage::Server,
            validity: Duration::from_secs(3600),
        })
        .unwrap();
    let (api, _served) = serve_tls(
        &fake,
        (Ipv4Addr::LOCALHOST, 0).into(),
        &server.cert_pem,
        &server.key_pem,
    )
    .unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "fan-out-secret\n").unwrap();
    let mut children = Vec::new();
    for node in ["gpu-a", "gpu-b"] {
        let kc = dir.path().join(format!("{node}.kubeconfig"));
        kubeconfig(&kc, api, &ca, node);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubegrid"))
            .args([
                "model-cache",
                "--model",
                "hf://acme/llama@main",
                "--hub",
                &hub.url(),
            ])
            .args([
                "--node",
                node,
                "--advertise",
                "127.0.0.1",
                "--namespace",
                "kubegrid-system",
            ])
            .arg("--root")
            .arg(dir.path().join(node))
            .arg("--token-file")
            .arg(&token)
            .args([
                "--fanout-port",
                "0",
                "--control-port",
                "0",
                "--lease-duration",
                "3",
                "--follow-llmservices",
                "--llmservice-namespace",
                "ml",
                "--report-every",
                "1",
            ])
            .args(["--log-format", "text"])
            .env("KUBECONFIG", &kc)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        children.push(child);
    }
    // Each says so on stderr once the model is ready on its node; both keep serving.
    for child in &mut children {
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("ready on this node") {
                    return;
                }
            }
            panic!("stderr ended before the model was ready");
        })
        .await
        .expect("ready in time");
        // Keep draining, so a full pipe never blocks the daemon.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }
    let key = kubegrid_serving::names::cache_key("hf://acme/llama@main");
    for node in ["gpu-a", "gpu-b"] {
        let model = dir.path().join(node).join(&key);
        assert_eq!(
            std::fs::read_to_string(model.join("ready")).unwrap().trim(),
            COMMIT
        );
        assert_eq!(
            std::fs::read(model.join("current/model.safetensors")).unwrap(),
            vec![7u8; 3 << 20]
        );
    }
    assert_eq!(
        hub.log().len(),
        2,
        "one hub request per file: {:?}",
        hub.log()
    );
    let status = tokio::time::timeout(
        PATIENCE,
        fake.wait_for(|f| {
            let svc = f.get_object("serving.kubegrid.io/v1alpha1", "LLMService", "ml", "llama")?;
            let cache = svc["status"]["cache"].as_array()?;
            (cache.len() == 2 && cache.iter().all(|c| c["ready"] == true))
                .then(|| svc["status"].clone())
        }),
    )
    .await
    .expect("both nodes report their copies in the LLMService's status");
    assert_eq!(status["modelCommit"], COMMIT);
    assert_eq!(status["cache"][0]["node"], "gpu-a");
    assert_eq!(status["cache"][1]["bytes"], (3 << 20) + 2);
    for mut child in children {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(PATIENCE, child.wait())
            .await
            .expect("exits on SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}");
    }
    // The coordinator handed its Lease back on SIGTERM rather than leaving it to expire.
    let lease = fake
        .get_object(
            "coordination.k8s.io/v1",
            "Lease",
            "kubegrid-system",
            &kubegrid_modelcache::daemon::lease_name(&key),
        )
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_none_or(str::is_empty),
        "{lease}"
    );
}

#[test]
fn a_model_uri_it_cannot_cache_is_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    for (uri, says) in [
        ("ftp://host/model", "ftp://host/model"),
        ("s3://models/llama", "needs its file list with sha256"),
        (
            "https://models.example/llama",
            "needs its file list with sha256",
        ),
        ("pvc://weights/llama", "never cached on nodes"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegrid"))
            .args([
                "model-cache",
                "--model",
                uri,
                "--node",
                "n",
                "--advertise",
                "127.0.0.1",
            ])
            .arg("--token-file")
            .arg(&token)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{uri}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{uri}: {err}");
    }
    // A capacity that is not a size.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args([
            "model-cache",
            "--model",
            "hf://acme/llama",
            "--capacity",
            "lots",
        ])
        .args(["--node", "n", "--advertise", "127.0.0.1"])
        .arg("--token-file")
        .arg(&token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"lots\" is not a size such as 500Gi"),
        "{err}"
    );
    // An S3 endpoint that is not an http(s) URL, before anything connects.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["model-cache", "--model", "hf://acme/llama"])
        .args(["--s3-endpoint", "ftp://minio.storage"])
        .args(["--node", "n", "--advertise", "127.0.0.1"])
        .arg("--token-file")
        .arg(&token)
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--s3-endpoint") && err.contains("\"ftp://minio.storage\""),
        "{err}"
    );
    // Nothing to cache: neither a model nor LLMServices to follow.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["model-cache", "--node", "n", "--advertise", "127.0.0.1"])
        .arg("--token-file")
        .arg(&token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--model"), "{err}");
}
