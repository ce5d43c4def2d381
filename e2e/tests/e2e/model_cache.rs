//! The node model cache on five lab hosts: `kubegrid model-cache` on each (the binary this
//! build made, pushed to the hosts), links tbf-limited to 200 Mbit/s, a 1 GiB model of four
//! 256 MiB shards on the TEST STAND-IN hub (e2e/hub-standin) on the lab bridge, paced to
//! 50 Mbit/s like a WAN source slower than the LAN, and the coordinators' Leases on the TEST
//! STAND-IN API server (e2e/fake-apiserver) served over HTTPS on the bridge.
//!
//! A follower is killed mid-copy and restarted (it resumes with its verified pieces), the
//! coordinator is killed mid-download (another host takes the Lease at a higher epoch), that
//! second coordinator is cut off the network with `lab cut` mid-download and healed (it says
//! it lost the Lease before a third host takes it at epoch 2 and finishes; the healed host
//! follows), no shard is fetched from the hub twice beyond the interrupted ranges, and every
//! host ends with every file checked by sha256sum on the host.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::IpAddr,
    process::{Child, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use kubegrid_e2e::{Host, LabGuard, describe};
use kubegrid_fake_apiserver::FakeCluster;
use serde_json::Value;

use crate::model_cache_bed::{BIN, CacheBed, push_binary};
use sha2::Digest as _;

const RATE: &str = "200mbit";
/// The hub's pace: 50 Mbit/s, a WAN source slower than the 200 Mbit/s LAN, so followers
/// keep up with the coordinator's download (see the known gap in docs/serving.md: a new
/// coordinator downloads again the pieces of a shard past the first one it lacks).
const HUB_RATE: u64 = 6_250_000;
const SHARD: usize = 256 << 20;
const SHARDS: usize = 4;
const COMMIT: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
const URI: &str = "hf://acme/llama-1g@main";
const UNIT: &str = "kubegrid-model-cache";
const ROOT: &str = "/var/lib/kubegrid/models";
const PATIENCE: Duration = Duration::from_secs(300);

/// Every JSON log line of each host's daemon, with a way to wait for a condition.
#[derive(Default)]
struct Logs {
    lines: Mutex<BTreeMap<String, Vec<Value>>>,
    changed: Condvar,
}

impl Logs {
    fn push(&self, host: &str, line: Value) {
        if let Ok(mut l) = self.lines.lock() {
            l.entry(host.to_string()).or_default().push(line);
        }
        self.changed.notify_all();
    }

    /// Waits until `cond` holds over the lines (checked at every line).
    fn until(&self, what: &str, cond: impl Fn(&BTreeMap<String, Vec<Value>>) -> bool) {
        let guard = self.lines.lock().expect("lines");
        let (lines, timeout) = self
            .changed
            .wait_timeout_while(guard, PATIENCE, |l| !cond(l))
            .expect("wait");
        if timeout.timed_out() {
            for (host, l) in lines.iter() {
                eprintln!("--- {host}: last log lines");
                for v in l.iter().rev().take(25).rev() {
                    eprintln!("{v}");
                }
            }
            panic!("timed out waiting for {what}");
        }
    }

    fn lines(&self) -> BTreeMap<String, Vec<Value>> {
        self.lines.lock().expect("lines").clone()
    }

    fn of(&self, host: &str) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lines")
            .get(host)
            .cloned()
            .unwrap_or_default()
    }
}

fn message(line: &Value) -> &str {
    line["message"].as_str().unwrap_or_default()
}

/// Lines of `host` saying `text`.
fn said<'a>(lines: &'a BTreeMap<String, Vec<Value>>, host: &str, text: &str) -> Vec<&'a Value> {
    lines
        .get(host)
        .map(|l| l.iter().filter(|v| message(v) == text).collect())
        .unwrap_or_default()
}

/// A host other than `not` that said it leads at `epoch` or later, and when.
fn leader_since(
    lines: &BTreeMap<String, Vec<Value>>,
    epoch: i64,
    not: &[&str],
) -> Option<(String, String)> {
    lines
        .iter()
        .filter(|(host, _)| !not.contains(&host.as_str()))
        .find_map(|(host, l)| {
            l.iter()
                .find(|v| message(v) == "leading" && v["epoch"].as_i64() >= Some(epoch))
                .map(|v| {
                    let at = v["timestamp"].as_str().unwrap_or_default();
                    (host.clone(), at.to_string())
                })
        })
}

/// The byte `host`'s coordinator asked the hub for `file` from, once it said.
fn downloading_from(lines: &BTreeMap<String, Vec<Value>>, host: &str, file: &str) -> Option<u64> {
    said(lines, host, "downloading")
        .into_iter()
        .find(|v| v["file"] == file)
        .and_then(|v| v["from_byte"].as_u64())
}

fn ready(lines: &BTreeMap<String, Vec<Value>>, host: &str) -> bool {
    !said(lines, host, "ready on this node").is_empty()
}

fn copied(lines: &BTreeMap<String, Vec<Value>>, host: &str, file: &str) -> bool {
    said(lines, host, "copied")
        .iter()
        .any(|v| v["file"] == file)
}

fn shard(i: usize) -> String {
    format!("model-0000{i}-of-0000{SHARDS}.safetensors")
}

/// Streams the daemon's journal on `host` into `logs` (all runs of the unit).
fn follow(lab: &LabGuard, host: &Host, logs: &Arc<Logs>) -> Child {
    let mut child = lab
        .ssh_command_as("root", host)
        .arg(format!("exec journalctl -u {UNIT} -o cat -f -n all"))
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("ssh journalctl");
    let out = child.stdout.take().expect("stdout");
    let (logs, name) = (Arc::clone(logs), host.name.clone());
    thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                logs.push(&name, v);
            }
        }
    });
    child
}

fn start(lab: &LabGuard, host: &Host, hub: &str) {
    let cmd = format!(
        "systemd-run --unit {UNIT} --collect --setenv KUBECONFIG=/var/tmp/kubeconfig --setenv RUST_LOG=info \
         {BIN} model-cache --model {URI} --hub {hub} --node {} --advertise {} --root {ROOT} \
         --namespace kubegrid-system --token-file /var/tmp/fanout-token --lease-duration 6",
        host.name, host.address
    );
    lab.ssh_ok(host, &cmd);
}

fn kill(lab: &LabGuard, host: &Host) {
    lab.ssh_ok(
        host,
        &format!("systemctl kill -s KILL {UNIT}; systemctl reset-failed {UNIT} 2>/dev/null; true"),
    );
}

/// The holder (host name) and epoch of the model's Lease.
fn holder(fake: &FakeCluster) -> Option<(String, i64)> {
    let key = kubegrid_serving::names::cache_key(URI);
    let lease = fake.get_object(
        "coordination.k8s.io/v1",
        "Lease",
        "kubegrid-system",
        &format!("kubegrid-model-{key}"),
    )?;
    let h = lease["spec"]["holderIdentity"]
        .as_str()?
        .split('@')
        .next()?
        .to_string();
    (!h.is_empty()).then(|| (h, lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0)))
}

#[test]
fn five_hosts_cache_a_1gib_model_through_a_killed_follower_a_killed_and_a_cut_coordinator() {
    eprintln!(
        "NOTE: the hub and the API server here are TEST STAND-INS (e2e/hub-standin, \
         e2e/fake-apiserver); the daemons, their links and the transfers are real"
    );
    // Each phase's time since the start, so a slow run shows where it went.
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
    let mut lab = LabGuard::reserve();
    lab.bring_up(5);
    phase("five lab hosts up");
    push_binary(&lab);
    let out = lab.kubegrid(&["shape", "--rate", RATE]);
    assert!(out.status.success(), "lab shape: {}", describe(&out));
    let bridge: IpAddr = lab.list()["gateway"]
        .as_str()
        .expect("lab gateway")
        .parse()
        .expect("gateway address");
    let bed = CacheBed::start(bridge);
    let (rt, fake, hub) = (&bed.rt, &bed.fake, &bed.hub);
    hub.limit_rate(Some(HUB_RATE));

    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let mut files: Vec<(String, std::path::PathBuf, String)> = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 1..=SHARDS {
        let bytes: Vec<u8> = (0..SHARD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let path = dir.path().join(format!("shard{i}"));
        std::fs::write(&path, &bytes).unwrap();
        files.push((shard(i), path, hex::encode(sha2::Sha256::digest(&bytes))));
    }
    let config = dir.path().join("config.json");
    std::fs::write(&config, br#"{"model_type":"llama"}"#).unwrap();
    files.push((
        "config.json".into(),
        config.clone(),
        hex::encode(sha2::Sha256::digest(std::fs::read(&config).unwrap())),
    ));
    let refs: Vec<(&str, &std::path::Path)> = files
        .iter()
        .map(|(p, d, _)| (p.as_str(), d.as_path()))
        .collect();
    hub.add("acme/llama-1g", "main", COMMIT, &refs);
    phase("binary pushed, links shaped, model on the hub");

    bed.configure_hosts(&lab, "e2e-model-cache-token");
    let logs = Arc::new(Logs::default());
    let mut followers: Vec<Child> = lab.hosts.iter().map(|h| follow(&lab, h, &logs)).collect();
    let hub_url = hub.url();
    for h in &lab.hosts {
        start(&lab, h, &hub_url);
    }
    let wait_hub = |bytes: usize| {
        rt.block_on(async { tokio::time::timeout(PATIENCE, hub.wait_sent(bytes as u64)).await })
            .unwrap_or_else(|_| panic!("the hub sent {bytes} bytes in time"));
    };

    // 1. A follower killed half-way through copying shard 2 (followers copy a shard a few
    // pieces behind the coordinator's download), then started again.
    wait_hub(SHARD + SHARD / 2);
    phase("the hub sent one and a half shards");
    let (first, _) = holder(fake).expect("a coordinator");
    let victim = lab.hosts.iter().find(|h| h.name != first).unwrap().clone();
    kill(&lab, &victim);
    start(&lab, &victim, &hub_url);

    // 2. The coordinator killed mid-way through shard 3, once every follower holds shard 2.
    // The hub stalls (mid-way through shard 3) until then, so that the coordinator is killed
    // mid-download however long the followers take: a coordinator that finished shard 3
    // before its kill would leave the next one to fetch much of it again (the known gap in
    // docs/serving.md), which is not what this test is about.
    wait_hub(2 * SHARD + (36 << 20));
    hub.hold();
    phase("the hub sent two shards and holds");
    let live: Vec<String> = lab
        .hosts
        .iter()
        .filter(|h| h.name != first)
        .map(|h| h.name.clone())
        .collect();
    logs.until("every follower copied shard 2", |l| {
        live.iter().all(|h| copied(l, h, &shard(2)))
    });
    phase("every follower holds shard 2");
    hub.release();
    wait_hub(2 * SHARD + SHARD / 2);
    phase("coordinator half-way through shard 3: killed");
    let coordinator = lab.hosts.iter().find(|h| h.name == first).unwrap().clone();
    kill(&lab, &coordinator);
    logs.until("another host leading at epoch 1", |l| {
        leader_since(l, 1, &[&first]).is_some()
    });
    let second = leader_since(&logs.lines(), 1, &[&first])
        .expect("the second coordinator")
        .0;
    phase(&format!("{second} leads at epoch 1"));

    // 3. The second coordinator cut off the network half-way through shard 4, then healed.
    // Its renewals fail, so it stops coordinating before its Lease can expire for anyone
    // else; a third host takes the Lease at epoch 2 and finishes, and the healed host follows.
    // The second coordinator asks the hub for the rest of shard 3 from the first piece it had
    // not copied as a follower; half a shard after that rest, it is half-way through shard 4.
    logs.until(&format!("{second} downloading shard 3"), |l| {
        downloading_from(l, &second, &shard(3)).is_some()
    });
    let from = downloading_from(&logs.lines(), &second, &shard(3)).unwrap_or(0);
    assert!(
        from > 0,
        "{second} took over shard 3 from the pieces it had copied as a follower"
    );
    wait_hub(hub.egress() as usize + (SHARD - from as usize) + SHARD / 2);
    let cut = lab.hosts.iter().find(|h| h.name == second).unwrap().clone();
    let out = lab.kubegrid(&["cut", &cut.name]);
    assert!(out.status.success(), "lab cut: {}", describe(&out));
    phase(&format!("{second} half-way through shard 4: cut off"));
    logs.until("a third host leading at epoch 2", |l| {
        leader_since(l, 2, &[&first, &second]).is_some()
    });
    let (third, led_at) =
        leader_since(&logs.lines(), 2, &[&first, &second]).expect("the third coordinator");
    let out = lab.kubegrid(&["heal", &cut.name]);
    assert!(out.status.success(), "lab heal: {}", describe(&out));
    phase(&format!("{third} leads at epoch 2; {second} healed"));
    logs.until("the other four ready", |l| live.iter().all(|h| ready(l, h)));
    phase("the other four ready");
    let (holder_now, epoch) = holder(fake).expect("a coordinator");
    assert_eq!(
        holder_now, third,
        "the third coordinator still holds the Lease"
    );
    assert!(epoch >= 2, "at epoch 2 or later ({epoch})");
    // The partitioned coordinator knew it had lost the Lease before the next one took it:
    // two coordinators never acted at once (the hosts share this machine's clock).
    let lost = logs
        .of(&second)
        .iter()
        .find(|v| message(v) == "lost leadership: renewal failed")
        .and_then(|v| v["timestamp"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{second} never said it lost leadership"));
    assert_eq!(
        lost.len(),
        led_at.len(),
        "{lost} and {led_at}: one timestamp format"
    );
    assert!(
        lost < led_at,
        "{second} stopped coordinating at {lost}, after {third} took the Lease at {led_at}"
    );
    let stale: usize = lab
        .hosts
        .iter()
        .map(|h| {
            said(
                &logs.lines(),
                &h.name,
                "refused a coordinator answer from an older epoch",
            )
            .len()
        })
        .sum();
    eprintln!(
        "{second} stopped at {lost}, {third} led from {led_at}; coordinator answers refused for an older epoch: {stale}"
    );
    // The killed coordinator comes back as a follower.
    start(&lab, &coordinator, &hub_url);
    logs.until("the old coordinator ready again", |l| ready(l, &first));
    phase("the old coordinator ready again");

    // The restarted follower resumed shard 2 with pieces it had verified before its kill.
    let resumed = logs
        .of(&victim.name)
        .iter()
        .filter(|v| message(v) == "copied" && v["file"] == shard(2))
        .map(|v| v["resumed_pieces"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(resumed > 0, "{} resumed shard 2", victim.name);

    // Every host holds the model, checked on the host.
    for h in &lab.hosts {
        let key = kubegrid_serving::names::cache_key(URI);
        let out = lab.ssh_ok(
            h,
            &format!("cd {ROOT}/{key} && cat ready && cd current && sha256sum *"),
        );
        assert!(out.starts_with(COMMIT), "{}: {out}", h.name);
        for (path, _, sha) in &files {
            assert!(
                out.contains(&format!("{sha}  {path}")),
                "{}: {path} in {out}",
                h.name
            );
        }
    }
    // The hub sent each shard once, plus at most the range the killed coordinator had got.
    let log = hub.log();
    for (path, _, _) in &files {
        let requests: Vec<_> = log.iter().filter(|a| &a.path == path).collect();
        let size = std::fs::metadata(&files.iter().find(|f| &f.0 == path).unwrap().1)
            .unwrap()
            .len();
        let sent: u64 = requests.iter().map(|a| a.sent).sum();
        let interrupted: u64 = requests
            .iter()
            .filter(|a| a.start + a.sent < size)
            .map(|a| a.sent)
            .sum();
        assert!(sent <= size + interrupted, "{path}: {requests:?}");
    }
    phase("every host checked");
    let egress = hub.egress() as f64 / (SHARDS * SHARD) as f64;
    eprintln!(
        "hub egress: {egress:.2} × the model (the killed and the cut coordinators' partial shards included)"
    );
    for c in &mut followers {
        let _ = c.kill();
    }
}
