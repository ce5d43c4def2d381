//! Benchmark: `kubegrid lab up` and `lab down` with a warm base cache.
//!
//! Runs each host count several times and prints medians. The reference, measured in the
//! same run, is bringing up a single host: the ratio shows what each extra host costs when
//! hosts boot in parallel. The target is 12 hosts in under 30 s on a 2-core machine.
//!
//! Run as root: `cargo build --release -p kubegrid && cargo bench -p kubegrid-e2e`
//! (KUBEGRID_BENCH_RUNS sets the run count, default 5).

use std::time::Instant;

use kubegrid_e2e::{LabGuard, median};

const TARGET_12_HOSTS_S: f64 = 30.0;

fn main() {
    // `cargo bench` passes harness flags such as --bench; this benchmark takes none.
    let runs: usize = std::env::var("KUBEGRID_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // Warm the cache first so no run includes the base build.
    drop(LabGuard::up(1));

    let mut table = Vec::new();
    for hosts in [1usize, 3, 12] {
        let (mut ups, mut downs) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let mut lab = LabGuard::reserve();
            let t = Instant::now();
            lab.bring_up(hosts);
            ups.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            drop(lab);
            downs.push(t.elapsed().as_secs_f64());
        }
        let min = ups.iter().copied().fold(f64::MAX, f64::min);
        let max = ups.iter().copied().fold(0.0, f64::max);
        table.push((hosts, median(ups), min, max, median(downs)));
    }

    let reference = table[0].1;
    println!(
        "\nlab up / down, warm cache, {runs} runs each (medians; reference = 1 host in this run)"
    );
    println!(
        "{:>5} {:>11} {:>9} {:>9} {:>12} {:>13} {:>11}",
        "hosts", "up median", "up min", "up max", "vs 1 host", "down median", "target"
    );
    for (hosts, up, min, max, down) in &table {
        let target = if *hosts == 12 {
            format!(
                "< {TARGET_12_HOSTS_S:.0} s {}",
                if *up < TARGET_12_HOSTS_S {
                    "met"
                } else {
                    "MISSED"
                }
            )
        } else {
            "-".into()
        };
        println!(
            "{hosts:>5} {:>10.2}s {:>8.2}s {:>8.2}s {:>11.2}x {:>12.2}s {target:>11}",
            up,
            min,
            max,
            up / reference,
            down
        );
    }
}
