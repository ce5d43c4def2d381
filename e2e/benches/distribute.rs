//! Benchmark: distributing a 1 GiB bundle file to 12 lab hosts.
//!
//! Compared, each as the median of KUBEGRID_BENCH_RUNS runs (default 3):
//! - kubegrid's distribution as `apply` runs it (the engine's `Distributor` and
//!   `HostSession::run_plan`, with a plan that only needs the blob), over HTTP from the
//!   engine's blob server (the default) and pushed over SSH (`--distribution ssh`);
//! - a sequential OpenSSH `scp` of the same file to each host in turn;
//! - the single-link bound: 1 GiB over the measured throughput of one TCP stream from this
//!   machine to one lab host across the lab bridge (the host reads bash's /dev/tcp into
//!   /dev/null).
//!
//! Every host receives the full 1 GiB, so all methods move 12 GiB through the bridge, on the
//! same CPUs as the hosts themselves, and write 12 GiB to the one disk all lab hosts live
//! on. Ratios are against the single-link bound, as the issue states its target (within
//! 1.5x); a second reference, the disk bound, times the 12 hosts writing 1 GiB each at once
//! (synced, as the agent syncs a blob before it enters the store), with no network at all.
//!
//! Run as root, offline:
//! `cargo build --release -p kubegrid -p kubegrid-agent && cargo bench -p kubegrid-e2e --bench distribute`.
//! The random 1 GiB file is generated once into /var/cache/kubegrid/bench-1g.
//! KUBEGRID_BENCH_HOSTS sets the host count (default 12).

use std::{sync::Arc, time::Instant};

mod common;

use common::{
    FirstUse, env_usize, random_blob, run_plans, scp_all, ssh_command, stream_to_host, target,
};
use kubegrid_e2e::{LabGuard, kubegrid_bin, median};
use kubegrid_engine::{
    agent::Agents,
    distribute::{Distribution, Distributor},
    session::{HostSession, LocalBlob},
    ssh::{Connection, SshOptions},
};

const BLOB_DIR: &str = "/var/cache/kubegrid/bench-1g";
const SIZE: u64 = 1 << 30;
const STORE: &str = "/var/lib/kubegrid/store";

fn main() {
    // `cargo bench` passes harness flags such as --bench; this benchmark takes none.
    let runs = env_usize("KUBEGRID_BENCH_RUNS").unwrap_or(3).max(1);
    let hosts = env_usize("KUBEGRID_BENCH_HOSTS").unwrap_or(12).max(1);
    let bin_dir = kubegrid_bin().parent().expect("release dir").to_path_buf();
    let agents =
        Arc::new(Agents::discover(std::slice::from_ref(&bin_dir)).expect("find the agent"));
    assert!(
        agents.all().next().is_some(),
        "no kubegrid-agent in {}; build it: cargo build --release -p kubegrid -p kubegrid-agent",
        bin_dir.display()
    );
    let blob = bench_blob();
    println!(
        "blob: {} ({} bytes, sha256 {})",
        blob.path.display(),
        blob.size,
        &blob.sha256[..16]
    );
    let lab = LabGuard::up(hosts);
    let gateway = lab.list()["gateway"]
        .as_str()
        .expect("lab gateway")
        .to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Installs the agent on every host, so no run includes its upload.
    rt.block_on(engine_run(&lab, &agents, &blob, Distribution::Http, false));

    let mut link = Vec::new();
    for _ in 0..runs {
        link.push(stream_to_host(&lab, &lab.hosts[0], &gateway, SIZE));
    }
    let rate = median(link.clone());
    let bound = SIZE as f64 / rate;
    println!(
        "link: one TCP stream to {}: {:.0} MiB/s (runs: {})",
        lab.hosts[0].name,
        rate / f64::from(1 << 20),
        link.iter()
            .map(|r| format!("{:.0}", r / f64::from(1 << 20)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let mut disk = Vec::new();
    for i in 0..runs {
        let t = disk_bound(&lab);
        println!("  disk bound run {}: {t:.2}s", i + 1);
        disk.push(t);
    }
    rows.push(("disk bound (no network)".to_string(), disk));
    for (name, mode) in [
        ("kubegrid, http (default)", Distribution::Http),
        ("kubegrid, ssh push", Distribution::Ssh),
    ] {
        let mut times = Vec::new();
        for i in 0..runs {
            clear_hosts(&lab, &blob);
            let t = rt.block_on(engine_run(&lab, &agents, &blob, mode, true));
            println!("  {name} run {}: {t:.2}s", i + 1);
            times.push(t);
        }
        check_stored(&lab, &blob);
        rows.push((name.to_string(), times));
    }
    clear_hosts(&lab, &blob);
    let mut times = Vec::new();
    for i in 0..runs {
        let t = scp_all(&lab, &blob.path, SIZE);
        println!("  sequential scp run {}: {t:.2}s", i + 1);
        times.push(t);
        clear_hosts(&lab, &blob);
    }
    rows.push(("sequential scp".to_string(), times));
    print_table(runs, hosts, bound, rate, &rows);
}

/// The random 1 GiB file, generated once; its sha256 is kept beside it.
fn bench_blob() -> LocalBlob {
    random_blob(BLOB_DIR, "blob-1g.bin", SIZE)
}

/// Connects to every host (not timed: `apply` holds its connections from the facts phase
/// on), then times one plan per host that needs only the blob, all hosts at once, as a
/// playbook phase does. With `with_blob` false it runs an empty plan (installs the agent).
async fn engine_run(
    lab: &LabGuard,
    agents: &Agents,
    blob: &LocalBlob,
    mode: Distribution,
    with_blob: bool,
) -> f64 {
    let mut sessions = Vec::new();
    for h in &lab.hosts {
        let conn = Connection::open(&target(lab, h), &FirstUse, &SshOptions::default())
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", h.name));
        let mut s = HostSession::new(conn);
        s.probe(agents)
            .await
            .unwrap_or_else(|e| panic!("probe {}: {e}", h.name));
        sessions.push(s);
    }
    let blobs: Vec<LocalBlob> = if with_blob {
        vec![blob.clone()]
    } else {
        Vec::new()
    };
    let started = Instant::now();
    let mut distributor = Distributor::default();
    for s in &mut sessions {
        distributor.route(mode, s, &blobs).await;
    }
    run_plans(sessions, &blobs).await;
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(server) = distributor.server() {
        let stats = server.stats();
        assert_eq!(stats.bytes, blob.size * lab.hosts.len() as u64, "{stats:?}");
    }
    elapsed
}

/// Removes the blob (and any partial file or scp copy) from every host.
fn clear_hosts(lab: &LabGuard, blob: &LocalBlob) {
    for h in &lab.hosts {
        lab.ssh_ok(
            h,
            &format!(
                "rm -f {STORE}/{sha} {STORE}/.partial/{sha} /var/tmp/bench-blob",
                sha = blob.sha256
            ),
        );
    }
}

/// Checks, over plain ssh, that every host's store holds the blob with the right sha256.
fn check_stored(lab: &LabGuard, blob: &LocalBlob) {
    for h in &lab.hosts {
        let sum = lab.ssh_ok(
            h,
            &format!("sha256sum {STORE}/{} | cut -d' ' -f1", blob.sha256),
        );
        assert_eq!(sum, blob.sha256, "{} holds a wrong blob", h.name);
    }
}

/// Every host writes 1 GiB of random bytes (a 64 MiB random chunk, made beforehand, 16
/// times) into its store's filesystem and syncs it, all hosts at once; the time until the
/// last one is done.
fn disk_bound(lab: &LabGuard) -> f64 {
    let chunk = "/var/tmp/bench-chunk";
    for h in &lab.hosts {
        lab.ssh_ok(
            h,
            &format!("test -s {chunk} || head -c 64M /dev/urandom > {chunk}"),
        );
    }
    let write = format!(
        "mkdir -p {STORE} && for i in $(seq 16); do cat {chunk}; done | dd of={STORE}/bench-dd bs=1M iflag=fullblock conv=fsync status=none"
    );
    let started = Instant::now();
    let writers: Vec<_> = lab
        .hosts
        .iter()
        .map(|h| {
            ssh_command(lab, h)
                .arg(&write)
                .spawn()
                .expect("start a writer")
        })
        .collect();
    for mut w in writers {
        assert!(
            w.wait().expect("writer exit").success(),
            "a disk writer failed"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    for h in &lab.hosts {
        lab.ssh_ok(h, &format!("rm -f {STORE}/bench-dd"));
    }
    elapsed
}

fn print_table(runs: usize, hosts: usize, bound: f64, rate: f64, rows: &[(String, Vec<f64>)]) {
    let gib = SIZE as f64 / f64::from(1 << 30);
    println!(
        "\ndistributing {gib:.2} GiB to {hosts} lab hosts, median of {runs} run(s); bound = {gib:.2} GiB / {:.0} MiB/s (one TCP stream over the bridge)",
        rate / f64::from(1 << 20)
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>15} {:>9}",
        "method", "median", "min", "max", "aggregate", "vs bound"
    );
    println!(
        "{:<26} {:>8.2}s {:>9} {:>9} {:>10.0} MiB/s {:>8.2}x",
        "single-link bound",
        bound,
        "-",
        "-",
        rate / f64::from(1 << 20),
        1.0
    );
    for (name, times) in rows {
        let med = median(times.clone());
        let min = times.iter().copied().fold(f64::MAX, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        let aggregate = SIZE as f64 * hosts as f64 / med / f64::from(1 << 20);
        println!(
            "{name:<26} {med:>8.2}s {min:>8.2}s {max:>8.2}s {aggregate:>10.0} MiB/s {:>8.2}x",
            med / bound
        );
    }
    println!("target: within 1.5x of the bound");
}
