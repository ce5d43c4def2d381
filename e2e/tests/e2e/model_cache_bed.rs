//! What the lab model-cache test and benchmark share: the kubegrid binary pushed to each
//! host, the TEST STAND-IN API server (e2e/fake-apiserver) over HTTPS and the TEST STAND-IN
//! hub (e2e/hub-standin) on this machine's bridge address, and each host's kubeconfig and
//! fan-out token. The benchmark includes this file by path.

use std::{
    io::Write as _,
    net::{IpAddr, SocketAddr},
    process::Stdio,
    thread,
    time::Duration,
};

use base64::Engine as _;
use kubegrid_e2e::{Host, LabGuard, kubegrid_bin};
use kubegrid_fake_apiserver::{FakeCluster, ServerHandle, serve_tls};
use kubegrid_hub_standin::Hub;
use kubegrid_pki::{Ca, LeafSpec, Usage};

/// Where the binary goes on each host.
pub const BIN: &str = "/var/tmp/kubegrid";

/// Writes `bytes` to `path` on `host` (mode 0755), atomically.
pub fn push(lab: &LabGuard, host: &Host, path: &str, bytes: &[u8]) {
    let mut c = lab
        .ssh_command_as("root", host)
        .arg(format!(
            "cat > {path}.new && chmod 0755 {path}.new && mv {path}.new {path}"
        ))
        .stdin(Stdio::piped())
        .spawn()
        .expect("ssh");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("push");
    assert!(
        c.wait().expect("wait").success(),
        "push {path} to {}",
        host.name
    );
}

/// Pushes the kubegrid binary this build made to every host, in parallel. Do it before the
/// links are limited: a debug build is large.
pub fn push_binary(lab: &LabGuard) {
    let binary = std::fs::read(kubegrid_bin()).expect("read kubegrid");
    thread::scope(|s| {
        for h in &lab.hosts {
            let binary = &binary;
            s.spawn(move || push(lab, h, BIN, binary));
        }
    });
}

/// The stand-ins on the bridge, and the runtime that serves them.
pub struct CacheBed {
    /// Serves the stand-ins; tests block on it.
    pub rt: tokio::runtime::Runtime,
    /// The API server's state (Leases).
    pub fake: FakeCluster,
    /// The hub.
    pub hub: Hub,
    api: SocketAddr,
    ca: Ca,
    _served: ServerHandle,
}

impl CacheBed {
    /// Serves the stand-in API (TLS, a certificate for `bridge`) and the hub on `bridge`.
    pub fn start(bridge: IpAddr) -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let fake = FakeCluster::new();
        let ca = Ca::generate("e2e model cache CA", Duration::from_secs(86_400)).unwrap();
        let cert = ca
            .issue(&LeafSpec {
                common_name: "kube-apiserver".into(),
                organizations: Vec::new(),
                dns_names: Vec::new(),
                ip_addresses: vec![bridge],
                usage: Usage::Server,
                validity: Duration::from_secs(86_400),
            })
            .unwrap();
        let (api, served) = {
            let _enter = rt.enter();
            serve_tls(
                &fake,
                SocketAddr::new(bridge, 0),
                &cert.cert_pem,
                &cert.key_pem,
            )
            .expect("serve the stand-in API")
        };
        let hub = rt
            .block_on(async {
                Hub::serve(tokio::net::TcpListener::bind(SocketAddr::new(bridge, 0)).await?)
            })
            .expect("hub stand-in");
        Self {
            rt,
            fake,
            hub,
            api,
            ca,
            _served: served,
        }
    }

    /// Gives every host `/var/tmp/kubeconfig` (the stand-in API, the host's name as its
    /// token) and `/var/tmp/fanout-token`.
    pub fn configure_hosts(&self, lab: &LabGuard, token: &str) {
        let ca_data = base64::engine::general_purpose::STANDARD.encode(self.ca.cert_pem());
        for h in &lab.hosts {
            let kubeconfig = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster:\n    server: https://{}\n    certificate-authority-data: {ca_data}\nusers:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: m\n  context: {{cluster: m, user: u}}\ncurrent-context: m\n",
                self.api, h.name
            );
            push(lab, h, "/var/tmp/kubeconfig", kubeconfig.as_bytes());
            push(
                lab,
                h,
                "/var/tmp/fanout-token",
                format!("{token}\n").as_bytes(),
            );
        }
    }
}
