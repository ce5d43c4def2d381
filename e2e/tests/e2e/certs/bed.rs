//! The certificates tests' bed: three lab hosts, each an external etcd member (real etcd,
//! real TLS), the first also the control plane. kubeadm, the kubelet and the API server on the
//! first host are the e2e bundle's STAND-INS: the stand-in kubeadm writes kubeadm's
//! certificates under the CA kubegrid staged, and the stand-in kubelet serves a stand-in
//! kube-apiserver on 6443 with them (it checks client certificates against the CA file kubegrid
//! rewrites), so per-Node readiness after a restart is asked over real TLS.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use kubegrid_e2e::{LabGuard, describe};
use serde_json::Value;

/// The etcd members, in spec order; lab-1 is also the control plane.
pub const MEMBERS: [&str; 3] = ["lab-1", "lab-2", "lab-3"];

/// An installed three-member cluster.
pub struct Bed {
    /// The lab.
    pub lab: LabGuard,
    /// The spec it was installed from.
    pub spec: PathBuf,
}

impl Bed {
    /// Three lab hosts installed with external etcd on all three.
    pub fn up() -> Bed {
        Bed::up_n(3)
    }

    /// `n` (at least 3) lab hosts installed: lab-1 the control plane and an etcd member,
    /// lab-2 and lab-3 etcd members and workers, the rest workers.
    pub fn up_n(n: usize) -> Bed {
        eprintln!(
            "NOTE: kubeadm, the kubelet and the API server in this test are the e2e bundle's \
             TEST STAND-INS; etcd, its TLS and the certificates kubegrid writes are real."
        );
        let lab = LabGuard::up(n);
        let spec = with_roles(&lab);
        let out = lab.apply_json(&spec, &["--skip-check", "cluster-api"]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        Bed { lab, spec }
    }

    /// `kubegrid certs VERB -f SPEC -o json` plus `extra`.
    pub fn certs(&self, verb: &str, extra: &[&str]) -> Output {
        let kubeconfig = self.lab.state_dir.join("admin.conf");
        let mut args = vec![
            "certs",
            verb,
            "-f",
            self.spec.to_str().unwrap(),
            "-o",
            "json",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.lab.run(&args)
    }

    /// A path inside `host`'s root filesystem, as this machine sees it.
    pub fn host_file(&self, host: &str, path: &str) -> PathBuf {
        self.lab
            .state_dir
            .join("hosts")
            .join(host)
            .join("rootfs")
            .join(path.trim_start_matches('/'))
    }

    /// The etcd members' addresses, in spec order.
    pub fn members(&self) -> Vec<String> {
        MEMBERS
            .iter()
            .map(|m| self.lab.host(m).address.clone())
            .collect()
    }
}

/// The lab spec with lab-1 the only control plane, lab-2 and lab-3 etcd members (and
/// workers) beside it, and every other host a worker.
fn with_roles(lab: &LabGuard) -> PathBuf {
    let text = std::fs::read_to_string(lab.spec()).expect("read lab spec");
    let mut docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("lab spec is YAML"))
        .collect();
    for d in docs.iter_mut().filter(|d| d["kind"] == "Node") {
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let roles: &[&str] = match name.as_str() {
            "lab-1" => &["control-plane", "etcd"],
            "lab-2" | "lab-3" => &["etcd", "worker"],
            _ => &["worker"],
        };
        d["spec"]["roles"] = serde_yaml::to_value(roles).unwrap();
    }
    let out: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("YAML"))
        .collect();
    let path = lab.state_dir.join("specs-e2e-certs.yaml");
    std::fs::write(&path, out.join("---\n")).expect("write spec");
    path
}

/// The JSON document of a kubegrid run.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(out)))
}

/// The row of `name` (a catalog name) on `node` in a certs report.
pub fn row<'a>(report: &'a Value, node: &str, name: &str) -> &'a Value {
    report["certs"]["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == node))
        .and_then(|n| {
            n["certificates"]
                .as_array()
                .and_then(|c| c.iter().find(|r| r["name"] == name))
        })
        .unwrap_or_else(|| panic!("no {name} on {node} in {report}"))
}

/// `openssl s_client` against `address:port`, verifying the server with `ca` and presenting
/// `cert`/`key`; whether verification succeeded.
pub fn openssl_verifies(address: &str, port: u16, ca: &Path, cert: &Path, key: &Path) -> bool {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("{address}:{port}")])
        .arg("-CAfile")
        .arg(ca)
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(["-verify_return_error", "-brief"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success() && text.contains("Verification: OK")
}
