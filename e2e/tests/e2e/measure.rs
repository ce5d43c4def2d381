//! Measurements the lab issue asks to see in every test run: cold base build, warm `up`
//! for 3 and 12 hosts, and memory per idle host. Single runs, printed as a table; the
//! benchmark (`cargo bench -p kubegrid-e2e`) takes medians. Runs alone (see
//! .config/nextest.toml) so other tests do not share the two cores with it.

use std::time::Instant;

use kubegrid_e2e::{LabGuard, describe};

/// Sums the proportional set size of every process on the host except the measuring ssh
/// session itself (its shell, its sshd child and the privileged sshd parent).
const IDLE_PSS_KIB: &str = r#"skip=" $$ $PPID $(awk '{print $4}' /proc/$PPID/stat) "; total=0
for d in /proc/[0-9]*; do p=${d#/proc/}; case "$skip" in *" $p "*) continue;; esac
  v=$(awk '/^Pss:/{print $2}' $d/smaps_rollup 2>/dev/null); total=$((total + ${v:-0})); done; echo $total"#;

#[test]
fn measure_lab_build_boot_and_memory() {
    let mut rows: Vec<(String, String)> = Vec::new();

    if std::env::var_os("KUBEGRID_E2E_SKIP_COLD").is_some() {
        rows.push((
            "base rootfs build, cold".into(),
            "skipped (KUBEGRID_E2E_SKIP_COLD)".into(),
        ));
    } else {
        let mut lab = LabGuard::reserve();
        let cold_cache = std::path::PathBuf::from(format!(
            "/var/tmp/kubegrid-e2e/cold-cache-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&cold_cache);
        lab.cache_dir = cold_cache.clone();
        let started = Instant::now();
        let out = lab.bring_up(1);
        let total = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let build = stderr
            .lines()
            .find_map(|l| {
                l.split(" built in ")
                    .nth(1)?
                    .trim_end_matches('s')
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no build time in lab up output:\n{}", describe(&out)));
        rows.push((
            "base rootfs build, cold (debootstrap)".into(),
            format!("{build:.1} s"),
        ));
        rows.push((
            "lab up --hosts 1, cold cache (build + boot)".into(),
            format!("{total:.1} s"),
        ));
        drop(lab);
        std::fs::remove_dir_all(&cold_cache).expect("remove cold cache");
    }

    for n in [3, 12] {
        let mut lab = LabGuard::reserve();
        let started = Instant::now();
        lab.bring_up(n);
        let secs = started.elapsed().as_secs_f64();
        rows.push((
            format!("lab up --hosts {n}, warm cache"),
            format!("{secs:.2} s"),
        ));
        if n == 12 {
            let pss: Vec<f64> = lab
                .hosts
                .iter()
                .map(|h| {
                    lab.ssh_ok(h, IDLE_PSS_KIB)
                        .parse::<f64>()
                        .expect("PSS in KiB")
                        / 1024.0
                })
                .collect();
            let mean = pss.iter().sum::<f64>() / pss.len() as f64;
            let max = pss.iter().copied().fold(0.0, f64::max);
            rows.push((
                "memory per idle host (PSS, mean of 12)".into(),
                format!("{mean:.1} MiB"),
            ));
            rows.push((
                "memory per idle host (PSS, max of 12)".into(),
                format!("{max:.1} MiB"),
            ));
            assert!(secs < 120.0, "12 hosts took {secs:.1}s");
        }
    }

    println!(
        "\nkubegrid lab measurements (single run; see `cargo bench -p kubegrid-e2e` for medians)"
    );
    println!("{:<48} value", "what");
    for (what, value) in &rows {
        println!("{what:<48} {value}");
    }
}
