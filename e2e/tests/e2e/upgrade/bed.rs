//! The upgrade tests' bed: a five-host lab (three control-plane/etcd members with external
//! etcd, two workers) installed at given versions, with the Kubernetes API served by a TEST
//! STAND-IN (kubegrid-fake-apiserver) over mutual TLS on the lab bridge, as the cluster
//! checks test does. The hosts run the kubeadm/kubelet stand-ins of the e2e bundle; etcd and
//! containerd are real.

use std::{
    fs,
    net::{IpAddr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use kubegrid_e2e::{LabGuard, describe};
use kubegrid_fake_apiserver::{FakeCluster, ServerHandle, node, serve_mutual_tls, system_pod};
use kubegrid_pki::{Ca, LeafSpec, Usage};
use serde_json::{Value, json};

/// The versions a spec asks for.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    /// `spec.kubernetesVersion`.
    pub kubernetes: &'static str,
    /// `spec.containerRuntime.containerd.version` (a line).
    pub containerd: &'static str,
    /// `spec.etcd.version` (a line).
    pub etcd: &'static str,
}

/// Installed at Kubernetes 1.31.4, containerd 1.6 (config version 2) and etcd 3.4: Debian
/// bookworm's etcd, below kubeadm's minimum for external etcd.
pub const OLD: Versions = Versions {
    kubernetes: "v1.31.4",
    containerd: "1.6",
    etcd: "3.4",
};

/// Two Kubernetes minors on, containerd 2.1 (config version 3), etcd 3.5.
pub const NEW: Versions = Versions {
    kubernetes: "v1.33.4",
    containerd: "2.1",
    etcd: "3.5",
};

/// Control-plane/etcd members and workers, in spec order.
pub const MEMBERS: [&str; 3] = ["lab-1", "lab-2", "lab-3"];

/// A lab, its API stand-in and the address it serves on.
pub struct Bed {
    /// The lab.
    pub lab: LabGuard,
    /// The stand-in API's state.
    pub fake: FakeCluster,
    api: Option<ServerHandle>,
    bridge: IpAddr,
    port: u16,
    /// The cluster's name.
    pub cluster: String,
    /// The workers, in spec order (`lab-4` on).
    pub workers: Vec<String>,
}

impl Bed {
    /// Five lab hosts, nothing installed yet.
    pub fn up() -> Bed {
        Bed::up_n(5)
    }

    /// `n` (at least 5) lab hosts: three control-plane/etcd members, the rest workers.
    pub fn up_n(n: usize) -> Bed {
        eprintln!(
            "NOTE: the Kubernetes API in this test is a TEST STAND-IN (kubegrid-fake-apiserver) \
             served over HTTPS on the lab bridge; kubeadm and kubelet are the e2e bundle's \
             STAND-INS; etcd and containerd are real."
        );
        let lab = LabGuard::up(n);
        let workers: Vec<String> = (4..=n).map(|i| format!("lab-{i}")).collect();
        let first = &lab.hosts[0].address;
        let bridge: IpAddr = format!("{}.1", first.rsplit_once('.').unwrap().0)
            .parse()
            .expect("bridge address");
        let port = TcpListener::bind((bridge, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port on the lab bridge")
            .port();
        let cluster = fs::read_to_string(lab.spec())
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.trim().strip_prefix("name: ").map(String::from))
            })
            .expect("the lab spec names its cluster");
        Bed {
            lab,
            fake: registered(&workers),
            api: None,
            bridge,
            port,
            cluster,
            workers,
        }
    }

    /// The lab spec at `v`, named `name`, with the API at the stand-in's address and
    /// `upgrade` as `spec.upgrade` when given.
    pub fn spec(&self, name: &str, v: Versions, upgrade: Option<Value>) -> PathBuf {
        let (bridge, port) = (self.bridge, self.port);
        self.lab.spec_with(name, |c| {
            let s = &mut c["spec"];
            s["kubernetesVersion"] = v.kubernetes.into();
            s["containerRuntime"]["containerd"]["version"] = v.containerd.into();
            s["etcd"] = serde_yaml::to_value(json!({ "version": v.etcd })).unwrap();
            s["controlPlaneEndpoint"] =
                serde_yaml::to_value(json!({ "address": bridge.to_string(), "port": port }))
                    .unwrap();
            if let Some(u) = upgrade {
                s["upgrade"] = serde_yaml::to_value(u).unwrap();
            }
        })
    }

    /// Installs `spec` (without the API checks: the stand-in API starts after the install,
    /// with a certificate from the CA the install made) and starts the stand-in API.
    pub fn install(&mut self, spec: &Path) {
        let out = self.lab.apply_json(spec, &["--skip-check", "cluster-api"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let (journal, cluster) = (self.lab.journal(), self.cluster.clone());
        self.serve_api(&journal, &cluster);
    }

    /// Starts the stand-in API with a serving certificate from the Kubernetes CA that
    /// `journal` keeps for `cluster` (the operator's journal names it `namespace/name`).
    pub fn serve_api(&mut self, journal: &Path, cluster: &str) {
        let ca = ca_in(journal, cluster, "kubernetes-ca");
        let server = ca
            .issue(&LeafSpec {
                common_name: "kube-apiserver".into(),
                organizations: Vec::new(),
                dns_names: vec!["kubernetes".into()],
                ip_addresses: vec![self.bridge],
                usage: Usage::Server,
                validity: Duration::from_secs(86_400),
            })
            .expect("issue the apiserver certificate");
        let (_, handle) = serve_mutual_tls(
            &self.fake,
            SocketAddr::new(self.bridge, self.port),
            &server.cert_pem,
            &server.key_pem,
            ca.cert_pem(),
        )
        .expect("serve the stand-in API");
        self.api = Some(handle);
    }

    /// A CA the install kept in the lab's journal.
    pub fn ca(&self, name: &str) -> Ca {
        ca_in(&self.lab.journal(), &self.cluster, name)
    }

    /// `kubegrid upgrade plan|apply -f SPEC -o json`.
    pub fn upgrade(&self, verb: &str, spec: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["upgrade", verb, "-f", spec.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        self.lab.run(&args)
    }

    /// The addresses of the etcd members, in spec order.
    pub fn members(&self) -> Vec<String> {
        MEMBERS
            .iter()
            .map(|m| self.lab.host(m).address.clone())
            .collect()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            api.stop();
        }
    }
}

/// The CA `name` that `journal` keeps for `cluster`.
fn ca_in(journal: &Path, cluster: &str, name: &str) -> Ca {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stored = runtime.block_on(async {
        let journal = kubegrid_journal::Journal::open(journal)
            .await
            .expect("open journal");
        journal
            .cert(cluster, name)
            .await
            .expect("read the CA")
            .unwrap_or_else(|| panic!("the journal holds no {name} for {cluster}"))
    });
    Ca::from_pem(&stored.cert_pem, &stored.key_pem).expect("load the CA")
}

/// The Nodes as the kubelets registered them, all Ready, with one pod of an application on
/// each worker (evicted by the drains) and a DaemonSet pod everywhere (left in place).
fn registered(workers: &[String]) -> FakeCluster {
    let fake = FakeCluster::new();
    for m in MEMBERS {
        fake.add_node(node(
            m,
            true,
            &[("node-role.kubernetes.io/control-plane", "")],
            &[],
        ));
    }
    for w in workers {
        fake.add_node(node(w, true, &[], &[]));
        let mut app = system_pod(&format!("web-{w}"), w, true);
        app["metadata"]["namespace"] = "default".into();
        app["metadata"]["ownerReferences"] = json!([{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6d4b", "uid": "rs-1", "controller": true }]);
        fake.add_pod(app);
    }
    fake
}

/// Parses a JSON report, naming the output when it is not one.
pub use kubegrid_e2e::json;
