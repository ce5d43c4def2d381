//! Benchmark: `kubegrid certs check`, `certs renew` and `certs rotate-ca --ca etcd` on lab
//! hosts, with the longest etcd write gap during each.
//!
//! Each row group is a lab size: 3 hosts (lab-1 the control plane and an etcd member, lab-2
//! and lab-3 etcd members) and 12 hosts (the same three, nine workers). Per size the lab is
//! brought up and installed once (not timed); then each run times `certs check`, `certs renew`
//! and `certs rotate-ca --ca etcd` in turn while an etcd writer puts a sequenced key every
//! 50 ms with the health-check client files kubegrid rewrites on lab-2 (etcdctl from the
//! bundle), and checks that no acknowledged write was lost. etcd is real; kubeadm, the kubelet
//! and the API server on lab-1 are the e2e bundle's STAND-INS, so the control-plane restarts
//! measure kubegrid's work around them, not a real API server's start.
//!
//! The table shows medians over the runs; the last column is the 12-host value over the
//! 3-host value, measured in the same invocation.
//!
//! Run as root (lab hosts), after `.ci/setup` built the e2e bundle:
//! `cargo build --release -p kubegrid && cargo bench -p kubegrid-e2e --bench certs` (the
//! bench profile runs the release kubegrid beside it; `KUBEGRID_BIN` names another, e.g. the
//! debug build the README's numbers were measured with).
//! KUBEGRID_BENCH_RUNS sets the runs per size (default 3), KUBEGRID_BENCH_SIZES the lab sizes
//! (default "3,12").

#[expect(
    dead_code,
    reason = "shared with the certificates e2e tests, which use the parts this benchmark does not"
)]
#[path = "../tests/e2e/certs/bed.rs"]
mod bed;
#[expect(
    dead_code,
    reason = "shared with the upgrade e2e tests, which use the parts this benchmark does not"
)]
#[path = "../tests/e2e/upgrade/etcd.rs"]
mod etcd;

use std::time::Instant;

use bed::Bed;
use kubegrid_e2e::{describe, median};

/// Per lab size, per step: (wall seconds, longest write gap in ms) of each run.
type Rows = Vec<(usize, Vec<Vec<(f64, f64)>>)>;

/// The commands timed, in the order each run runs them.
const STEPS: [(&str, &[&str]); 3] = [
    ("check", &[]),
    ("renew", &[]),
    ("rotate-ca", &["--ca", "etcd"]),
];

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("KUBEGRID_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let sizes: Vec<usize> = std::env::var("KUBEGRID_BENCH_SIZES")
        .unwrap_or_else(|_| "3,12".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows: Rows = Vec::new();
    for &n in &sizes {
        let bed = Bed::up_n(n);
        let ctl = etcd::Etcdctl::from_files(
            &bed.host_file("lab-2", "/etc/etcd/pki/ca.crt"),
            &bed.host_file("lab-2", "/etc/etcd/pki/healthcheck-client.crt"),
            &bed.host_file("lab-2", "/etc/etcd/pki/healthcheck-client.key"),
        );
        let mut per_step = vec![Vec::new(); STEPS.len()];
        for run in 0..runs {
            for (s, (verb, extra)) in STEPS.iter().enumerate() {
                let watch = etcd::Watch::start(&ctl, bed.members());
                let started = Instant::now();
                let out = bed.certs(verb, extra);
                let wall = started.elapsed().as_secs_f64();
                let seen = watch.stop();
                assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
                let present = ctl.written(&bed.members());
                let lost = seen.acked.iter().filter(|k| !present.contains(k)).count();
                assert_eq!(lost, 0, "acknowledged etcd writes lost during certs {verb}");
                let gap = seen.longest_gap.as_secs_f64() * 1000.0;
                eprintln!(
                    "hosts {n} run {}: certs {verb} {wall:.1}s, longest etcd write gap {gap:.0} ms, {} puts acknowledged",
                    run + 1,
                    seen.acked.len()
                );
                per_step[s].push((wall, gap));
            }
        }
        rows.push((n, per_step));
    }
    print_table(&rows, runs);
}

fn print_table(rows: &Rows, runs: usize) {
    println!("\nkubegrid certs on lab hosts, external etcd on 3 members (median of {runs} runs)");
    print!("{:<40}", "");
    for (n, _) in rows {
        print!("{:>12}", format!("{n} hosts"));
    }
    if rows.len() == 2 {
        print!("{:>10}", "ratio");
    }
    println!();
    for (s, (verb, _)) in STEPS.iter().enumerate() {
        for (label, pick) in [
            (format!("certs {verb}, wall (s)"), 0usize),
            ("  longest etcd write gap (ms)".to_string(), 1),
        ] {
            let values: Vec<f64> = rows
                .iter()
                .map(|(_, steps)| {
                    median(
                        steps[s]
                            .iter()
                            .map(|(w, g)| if pick == 0 { *w } else { *g })
                            .collect(),
                    )
                })
                .collect();
            print!("{label:<40}");
            for v in &values {
                print!("{v:>12.1}");
            }
            if let [a, b] = values[..]
                && a > 0.0
            {
                print!("{:>10.2}", b / a);
            }
            println!();
        }
    }
}
