//! Benchmark: `kubegrid upgrade apply` on lab hosts, per Node and by phase.
//!
//! Each row is a lab size: 5 hosts (three control-plane/etcd members with external etcd, two
//! workers) and 12 hosts (the same three members, nine workers). Each run brings the lab up,
//! installs Kubernetes 1.31.4 with containerd 1.6 and etcd 3.4 (not timed), serves the
//! Kubernetes API from the fake API server (a TEST STAND-IN) on the lab bridge, starts an
//! etcd writer (a sequenced put every 50 ms, etcdctl from the bundle) and times
//! `kubegrid upgrade apply` to Kubernetes 1.33.4, containerd 2.1 and etcd 3.5. kubeadm and
//! the kubelet are the e2e bundle's stand-ins: the kubeadm steps measure kubegrid's work
//! around them (transfers, agent runs, the stand-in's checks), not real kubeadm's.
//!
//! Per run it reads from the JSON report each step's parts per Node (drain, the playbook
//! phases, waiting for Ready, uncordon), and from the fake API the windows during which each
//! worker was cordoned; the etcd writer gives the longest time between two acknowledged
//! writes and checks that none was lost. The table shows medians over the runs: the whole
//! upgrade, per Node, each part's median per Node, the longest write gap and the total time
//! workers spent cordoned; the last column is the 12-host row over the 5-host row, measured
//! in the same invocation.
//!
//! Run as root (lab hosts), after `.ci/setup` built the e2e bundle:
//! `cargo build -p kubegrid && cargo bench -p kubegrid-e2e --bench upgrade`.
//! KUBEGRID_BENCH_RUNS sets the runs per row (default 3), KUBEGRID_BENCH_SIZES the lab sizes
//! (default "5,12").

#[expect(
    dead_code,
    reason = "shared with the upgrade e2e tests, which use the parts this benchmark does not"
)]
#[path = "../tests/e2e/upgrade/bed.rs"]
mod bed;
#[expect(
    dead_code,
    reason = "shared with the certificates tests, which read their client files from a host"
)]
#[path = "../tests/e2e/upgrade/etcd.rs"]
mod etcd;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, UNIX_EPOCH},
};

use bed::{Bed, NEW, OLD, json};
use kubegrid_e2e::{describe, median};
use serde_json::Value;

/// One run's numbers.
struct Run {
    wall: f64,
    nodes: usize,
    /// Part name -> per-Node durations (s), one per Node that ran it.
    parts: BTreeMap<String, Vec<f64>>,
    longest_gap: f64,
    cordoned: f64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("KUBEGRID_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let sizes: Vec<usize> = std::env::var("KUBEGRID_BENCH_SIZES")
        .unwrap_or_else(|_| "5,12".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows: Vec<(usize, Vec<Run>)> = Vec::new();
    for &n in &sizes {
        let mut done = Vec::new();
        for i in 0..runs {
            let r = run(n);
            eprintln!(
                "hosts {n} run {}: upgrade {:.1}s, longest etcd write gap {:.0} ms, workers cordoned {:.1}s in total",
                i + 1,
                r.wall,
                r.longest_gap * 1000.0,
                r.cordoned
            );
            done.push(r);
        }
        rows.push((n, done));
    }
    print_table(&rows);
}

fn run(n: usize) -> Run {
    let mut bed = Bed::up_n(n);
    let old = bed.spec("bench-old", OLD, None);
    bed.install(&old);
    let new = bed.spec("bench-new", NEW, None);
    let ctl = etcd::Etcdctl::new(&bed.ca("etcd-ca"), &bed.lab.state_dir);
    let watch = etcd::Watch::start(&ctl, bed.members());
    let started = Instant::now();
    let out = bed.upgrade("apply", &new, &[]);
    let wall = started.elapsed().as_secs_f64();
    let seen = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let present = ctl.written(&bed.members());
    let lost = seen.acked.iter().filter(|k| !present.contains(k)).count();
    assert_eq!(lost, 0, "acknowledged etcd writes lost");
    let report = json(&out);
    let mut parts: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut per_node: BTreeMap<(String, String), f64> = BTreeMap::new();
    for step in report["upgrade"]["steps"].as_array().expect("steps") {
        for p in step["parts"].as_array().expect("parts") {
            let key = (
                p["node"].as_str().unwrap().to_string(),
                p["part"].as_str().unwrap().to_string(),
            );
            *per_node.entry(key).or_default() += p["durationMs"].as_f64().unwrap() / 1000.0;
        }
    }
    for ((_, part), secs) in per_node {
        parts.entry(part).or_default().push(secs);
    }
    Run {
        wall,
        nodes: n,
        parts,
        longest_gap: seen.longest_gap.as_secs_f64(),
        cordoned: cordoned(&bed),
    }
}

/// Seconds the workers spent cordoned, summed over the workers.
fn cordoned(bed: &Bed) -> f64 {
    let state = bed.fake.state();
    let mut total = 0.0;
    for w in &bed.workers {
        let mut since: Option<Duration> = None;
        for p in state.node_patches.iter().filter(|p| &p.node == w) {
            let at = p.at.duration_since(UNIX_EPOCH).unwrap_or_default();
            match &p.body["spec"]["unschedulable"] {
                Value::Bool(true) => since = since.or(Some(at)),
                Value::Null if p.body["spec"].get("unschedulable").is_some() => {
                    if let Some(from) = since.take() {
                        total += (at - from).as_secs_f64();
                    }
                }
                _ => {}
            }
        }
    }
    total
}

fn print_table(rows: &[(usize, Vec<Run>)]) {
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|(_, runs)| runs.iter().flat_map(|r| r.parts.keys().cloned()))
        .collect();
    names.sort();
    names.dedup();
    let stat = |runs: &[Run], f: &dyn Fn(&Run) -> Option<f64>| -> Option<f64> {
        let xs: Vec<f64> = runs.iter().filter_map(f).collect();
        (!xs.is_empty()).then(|| median(xs))
    };
    let mut lines: Vec<(String, Vec<Option<f64>>)> = vec![
        (
            "upgrade apply, whole (s)".into(),
            rows.iter()
                .map(|(_, r)| stat(r, &|x| Some(x.wall)))
                .collect(),
        ),
        (
            "per Node (s)".into(),
            rows.iter()
                .map(|(_, r)| stat(r, &|x| Some(x.wall / x.nodes as f64)))
                .collect(),
        ),
    ];
    for name in &names {
        lines.push((
            format!("  {name}, median per Node (s)"),
            rows.iter()
                .map(|(_, r)| stat(r, &|x| x.parts.get(name).map(|v| median(v.clone()))))
                .collect(),
        ));
    }
    lines.push((
        "longest etcd write gap (ms)".into(),
        rows.iter()
            .map(|(_, r)| stat(r, &|x| Some(x.longest_gap * 1000.0)))
            .collect(),
    ));
    lines.push((
        "workers cordoned, total (s)".into(),
        rows.iter()
            .map(|(_, r)| stat(r, &|x| Some(x.cordoned)))
            .collect(),
    ));
    let runs = rows.first().map_or(0, |(_, r)| r.len());
    println!(
        "\nkubegrid upgrade apply, 1.31.4 -> 1.33.4, etcd 3.4 -> 3.5, containerd 1.6 -> 2.1 (median of {runs} runs)"
    );
    print!("{:<44}", "");
    for (n, _) in rows {
        print!("{:>12}", format!("{n} hosts"));
    }
    if rows.len() == 2 {
        print!("{:>10}", "ratio");
    }
    println!();
    for (label, values) in lines {
        print!("{label:<44}");
        for v in &values {
            match v {
                Some(v) => print!("{v:>12.2}"),
                None => print!("{:>12}", "-"),
            }
        }
        if let [Some(a), Some(b)] = values[..] {
            print!("{:>10.2}", b / a);
        }
        println!();
    }
}
