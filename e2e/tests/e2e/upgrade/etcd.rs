//! Watching external etcd through an upgrade: a writer that puts a sequenced key every 50 ms
//! and keeps the ones etcd acknowledged, and a monitor that asks each member for its own
//! status every 250 ms and keeps the most members down at once. Both run etcdctl 3.5 from the
//! e2e bundle on this machine, with a client certificate from the cluster's etcd CA.
//!
//! A member is down when it does not answer `endpoint status`, which each member answers
//! from itself. `endpoint health` is not used for this: it needs a leader, so during a leader
//! election (which a loaded 2-core machine can cause with no upgrade at all) every member
//! fails it at once although all are up and the quorum is whole. Elections show in the
//! writer's longest gap instead.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use kubegrid_pki::{Ca, LeafSpec, Usage};

/// The key prefix the writer uses.
const PREFIX: &str = "/kubegrid-e2e/seq/";
/// Time between two puts.
const EVERY: Duration = Duration::from_millis(50);

/// etcdctl with the client certificate, against some endpoints.
#[derive(Clone)]
pub struct Etcdctl {
    bin: PathBuf,
    tls: [PathBuf; 3],
}

impl Etcdctl {
    /// A client certificate from `ca` written under `dir`, and the bundle's etcdctl.
    pub fn new(ca: &Ca, dir: &Path) -> Etcdctl {
        let leaf = ca
            .issue(&LeafSpec {
                common_name: "kubegrid-e2e-writer".into(),
                organizations: Vec::new(),
                dns_names: Vec::new(),
                ip_addresses: Vec::new(),
                usage: Usage::Client,
                validity: Duration::from_secs(86_400),
            })
            .expect("issue the etcd client certificate");
        let tls = [
            dir.join("etcd-ca.crt"),
            dir.join("etcd-e2e.crt"),
            dir.join("etcd-e2e.key"),
        ];
        std::fs::write(&tls[0], ca.cert_pem()).unwrap();
        std::fs::write(&tls[1], &leaf.cert_pem).unwrap();
        std::fs::write(&tls[2], &leaf.key_pem).unwrap();
        Etcdctl {
            bin: etcdctl_3_5(),
            tls,
        }
    }

    /// The bundle's etcdctl with the CA, certificate and key at these paths, read afresh by
    /// every command: pointed into a lab host's root filesystem, the client follows the files
    /// kubegrid rewrites there.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Etcdctl {
        Etcdctl {
            bin: etcdctl_3_5(),
            tls: [ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf()],
        }
    }

    /// The command for `endpoints` (addresses), timing out each request after `timeout`.
    pub fn command(&self, endpoints: &[String], timeout: Duration) -> Command {
        let urls: Vec<String> = endpoints
            .iter()
            .map(|a| format!("https://{a}:2379"))
            .collect();
        let mut c = Command::new(&self.bin);
        c.arg(format!("--endpoints={}", urls.join(",")))
            .arg(format!("--cacert={}", self.tls[0].display()))
            .arg(format!("--cert={}", self.tls[1].display()))
            .arg(format!("--key={}", self.tls[2].display()))
            .arg(format!("--command-timeout={}ms", timeout.as_millis()))
            .arg("--dial-timeout=1s")
            .stdin(Stdio::null());
        c
    }

    /// Every key under the writer's prefix, read through the quorum.
    pub fn written(&self, endpoints: &[String]) -> BTreeSet<u64> {
        let out = self
            .command(endpoints, Duration::from_secs(10))
            .args(["get", "--prefix", PREFIX, "--keys-only"])
            .output()
            .expect("run etcdctl get");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix(PREFIX))
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}

/// The etcdctl 3.5 the e2e bundle carries for this machine.
fn etcdctl_3_5() -> PathBuf {
    let bundle = kubegrid_e2e::bundle_dir();
    let manifest = std::fs::read_to_string(bundle.join("manifest.yaml")).unwrap();
    let mut path = None;
    for entry in manifest.split("\n  - ").skip(1) {
        let field = |k: &str| {
            entry
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{k}: ")))
                .map(|v| v.trim_matches('"').to_string())
        };
        if field("name").as_deref() == Some("etcdctl")
            && field("version").is_some_and(|v| v.starts_with("3.5."))
        {
            path = field("path");
        }
    }
    bundle.join(path.expect("the e2e bundle carries etcdctl 3.5"))
}

/// What the writer and the monitor saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Sequence numbers etcd acknowledged.
    pub acked: BTreeSet<u64>,
    /// Puts tried.
    pub tried: u64,
    /// The longest time between two acknowledged puts.
    pub longest_gap: Duration,
    /// The most members that did not answer `endpoint status` at the same time.
    pub most_down: usize,
    /// Status rounds taken.
    pub rounds: u64,
}

/// The running writer and monitor.
pub struct Watch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    threads: Vec<JoinHandle<()>>,
}

impl Watch {
    /// Starts both against `members` (addresses).
    pub fn start(ctl: &Etcdctl, members: Vec<String>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let writer = {
            let (ctl, members, stop, seen) =
                (ctl.clone(), members.clone(), stop.clone(), seen.clone());
            thread::spawn(move || {
                let mut last_ack = Instant::now();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let tick = Instant::now();
                    let ok = ctl
                        .command(&members, Duration::from_secs(2))
                        .args(["put", &format!("{PREFIX}{n:08}"), &n.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    let mut s = seen.lock().unwrap();
                    s.tried += 1;
                    if ok {
                        s.acked.insert(n);
                        s.longest_gap = s.longest_gap.max(last_ack.elapsed());
                        last_ack = Instant::now();
                    }
                    drop(s);
                    n += 1;
                    thread::sleep(EVERY.saturating_sub(tick.elapsed()));
                }
            })
        };
        let monitor = {
            let (ctl, stop, seen) = (ctl.clone(), stop.clone(), seen.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let tick = Instant::now();
                    let children: Vec<Child> = members
                        .iter()
                        .map(|m| {
                            ctl.command(std::slice::from_ref(m), Duration::from_millis(1500))
                                .args(["endpoint", "status"])
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .spawn()
                                .expect("run etcdctl endpoint status")
                        })
                        .collect();
                    let down = children
                        .into_iter()
                        .map(|mut c| c.wait().is_ok_and(|s| s.success()))
                        .filter(|ok| !ok)
                        .count();
                    let mut s = seen.lock().unwrap();
                    s.rounds += 1;
                    s.most_down = s.most_down.max(down);
                    drop(s);
                    thread::sleep(Duration::from_millis(250).saturating_sub(tick.elapsed()));
                }
            })
        };
        Watch {
            stop,
            seen,
            threads: vec![writer, monitor],
        }
    }

    /// Stops both and returns what they saw.
    pub fn stop(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("watch thread");
        }
        Arc::try_unwrap(self.seen)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    }
}
