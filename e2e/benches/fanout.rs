//! Benchmark: one 512 MiB bundle file to 12 lab hosts whose links tbf limits to 200 Mbit/s
//! (`lab up --link-rate`), so the network and not the shared disk is the bottleneck, as on
//! real hosts. The engine's side of the bridge is limited too: its uplink is the star's wall.
//!
//! Rows, each the median of KUBEGRID_BENCH_RUNS runs (default 3):
//! - the link bound M/B, with B one TCP stream's measured throughput to one host;
//! - the star: kubegrid's `http` distribution (each host fetches from the engine), at 12
//!   hosts and at 3 (where `--distribution auto` starts to pick p2p);
//! - `p2p` at 12 hosts, and at 3 and 6 hosts (the first hosts of the same lab), to show the
//!   time stays flat as N grows; with the seed's bytes sent as a multiple of M;
//! - a sequential OpenSSH scp to each host in turn.
//!
//! Both kubegrid rows drive the engine's own code as `apply` does (connections are opened
//! before the clock starts, as `apply` holds them from its facts phase on). The agent is the
//! release build `.ci/setup` makes (/var/cache/kubegrid/agent, or KUBEGRID_AGENT_DIR).
//!
//! Run as root, offline:
//! `cargo bench -p kubegrid-e2e --bench fanout` (KUBEGRID_BIN may point at any kubegrid
//! build; it only runs `lab` commands). KUBEGRID_BENCH_HOSTS and KUBEGRID_BENCH_RATE
//! change the host count (12) and the link rate (200mbit); KUBEGRID_BENCH_ROWS (`p2p,star,scp`
//! by default) picks the rows, each timed against the M/B measured in the same run.

mod common;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Instant,
};

use common::{FirstUse, env_usize, random_blob, run_plans, scp_all, stream_to_host, target};
use kubegrid_e2e::{LabGuard, median};
use kubegrid_engine::{
    agent::Agents,
    distribute::{
        Distribution, Distributor,
        swarm::{self, P2pOptions, SwarmState},
    },
    progress::{Observer, Progress},
    session::{HostSession, LocalBlob},
    ssh::{Connection, SshOptions},
};

const BLOB_DIR: &str = "/var/cache/kubegrid/bench-512m";
const SIZE: u64 = 512 << 20;
const STORE: &str = "/var/lib/kubegrid/store";

/// Records, per host, when its first verified bytes and its stored blob were reported, so
/// `KUBEGRID_BENCH_TRACE=1` can print where a run's time went.
struct Timeline {
    start: Instant,
    hosts: Mutex<BTreeMap<String, Seen>>,
}

/// Seconds from the start to a host's first verified bytes and to its stored blob.
#[derive(Default)]
struct Seen {
    first: Option<f64>,
    stored: Option<f64>,
}

impl Observer for Timeline {
    fn event(&self, p: &Progress) {
        let Progress::Swarm {
            host, stage, bytes, ..
        } = p
        else {
            return;
        };
        let t = self.start.elapsed().as_secs_f64();
        let mut hosts = self.hosts.lock().expect("timeline lock");
        let entry = hosts.entry(host.clone()).or_default();
        if *bytes > 0 && entry.first.is_none() {
            entry.first = Some(t);
        }
        if stage == "stored" {
            entry.stored = Some(t);
        }
    }
}

fn main() {
    let runs = env_usize("KUBEGRID_BENCH_RUNS").unwrap_or(3).max(1);
    let hosts = env_usize("KUBEGRID_BENCH_HOSTS").unwrap_or(12).max(3);
    let rate = std::env::var("KUBEGRID_BENCH_RATE").unwrap_or_else(|_| "200mbit".into());
    let agent_dir = std::env::var_os("KUBEGRID_AGENT_DIR")
        .map_or_else(|| PathBuf::from("/var/cache/kubegrid/agent"), PathBuf::from);
    let agents = Arc::new(Agents::discover(&[agent_dir]).expect("find the agent"));
    let blob = bench_blob();
    let mut lab = LabGuard::reserve();
    lab.bring_up_with(hosts, &["--link-rate", &rate]);
    let gateway = lab.list()["gateway"]
        .as_str()
        .expect("lab gateway")
        .to_string();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    // Installs the agent on every host, so no run includes its upload.
    rt.block_on(run(&lab, hosts, &agents, &blob, Mode::Install));

    let link: Vec<f64> = (0..runs)
        .map(|_| stream_to_host(&lab, &lab.hosts[0], &gateway, SIZE))
        .collect();
    let b = median(link);
    let bound = SIZE as f64 / b;
    println!(
        "link: one TCP stream at --link-rate {rate}: {:.1} MiB/s; M/B = {bound:.2} s",
        b / f64::from(1 << 20)
    );

    if tracing_on() {
        // What every p2p row pays before the swarm starts: the engine hashes the file into
        // its piece manifest.
        let t = Instant::now();
        kubegrid_fanout::PieceManifest::build(
            &blob.path,
            kubegrid_fanout::default_piece_size(SIZE),
        )
        .expect("build the piece manifest");
        println!(
            "piece manifest of the blob built in {:.2}s",
            t.elapsed().as_secs_f64()
        );
    }

    let only = std::env::var("KUBEGRID_BENCH_ROWS").unwrap_or_else(|_| "p2p,star,scp".into());
    let want = |row: &str| only.split(',').any(|r| r.trim() == row);
    let mut rows: Vec<(String, Vec<f64>, Option<f64>)> = Vec::new();
    for n in [3, 6, hosts].into_iter().filter(|_| want("p2p")) {
        let (mut times, mut copies) = (Vec::new(), Vec::new());
        for i in 0..runs {
            clear_hosts(&lab, &blob);
            let (t, c) = rt.block_on(run(&lab, n, &agents, &blob, Mode::P2p));
            println!(
                "  p2p, {n} hosts, run {}: {t:.2}s, seed sent {c:.2} M",
                i + 1
            );
            times.push(t);
            copies.push(c);
        }
        check_stored(&lab, n, &blob);
        rows.push((format!("p2p, {n} hosts"), times, Some(median(copies))));
    }
    for n in [3, hosts].into_iter().filter(|_| want("star")) {
        let (mut times, mut copies) = (Vec::new(), Vec::new());
        for i in 0..runs {
            clear_hosts(&lab, &blob);
            let (t, c) = rt.block_on(run(&lab, n, &agents, &blob, Mode::Star));
            println!("  star (http), {n} hosts, run {}: {t:.2}s", i + 1);
            times.push(t);
            copies.push(c);
        }
        check_stored(&lab, n, &blob);
        rows.push((
            format!("star (http), {n} hosts"),
            times,
            Some(median(copies)),
        ));
    }
    let mut times = Vec::new();
    for i in (0..runs).filter(|_| want("scp")) {
        let t = scp_all(&lab, &blob.path, SIZE);
        println!("  sequential scp, {hosts} hosts, run {}: {t:.2}s", i + 1);
        times.push(t);
    }
    if !times.is_empty() {
        rows.push((
            format!("sequential scp, {hosts} hosts"),
            times,
            Some(hosts as f64),
        ));
    }
    clear_hosts(&lab, &blob);
    print_table(runs, &rate, bound, &rows);
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Install,
    Star,
    P2p,
}

/// Times one distribution of `blob` to the first `n` hosts; returns seconds and the
/// engine's bytes sent as a multiple of the blob.
async fn run(
    lab: &LabGuard,
    n: usize,
    agents: &Agents,
    blob: &LocalBlob,
    mode: Mode,
) -> (f64, f64) {
    let mut sessions = Vec::new();
    for h in &lab.hosts[..n] {
        let conn = Connection::open(&target(lab, h), &FirstUse, &SshOptions::default())
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", h.name));
        let mut s = HostSession::new(conn);
        s.probe(agents)
            .await
            .unwrap_or_else(|e| panic!("probe {}: {e}", h.name));
        sessions.push(Some(s));
    }
    let blobs: Vec<LocalBlob> = if mode == Mode::Install {
        Vec::new()
    } else {
        vec![blob.clone()]
    };
    let started = Instant::now();
    let timeline = Arc::new(Timeline {
        start: started,
        hosts: Mutex::default(),
    });
    let mut distributor = Distributor::default();
    let mut state = SwarmState::default();
    if mode == Mode::P2p {
        let names: Vec<String> = lab.hosts[..n].iter().map(|h| h.name.clone()).collect();
        let wanted = (0..n).map(|i| (i, blobs.clone())).collect();
        swarm::spread(
            &mut state,
            &mut sessions,
            &names,
            wanted,
            P2pOptions::default(),
            "bench",
            timeline.clone(),
        )
        .await;
        trace(&timeline, started.elapsed().as_secs_f64());
        for s in sessions.iter().flatten() {
            assert!(
                !s.lacks(&blob.sha256),
                "{} missed the blob",
                s.connection().target().host
            );
        }
    }
    for s in sessions.iter_mut().flatten() {
        distributor.route(Distribution::Http, s, &blobs).await;
    }
    run_plans(sessions.into_iter().flatten().collect(), &blobs).await;
    let elapsed = started.elapsed().as_secs_f64();
    let sent = match mode {
        Mode::P2p => state.report().map_or(0, |r| r.seed_bytes),
        _ => distributor.server().map_or(0, |s| s.stats().bytes),
    };
    (elapsed, sent as f64 / blob.size as f64)
}

/// With KUBEGRID_BENCH_TRACE=1, prints when each host saw its first verified bytes and
/// stored the blob, and when the swarm ended (seconds from the clock's start).
fn trace(timeline: &Timeline, spread_done: f64) {
    if !tracing_on() {
        return;
    }
    let hosts = timeline.hosts.lock().expect("timeline lock");
    let secs = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.2}"));
    for (host, seen) in hosts.iter() {
        println!(
            "    {host:<10} first bytes {:>6}s  stored {:>6}s",
            secs(seen.first),
            secs(seen.stored)
        );
    }
    println!("    swarm over at {spread_done:.2}s");
}

fn tracing_on() -> bool {
    std::env::var_os("KUBEGRID_BENCH_TRACE").is_some_and(|v| v == "1")
}

/// The random 512 MiB file, generated once; its sha256 is kept beside it.
fn bench_blob() -> LocalBlob {
    random_blob(BLOB_DIR, "blob-512m.bin", SIZE)
}

/// Removes the blob, its partial files and any scp copy from every host.
fn clear_hosts(lab: &LabGuard, blob: &LocalBlob) {
    for h in &lab.hosts {
        lab.ssh_ok(
            h,
            &format!(
                "rm -f {STORE}/{sha} {STORE}/.partial/{sha} {STORE}/.fanout/{sha} /var/tmp/bench-blob",
                sha = blob.sha256
            ),
        );
    }
}

/// Checks with sha256sum on the host that each of the first `n` hosts holds the blob.
fn check_stored(lab: &LabGuard, n: usize, blob: &LocalBlob) {
    for h in &lab.hosts[..n] {
        let sum = lab.ssh_ok(
            h,
            &format!("sha256sum {STORE}/{} | cut -d' ' -f1", blob.sha256),
        );
        assert_eq!(sum, blob.sha256, "{} holds a wrong blob", h.name);
    }
}

fn print_table(runs: usize, rate: &str, bound: f64, rows: &[(String, Vec<f64>, Option<f64>)]) {
    println!(
        "\n{} MiB to lab hosts at --link-rate {rate}, median of {runs} run(s)",
        SIZE >> 20
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>16}",
        "method", "median", "min", "max", "vs M/B", "engine sent (M)"
    );
    println!(
        "{:<28} {:>8.2}s {:>9} {:>9} {:>8.2}x {:>16}",
        "link bound M/B", bound, "-", "-", 1.0, "-"
    );
    for (name, times, copies) in rows {
        let med = median(times.clone());
        let min = times.iter().copied().fold(f64::MAX, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        let sent = copies.map_or("-".to_string(), |c| format!("{c:.2}"));
        println!(
            "{name:<28} {med:>8.2}s {min:>8.2}s {max:>8.2}s {:>8.2}x {sent:>16}",
            med / bound
        );
    }
    println!("target: p2p within 1.5x of M/B (the star is about N x)");
}
