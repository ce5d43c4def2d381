//! A rotation of the cluster CA on lab hosts. The Kubernetes API at the control-plane endpoint
//! is a TEST STAND-IN (kubegrid-fake-apiserver) on the lab bridge that serves lab-1's
//! `apiserver.crt` and checks client certificates against lab-1's `/etc/kubernetes/pki/ca.crt`,
//! both re-read on every handshake, as kube-apiserver reloads them; the stand-in kubelet's
//! kube-apiserver on lab-1:6443 does the same. Afterwards every kubeconfig and ConfigMap holds
//! the new CA only, and a client certificate the old CA signed is refused by both servers.

use std::net::{IpAddr, SocketAddr, TcpListener};

use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, Config, config::KubeConfigOptions, config::Kubeconfig};
use kubegrid_e2e::{LabGuard, describe};
use kubegrid_fake_apiserver::{FakeCluster, serve_mutual_tls_files};
use serde_json::json;

use super::bed::{Bed, json};

const CA: &str = "/etc/kubernetes/pki/ca.crt";
const KUBECONFIGS: [&str; 5] = [
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/kubelet.conf",
];

#[test]
fn a_cluster_ca_rotation_moves_every_reader_and_the_old_ca_is_refused() {
    let lab = LabGuard::up(3);
    let first = &lab.hosts[0].address;
    let bridge: IpAddr = format!("{}.1", first.rsplit_once('.').unwrap().0)
        .parse()
        .unwrap();
    let port = TcpListener::bind((bridge, 0))
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let endpoint = SocketAddr::new(bridge, port);
    let bed = Bed::up_with_endpoint(lab, endpoint);
    eprintln!(
        "NOTE: the Kubernetes API at the endpoint is a TEST STAND-IN (kubegrid-fake-apiserver)."
    );
    let old_ca = std::fs::read_to_string(bed.host_file("lab-1", CA)).unwrap();
    let fake = FakeCluster::new();
    for ns in ["default", "kube-system"] {
        fake.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": ns}, "data": {"ca.crt": old_ca}}));
    }
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let info = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    certificate-authority-data: {}\n    server: https://{endpoint}\n",
        b64(&old_ca)
    );
    fake.put(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": {"kubeconfig": info}}));
    let (_, server) = serve_mutual_tls_files(
        &fake,
        endpoint,
        &bed.host_file("lab-1", "/etc/kubernetes/pki/apiserver.crt"),
        &bed.host_file("lab-1", "/etc/kubernetes/pki/apiserver.key"),
        &bed.host_file("lab-1", CA),
    )
    .expect("serve the API stand-in");
    let kubeconfig_file = bed.lab.state_dir.join("admin.conf");
    let old_admin = std::fs::read_to_string(&kubeconfig_file).unwrap();

    let out = bed.certs("rotate-ca", &["--ca", "kubernetes"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(
        report["certs"]["rotation"]["phase"], "done",
        "{}",
        report["certs"]["rotation"]
    );

    // Every reader holds the new CA only.
    let new_ca = std::fs::read_to_string(bed.host_file("lab-1", CA)).unwrap();
    assert_eq!(new_ca.matches("BEGIN CERTIFICATE").count(), 1, "{new_ca}");
    assert_ne!(new_ca, old_ca);
    for conf in KUBECONFIGS {
        let text = std::fs::read_to_string(bed.host_file("lab-1", conf)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let data = doc["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(data, b64(&new_ca), "{conf} on lab-1");
    }
    for ns in ["default", "kube-system"] {
        let cm = fake
            .get_object("v1", "ConfigMap", ns, "kube-root-ca.crt")
            .unwrap();
        assert_eq!(
            cm["data"]["ca.crt"],
            new_ca.as_str(),
            "{ns}/kube-root-ca.crt"
        );
    }
    let info = fake
        .get_object("v1", "ConfigMap", "kube-public", "cluster-info")
        .unwrap();
    assert!(
        info["data"]["kubeconfig"]
            .as_str()
            .unwrap()
            .contains(&b64(&new_ca)),
        "{info}"
    );

    // The new admin kubeconfig works on both servers; the old admin certificate (sent to a
    // server the client now trusts) is refused by both.
    let new_admin = std::fs::read_to_string(&kubeconfig_file).unwrap();
    assert_ne!(
        new_admin, old_admin,
        "the admin kubeconfig was not rewritten"
    );
    let old_admin = kubegrid_engine::certs::with_ca_data(&old_admin, &new_ca).unwrap();
    let lab1 = format!("https://{}:6443", bed.lab.host("lab-1").address);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let refused_before = fake.state().tls_errors.len();
        assert!(
            readyz(&new_admin, &lab1).await.is_ok(),
            "new admin on lab-1:6443"
        );
        assert!(
            readyz(&old_admin, &lab1).await.is_err(),
            "old admin accepted by lab-1:6443"
        );
        assert!(
            configmap(&new_admin).await.is_ok(),
            "new admin on the endpoint"
        );
        assert!(
            configmap(&old_admin).await.is_err(),
            "old admin accepted by the endpoint"
        );
        // The server records a refused handshake in its own task, which can finish after the
        // client already saw the refusal: wait for the record, up to a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fake.state().tls_errors.len() <= refused_before {
            assert!(
                std::time::Instant::now() < deadline,
                "the fake API server recorded no refused handshake"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    server.stop();
}

async fn client(kubeconfig: &str, server: Option<&str>) -> Client {
    let mut k = Kubeconfig::from_yaml(kubeconfig).unwrap();
    if let Some(s) = server {
        for c in &mut k.clusters {
            if let Some(cluster) = c.cluster.as_mut() {
                cluster.server = Some(s.to_string());
            }
        }
    }
    let config = Config::from_custom_kubeconfig(k, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

async fn readyz(kubeconfig: &str, server: &str) -> Result<String, kube::Error> {
    let c = client(kubeconfig, Some(server)).await;
    c.request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await
}

async fn configmap(kubeconfig: &str) -> Result<ConfigMap, kube::Error> {
    let c = client(kubeconfig, None).await;
    Api::<ConfigMap>::namespaced(c, "default")
        .get("kube-root-ca.crt")
        .await
}
