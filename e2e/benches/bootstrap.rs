//! Benchmark: a 3-control-plane + 3-worker `kubegrid apply` on fresh lab hosts, phase by
//! phase, with how much of each phase is the hosts' own work (the slowest host's task time,
//! as the agent measured it) and how much is SSH, agent start-up and engine overhead (the
//! rest of the phase's wall time).
//!
//! kubeadm, kubelet, kubectl and crictl are the e2e bundle's STAND-INS (no registry here
//! provides Kubernetes 1.3x binaries), so the control-plane phases time kubegrid's own work
//! around kubeadm, not kubeadm's; etcd, containerd and runc are real.
//!
//! Run as root: `cargo build --release -p kubegrid -p kubegrid-agent && cargo bench -p
//! kubegrid-e2e --bench bootstrap` (KUBEGRID_BENCH_RUNS, default 3).

use std::{collections::BTreeMap, time::Instant};

use kubegrid_e2e::{LabGuard, describe, median};
use serde_json::Value;

fn main() {
    let runs: usize = std::env::var("KUBEGRID_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    eprintln!(
        "NOTE: kubeadm/kubelet/kubectl/crictl are STAND-INS; etcd, containerd and runc are real"
    );
    drop(LabGuard::up(1));
    let mut wall: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut work: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..runs {
        let lab = LabGuard::up(6);
        let spec = lab.spec();
        let t = Instant::now();
        let out = lab.apply_json(&spec, &["--skip-check", "cluster-api"]);
        totals.push(t.elapsed().as_secs_f64());
        assert!(out.status.success(), "{}", describe(&out));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        let mut host_work: BTreeMap<String, f64> = BTreeMap::new();
        for h in report["hosts"].as_array().unwrap() {
            let mut per_phase: BTreeMap<String, f64> = BTreeMap::new();
            for task in h["tasks"].as_array().unwrap() {
                *per_phase
                    .entry(task["phase"].as_str().unwrap().to_string())
                    .or_default() += task["durationMs"].as_f64().unwrap() / 1000.0;
            }
            for (phase, s) in per_phase {
                let slot = host_work.entry(phase).or_default();
                *slot = slot.max(s);
            }
        }
        for p in report["phases"].as_array().unwrap() {
            let name = p["phase"].as_str().unwrap().to_string();
            if !order.contains(&name) {
                order.push(name.clone());
            }
            wall.entry(name.clone())
                .or_default()
                .push(p["wallMs"].as_f64().unwrap() / 1000.0);
            work.entry(name.clone())
                .or_default()
                .push(host_work.get(&name).copied().unwrap_or(0.0));
        }
    }
    println!("\n3 control-plane/etcd + 3 worker apply on fresh lab hosts, {runs} runs (medians)");
    println!(
        "{:<22} {:>9} {:>11} {:>10} {:>9}",
        "phase", "wall s", "host work s", "overhead s", "overhead"
    );
    let (mut sum_wall, mut sum_work) = (0.0, 0.0);
    for name in &order {
        let w = median(wall[name].clone());
        let k = median(work[name].clone());
        sum_wall += w;
        sum_work += k;
        println!(
            "{name:<22} {w:>9.2} {k:>11.2} {:>10.2} {:>8.0}%",
            w - k,
            if w > 0.0 { (w - k) / w * 100.0 } else { 0.0 }
        );
    }
    println!(
        "{:<22} {sum_wall:>9.2} {sum_work:>11.2} {:>10.2} {:>8.0}%",
        "sum of phases",
        sum_wall - sum_work,
        (sum_wall - sum_work) / sum_wall * 100.0
    );
    println!(
        "{:<22} {:>9.2}   (process start to exit, incl. validation, preflight and PKI)",
        "whole apply",
        median(totals)
    );
}
