//! Benchmark: the node model cache on N = 2, 4 and 8 lab hosts whose links tbf limits to
//! 200 Mbit/s (`lab shape`), against the link bound M/B and against every host downloading
//! the model from the hub itself.
//!
//! The hub is the TEST STAND-IN (e2e/hub-standin) on this machine's bridge address, unpaced:
//! its link is the lab's bridge, limited like a host's (200 Mbit/s), as a nearby mirror would
//! be. The coordinators' Leases are on the TEST STAND-IN API server (e2e/fake-apiserver) over
//! HTTPS. The daemons are `kubegrid model-cache` (KUBEGRID_BIN, a release build for
//! meaningful numbers: a debug build's sha256 is CPU-bound) started with systemd-run on
//! each host. Each run caches a fresh repository (a new cache key and Lease).
//!
//! Rows, each the median of KUBEGRID_BENCH_RUNS runs (default 3):
//! - the link bound M/B, with B one TCP stream's measured throughput to one host;
//! - `cache, N hosts`: time from starting the N daemons (all at once, each over its own
//!   ssh, as a DaemonSet's pods start) until the last says the model is ready on its node, and the hub's egress as a multiple of M (target 1.0); files are
//!   published piece by piece as the coordinator downloads them (the default);
//! - `cache, whole files, N hosts`: the same with `--publish-whole-files`, each file
//!   published once it has verified whole;
//! - `each from hub, N hosts`: the same daemons, each with its own Lease namespace, so each
//!   host is its own coordinator and downloads the whole model (egress N × M).
//!
//! Run as root, offline: `KUBEGRID_BIN=target/release/kubegrid cargo bench -p kubegrid-e2e
//! --bench model_cache`. KUBEGRID_BENCH_MODEL_MIB sets the model size (512, in four shards),
//! KUBEGRID_BENCH_HOSTS the host counts (`2,4,8`), and KUBEGRID_BENCH_MODES=cache leaves out
//! the every-host-from-the-hub rows.

#[expect(
    dead_code,
    reason = "this benchmark uses only the ssh and link helpers"
)]
mod common;
#[expect(
    dead_code,
    reason = "the benchmark keeps the stand-ins' runtime and state alive without reading them"
)]
#[path = "../tests/e2e/model_cache_bed.rs"]
mod model_cache_bed;

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    thread,
    time::Instant,
};

use common::{env_usize, ssh_command, stream_to_host};
use kubegrid_e2e::{Host, LabGuard, describe, median};
use model_cache_bed::{BIN, CacheBed, push_binary};

const RATE: &str = "200mbit";
const UNIT: &str = "kubegrid-model-cache";
const COMMIT: &str = "be7c4be7c4be7c4be7c4be7c4be7c4be7c4be7c4";

/// When one host's daemon was started and when it said the model is ready, in seconds
/// from the start of the run.
struct HostTimes {
    started: f64,
    ready: f64,
}

/// Starts the daemon for `uri` on each of `hosts` (Leases in `namespace(host)`), all at
/// once as a DaemonSet's pods would start, and returns each host's start and ready times
/// (with one Lease, the first ready is the coordinator, which downloads).
fn cache_on(
    lab: &LabGuard,
    hosts: &[Host],
    hub: &str,
    uri: &str,
    namespace: &(dyn Fn(&Host) -> String + Sync),
    extra: &str,
) -> Vec<HostTimes> {
    let started = Instant::now();
    let times = thread::scope(|scope| {
        let waits: Vec<_> = hosts
            .iter()
            .map(|h| {
                scope.spawn(move || {
                    let cmd = format!(
                        "systemd-run --unit {UNIT} --collect --setenv KUBECONFIG=/var/tmp/kubeconfig --setenv RUST_LOG=info \
                         {BIN} model-cache --model {uri} --hub {hub} --node {} --advertise {} \
                         --namespace {} --token-file /var/tmp/fanout-token {extra}",
                        h.name,
                        h.address,
                        namespace(h)
                    );
                    lab.ssh_ok(h, &cmd);
                    let up = started.elapsed().as_secs_f64();
                    // This run's lines from the first one: a `-f -n 0` follower started
                    // before the unit once never saw a coordinator's ready line, and the run
                    // hung. Ten minutes at most, so a run that never gets ready fails.
                    let invocation = lab.ssh_ok(h, &format!("systemctl show -p InvocationID --value {UNIT}"));
                    let mut follow = ssh_command(lab, h)
                        .arg(format!(
                            "exec timeout 600 journalctl _SYSTEMD_INVOCATION_ID={} -o cat -f -n all",
                            invocation.trim()
                        ))
                        .stdout(Stdio::piped())
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("ssh journalctl");
                    let out = follow.stdout.take().expect("stdout");
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if line.contains("\"ready on this node\"") {
                            let _ = follow.kill();
                            let _ = follow.wait();
                            return HostTimes {
                                started: up,
                                ready: started.elapsed().as_secs_f64(),
                            };
                        }
                    }
                    let _ = follow.wait();
                    panic!("{}: the journal ended before the model was ready", h.name);
                })
            })
            .collect();
        waits
            .into_iter()
            .map(|t| t.join().expect("waiter"))
            .collect::<Vec<_>>()
    });
    // KUBEGRID_BENCH_JOURNALS=<dir> keeps each run's daemon logs there, to see where time went.
    let keep = std::env::var("KUBEGRID_BENCH_JOURNALS").ok().map(|d| {
        let dir = std::path::Path::new(&d).join(uri.replace(['/', ':', '@'], "_"));
        std::fs::create_dir_all(&dir).expect("journal directory");
        dir
    });
    for h in hosts {
        if let Some(dir) = &keep {
            let log = lab.ssh_ok(
                h,
                &format!("journalctl -u {UNIT} -o short-precise --no-pager"),
            );
            std::fs::write(dir.join(format!("{}.log", h.name)), log).expect("write journal");
        }
        lab.ssh_ok(
            h,
            &format!("systemctl stop {UNIT}; rm -rf /var/lib/kubegrid/models"),
        );
    }
    times
}

fn main() {
    let runs = env_usize("KUBEGRID_BENCH_RUNS").unwrap_or(3).max(1);
    let counts: Vec<usize> = std::env::var("KUBEGRID_BENCH_HOSTS")
        .unwrap_or_else(|_| "2,4,8".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .ok()
                .filter(|n| (1..=8).contains(n))
                .expect("KUBEGRID_BENCH_HOSTS: host counts from 1 to 8, comma-separated")
        })
        .collect();
    let modes: Vec<&str> = match std::env::var("KUBEGRID_BENCH_MODES").as_deref() {
        Ok("cache") => vec!["cache", "cache, whole files"],
        _ => vec!["cache", "cache, whole files", "each from hub"],
    };
    let mib = env_usize("KUBEGRID_BENCH_MODEL_MIB").unwrap_or(512).max(4);
    let size = (mib as u64) << 20;
    let mut lab = LabGuard::reserve();
    lab.bring_up(counts.iter().copied().max().unwrap_or(8));
    push_binary(&lab);
    let out = lab.kubegrid(&["shape", "--rate", RATE]);
    assert!(out.status.success(), "lab shape: {}", describe(&out));
    let gateway = lab.list()["gateway"]
        .as_str()
        .expect("lab gateway")
        .to_string();
    let bed = CacheBed::start(gateway.parse().expect("gateway address"));
    let hub = &bed.hub;
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let mut shards = Vec::new();
    for i in 1..=4 {
        let path = dir.path().join(format!("shard{i}"));
        kubegrid_e2e::sh(&format!(
            "head -c {} /dev/urandom > {}",
            size / 4,
            path.display()
        ));
        shards.push((format!("model-0000{i}-of-00004.safetensors"), path));
    }
    bed.configure_hosts(&lab, "bench-model-cache-token");

    let link: Vec<f64> = (0..runs)
        .map(|_| stream_to_host(&lab, &lab.hosts[0], &gateway, size))
        .collect();
    let bound = size as f64 / median(link);
    println!("link: one TCP stream at {RATE}; M/B = {bound:.2} s for {mib} MiB");

    let mut rows: Vec<(String, Vec<f64>, f64)> = Vec::new();
    let mut repo = 0;
    for mode in modes {
        for &n in &counts {
            let (mut times, mut egress) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                repo += 1;
                let name = format!("acme/bench-{repo}");
                let refs: Vec<(&str, &std::path::Path)> = shards
                    .iter()
                    .map(|(p, d)| (p.as_str(), d.as_path()))
                    .collect();
                hub.add(&name, "main", COMMIT, &refs);
                let before = hub.egress();
                let uri = format!("hf://{name}@main");
                let solo = mode == "each from hub";
                let extra = if mode == "cache, whole files" {
                    "--publish-whole-files"
                } else {
                    ""
                };
                let namespace = move |h: &Host| {
                    if solo {
                        format!("solo-{}", h.name)
                    } else {
                        "kubegrid-system".into()
                    }
                };
                let hosts = cache_on(&lab, &lab.hosts[..n], &hub.url(), &uri, &namespace, extra);
                let t = hosts.iter().map(|h| h.ready).fold(0.0, f64::max);
                let first = hosts.iter().map(|h| h.ready).fold(f64::MAX, f64::min);
                let all_up = hosts.iter().map(|h| h.started).fold(0.0, f64::max);
                times.push(t);
                egress.push((hub.egress() - before) as f64 / size as f64);
                let mut ready: Vec<f64> = hosts.iter().map(|h| h.ready).collect();
                ready.sort_by(f64::total_cmp);
                let ready: Vec<String> = ready.iter().map(|r| format!("{r:.1}")).collect();
                eprintln!(
                    "{mode}, {n} hosts: {t:.2} s (first ready at {first:.2} s, all started by {all_up:.2} s; ready at {}), hub egress {:.2} × M",
                    ready.join(" "),
                    egress[egress.len() - 1]
                );
            }
            rows.push((format!("{mode}, {n} hosts"), times, median(egress)));
        }
    }
    println!("\n{mib} MiB model (4 shards) to lab hosts at {RATE}, median of {runs} run(s)");
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>14}",
        "method", "median", "min", "max", "vs M/B", "hub egress (M)"
    );
    println!(
        "{:<28} {:>8.2}s {:>9} {:>9} {:>8.2}x {:>14}",
        "link bound M/B", bound, "-", "-", 1.0, "-"
    );
    for (name, times, egress) in &rows {
        let med = median(times.clone());
        let min = times.iter().copied().fold(f64::MAX, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        println!(
            "{name:<28} {med:>8.2}s {min:>8.2}s {max:>8.2}s {:>8.2}x {egress:>14.2}",
            med / bound
        );
    }
    println!("targets: cache within 1.5x of M/B, hub egress 1.0 x M");
}
