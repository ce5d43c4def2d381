//! Benchmark: `kubegrid apply` against ansible-core running the equivalent playbook.
//!
//! Each row is an install path and a host count: `archive` (the default: containerd from
//! upstream's release archive, runc as upstream's binary; e2e/benches/ansible/install.yaml)
//! or `packages` (`containerRuntime.source: packages`: the bundle's .debs;
//! install-packages.yaml). Each sample brings up a fresh lab of that size per tool (not
//! timed), then times a full `kubegrid apply` and its no-op re-apply on one, and
//! `ansible-playbook` and its no-op re-run on the other. The order of the two tools
//! alternates between samples. Every host pair is then compared over plain ssh (file
//! contents, modes and sha256s, package versions, service state, live sysctls), so both tools
//! provably did the same work. Medians over the samples and the ratio Ansible / kubegrid are
//! printed as a table, then the full runs' per-phase split (kubegrid's report; Ansible's from
//! callback_plugins/phase_times.py); the issue's targets, on 12 hosts, are a full apply at
//! least 5x and a no-op re-apply at least 10x faster than Ansible.
//!
//! Run as root, offline:
//! `e2e/bench-setup.sh` (once: ansible-core into a venv, the only step that downloads),
//! `offline-bundle/dev-bundle.sh /var/cache/kubegrid/bundle-dev` (once),
//! `cargo build --release -p kubegrid -p kubegrid-agent && cargo bench -p kubegrid-e2e --bench apply_vs_ansible`.
//! KUBEGRID_BENCH_RUNS sets the samples per row (default 3), KUBEGRID_BENCH_ROWS the rows
//! (default "archive:3,archive:12,packages:12"), ANSIBLE_VENV the venv (as bench-setup.sh).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Instant,
};

use kubegrid_e2e::{LabGuard, bundle_dir, describe, kubegrid_bin, median};
use serde_json::Value;

const TARGET_FULL: f64 = 5.0;
const TARGET_NOOP: f64 = 10.0;
/// Host count the targets apply to.
const TARGET_HOSTS: usize = 12;
const DEFAULT_ROWS: &str = "archive:3,archive:12,packages:12";
const DEFAULT_VENV: &str = "/var/cache/kubegrid/ansible-venv";

/// What each host must look like the same after either tool: the files both write (with
/// mode and owner), the release binaries and unit (mode, owner, sha256), the packages, the
/// service, the live sysctls and swap.
const HOST_STATE: &str = r#"for f in /etc/containerd/config.toml /etc/crictl.yaml /etc/sysctl.d/99-kubegrid.conf /etc/modules-load.d/kubegrid.conf /etc/fstab; do
  echo "== $f $(stat -c '%a %U:%G' "$f")"; cat "$f"
done
echo "== release files"; for f in /usr/local/bin/* /usr/local/sbin/* /etc/systemd/system/containerd.service; do
  if [ -f "$f" ]; then echo "$(stat -c '%a %U:%G' "$f") $(sha256sum "$f")"; fi
done
echo "== packages"; dpkg-query -W -f '${db:Status-Abbrev}${Package} ${Version}\n' containerd runc
echo "== containerd.service"; systemctl is-enabled containerd.service; systemctl is-active containerd.service
echo "== sysctl"; sysctl net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
echo "== swap"; tail -n +2 /proc/swaps"#;

/// How the container runtime is installed: the spec's `containerRuntime.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstallPath {
    /// Upstream's release archive and binary (kubegrid's default).
    Archive,
    /// The bundle's .debs.
    Packages,
}

impl InstallPath {
    fn name(self) -> &'static str {
        match self {
            InstallPath::Archive => "archive",
            InstallPath::Packages => "packages",
        }
    }

    /// The containerd line the lab's bundle carries for this path: sid's 2.1 as a release
    /// archive, bookworm's 1.6 as a .deb.
    fn containerd_line(self) -> &'static str {
        match self {
            InstallPath::Archive => "2.1",
            InstallPath::Packages => "1.6",
        }
    }

    fn playbook(self) -> &'static str {
        match self {
            InstallPath::Archive => "install.yaml",
            InstallPath::Packages => "install-packages.yaml",
        }
    }
}

/// One row of the table: an install path on a number of hosts.
#[derive(Debug, Clone, Copy)]
struct Row {
    path: InstallPath,
    hosts: usize,
}

impl Row {
    fn parse_all(text: &str) -> Vec<Row> {
        fn bad(r: &str) -> ! {
            panic!("KUBEGRID_BENCH_ROWS: {r:?} is not PATH:HOSTS, e.g. archive:12 or packages:3")
        }
        text.split(',')
            .map(|r| {
                let (path, hosts) = r.trim().split_once(':').unwrap_or_else(|| bad(r));
                let path = match path {
                    "archive" => InstallPath::Archive,
                    "packages" => InstallPath::Packages,
                    _ => bad(r),
                };
                Row {
                    path,
                    hosts: hosts.parse().unwrap_or_else(|_| bad(r)),
                }
            })
            .collect()
    }
}

/// Timings of one sample, in seconds, with the full runs' per-phase split.
#[derive(Debug, Clone)]
struct Sample {
    kubegrid_full: f64,
    kubegrid_noop: f64,
    ansible_full: f64,
    ansible_noop: f64,
    kubegrid_phases: BTreeMap<String, f64>,
    ansible_phases: BTreeMap<String, f64>,
}

/// The ansible-core install the benchmark compares against.
struct Ansible {
    playbook_bin: PathBuf,
    version: String,
    dir: PathBuf,
}

fn main() {
    // `cargo bench` passes harness flags such as --bench; this benchmark takes none.
    let runs: usize = env_parse("KUBEGRID_BENCH_RUNS").unwrap_or(3);
    let rows = Row::parse_all(
        &std::env::var("KUBEGRID_BENCH_ROWS").unwrap_or_else(|_| DEFAULT_ROWS.to_string()),
    );
    let ansible = Ansible::find();
    require_release_binaries();
    let bundle = bundle_dir();

    println!(
        "ansible: {} ({})",
        ansible.version,
        ansible.playbook_bin.display()
    );
    println!("ansible.cfg (forks = hosts in the run, paths per lab):");
    for line in ansible.config_template().lines() {
        if !line.trim_start().starts_with('#') && !line.trim().is_empty() {
            println!("    {line}");
        }
    }
    println!("kubegrid: {}", kubegrid_bin().display());
    println!("bundle: {}\n", bundle.display());

    // Warm the lab's base cache so no sample waits for a rootfs build.
    drop(LabGuard::up(1));

    let mut table = Vec::new();
    for &row in &rows {
        let mut samples = Vec::new();
        for i in 0..runs {
            let s = sample(row, i, &ansible, &bundle);
            println!(
                "sample {:>8} {:>2} hosts #{}: kubegrid full {:>6.2}s no-op {:>6.2}s | ansible full {:>6.2}s no-op {:>6.2}s",
                row.path.name(),
                row.hosts,
                i + 1,
                s.kubegrid_full,
                s.kubegrid_noop,
                s.ansible_full,
                s.ansible_noop
            );
            samples.push(s);
        }
        table.push((row, samples));
    }
    print_table(runs, &table);
}

fn env_parse(name: &str) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
    )
}

/// The kubegrid and kubegrid-agent binaries under test must be the optimised ones: timing a
/// debug build would understate kubegrid.
fn require_release_binaries() {
    let bin = kubegrid_bin();
    let dir = bin.parent().expect("kubegrid binary has a folder");
    if std::env::var_os("KUBEGRID_BIN").is_none() && dir.file_name().is_none_or(|n| n != "release")
    {
        eprintln!(
            "apply_vs_ansible: {} is not a release build; run `cargo build --release -p kubegrid -p kubegrid-agent` and `cargo bench`",
            bin.display()
        );
        std::process::exit(2);
    }
    let agent = dir.join("kubegrid-agent");
    if !agent.is_file() && std::env::var_os("KUBEGRID_AGENT_DIR").is_none() {
        eprintln!(
            "apply_vs_ansible: no kubegrid-agent beside {}; run `cargo build --release -p kubegrid -p kubegrid-agent`",
            bin.display()
        );
        std::process::exit(2);
    }
}

impl Ansible {
    /// ansible-playbook from the venv e2e/bench-setup.sh makes; exits with a hint when it
    /// is missing, since the benchmark itself never downloads anything.
    fn find() -> Ansible {
        let venv = std::env::var_os("ANSIBLE_VENV")
            .map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from);
        let playbook_bin = venv.join("bin/ansible-playbook");
        let version = Command::new(&playbook_bin)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            });
        let Some(version) = version else {
            eprintln!(
                "apply_vs_ansible: {} is missing or does not run; install ansible-core with e2e/bench-setup.sh (it needs PyPI; the benchmark itself stays offline)",
                playbook_bin.display()
            );
            std::process::exit(2);
        };
        Ansible {
            playbook_bin,
            version,
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ansible"),
        }
    }

    fn config_template(&self) -> String {
        read(&self.dir.join("ansible.cfg.in"))
    }

    /// Writes ansible.cfg and the inventory for `lab` into its state directory (removed with
    /// the lab) and returns that work directory.
    fn prepare(&self, lab: &LabGuard) -> PathBuf {
        let work = lab.state_dir.join("ansible");
        fs::create_dir_all(&work).expect("create ansible work dir");
        let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        let cfg = self
            .config_template()
            .replace("@WORK_DIR@", &path(&work))
            .replace("@FORKS@", &lab.hosts.len().to_string())
            .replace("@SSH_KEY@", &path(&lab.key))
            .replace(
                "@KNOWN_HOSTS@",
                &path(&lab.state_dir.join("ssh/known_hosts")),
            );
        assert!(
            !cfg.contains('@'),
            "ansible.cfg.in has an unknown placeholder:\n{cfg}"
        );
        fs::write(work.join("ansible.cfg"), cfg).expect("write ansible.cfg");
        let hosts: Vec<String> = lab
            .hosts
            .iter()
            .map(|h| format!("{} ansible_host={}", h.name, h.address))
            .collect();
        let inventory =
            read(&self.dir.join("inventory.ini.in")).replace("@HOSTS@", &hosts.join("\n"));
        fs::write(work.join("inventory.ini"), inventory).expect("write inventory.ini");
        work
    }

    /// Runs the playbook for `path` once, logs to `work/<name>.log` and returns the seconds
    /// it took, the total of `changed=` over the recap and the per-phase split.
    fn play(
        &self,
        work: &Path,
        bundle: &Path,
        path: InstallPath,
        name: &str,
    ) -> (f64, u64, BTreeMap<String, f64>) {
        let phases_file = work.join(format!("{name}.phases.json"));
        let t = Instant::now();
        let out = Command::new(&self.playbook_bin)
            .arg(self.dir.join(path.playbook()))
            .arg("-e")
            .arg(format!("bundle_dir={}", bundle.display()))
            .arg("-e")
            .arg(format!("containerd_line={}", path.containerd_line()))
            .env("KUBEGRID_BENCH_PHASES", &phases_file)
            .env("ANSIBLE_CONFIG", work.join("ansible.cfg"))
            .env("ANSIBLE_HOME", work.join("home"))
            .env("ANSIBLE_NOCOLOR", "1")
            .current_dir(work)
            .stdin(Stdio::null())
            .output()
            .expect("run ansible-playbook");
        let secs = t.elapsed().as_secs_f64();
        fs::write(
            work.join(format!("{name}.log")),
            [&out.stdout[..], &out.stderr[..]].concat(),
        )
        .expect("write ansible log");
        assert!(
            out.status.success(),
            "ansible-playbook ({name}) failed:\n{}",
            describe(&out)
        );
        let recap = Recap::parse(&String::from_utf8_lossy(&out.stdout));
        assert!(
            recap.failed == 0 && recap.unreachable == 0 && recap.hosts > 0,
            "ansible-playbook ({name}) recap: {recap:?}\n{}",
            describe(&out)
        );
        let phases: BTreeMap<String, f64> = serde_json::from_str(&read(&phases_file))
            .unwrap_or_else(|e| panic!("{}: {e}", phases_file.display()));
        (secs, recap.changed, phases)
    }

    /// Closes the SSH connections ControlPersist keeps open, so none outlives its lab.
    fn close_connections(work: &Path) {
        let Ok(entries) = fs::read_dir(work.join("cp")) else {
            return;
        };
        for e in entries.flatten() {
            let _ = Command::new("ssh")
                .arg("-o")
                .arg(format!("ControlPath={}", e.path().display()))
                .args(["-O", "exit", "lab-host"])
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// Totals of ansible-playbook's PLAY RECAP.
#[derive(Debug, Default)]
struct Recap {
    hosts: usize,
    changed: u64,
    failed: u64,
    unreachable: u64,
}

impl Recap {
    fn parse(stdout: &str) -> Recap {
        let mut r = Recap::default();
        let recap = stdout
            .rsplit_once("PLAY RECAP")
            .map_or("", |(_, rest)| rest);
        for line in recap.lines().filter(|l| l.contains(" : ok=")) {
            r.hosts += 1;
            for field in line.split_whitespace() {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                let n: u64 = value.parse().unwrap_or(0);
                match key {
                    "changed" => r.changed += n,
                    "failed" => r.failed += n,
                    "unreachable" => r.unreachable += n,
                    _ => {}
                }
            }
        }
        r
    }
}

/// One sample: a fresh lab per tool, both tools timed, then their hosts compared. The labs
/// are up one at a time: two 12-host labs at once exhaust the default inotify instance limit
/// (128 per user) on the machine, and idle hosts would only add noise to the timings.
fn sample(row: Row, index: usize, ansible: &Ansible, bundle: &Path) -> Sample {
    let run_kubegrid = || {
        let lab = LabGuard::up(row.hosts);
        (kubegrid_apply_twice(&lab, row.path), host_states(&lab))
    };
    let run_ansible = || {
        let lab = LabGuard::up(row.hosts);
        let work = ansible.prepare(&lab);
        let (full, changed, phases) = ansible.play(&work, bundle, row.path, "full");
        assert!(
            changed > 0,
            "Ansible's first run on fresh hosts changed nothing"
        );
        let (noop, changed, _) = ansible.play(&work, bundle, row.path, "noop");
        Ansible::close_connections(&work);
        assert_eq!(
            changed,
            0,
            "Ansible's re-run changed {changed} tasks; see {}",
            work.join("noop.log").display()
        );
        ((full, noop, phases), host_states(&lab))
    };
    // Alternating which tool goes first keeps drift on a busy machine from favouring one.
    let (
        ((kubegrid_full, kubegrid_noop, kubegrid_phases), kg),
        ((ansible_full, ansible_noop, ansible_phases), ans),
    ) = if index.is_multiple_of(2) {
        let k = run_kubegrid();
        (k, run_ansible())
    } else {
        let a = run_ansible();
        (run_kubegrid(), a)
    };
    compare_states(&kg, &ans);
    Sample {
        kubegrid_full,
        kubegrid_noop,
        ansible_full,
        ansible_noop,
        kubegrid_phases,
        ansible_phases,
    }
}

/// The lab's spec with `containerRuntime` set to `path` and its containerd line.
fn spec_for(lab: &LabGuard, path: InstallPath) -> PathBuf {
    lab.spec_with(&format!("bench-{}", path.name()), |c| {
        let runtime = &mut c["spec"]["containerRuntime"];
        runtime["source"] = path.name().into();
        runtime["containerd"]["version"] = path.containerd_line().into();
    })
}

/// A full apply and its no-op re-apply on `lab`; seconds of each, and the full apply's
/// per-phase split from its report.
fn kubegrid_apply_twice(lab: &LabGuard, path: InstallPath) -> (f64, f64, BTreeMap<String, f64>) {
    let spec = spec_for(lab, path);
    let spec = spec.to_str().expect("utf-8 path");
    let timed = || {
        let t = Instant::now();
        // The Ansible playbook prepares hosts and installs containerd; so does this.
        let out = lab.run(&[
            "apply",
            "-f",
            spec,
            "-o",
            "json",
            "--until",
            "container-runtime",
        ]);
        (t.elapsed().as_secs_f64(), out)
    };
    let (full, out) = timed();
    let report = apply_report(&out, "full apply");
    assert!(
        total_changed(&report) > 0,
        "the first apply on fresh hosts changed nothing:\n{}",
        describe(&out)
    );
    let phases = report["phases"]
        .as_array()
        .expect("report has phases")
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().expect("phase name").to_string(),
                p["wallMs"].as_f64().expect("phase wallMs") / 1000.0,
            )
        })
        .collect();
    let (noop, out) = timed();
    let report = apply_report(&out, "no-op re-apply");
    assert_eq!(
        total_changed(&report),
        0,
        "the re-apply changed tasks:\n{}",
        describe(&out)
    );
    (full, noop, phases)
}

/// The JSON report of a successful apply, after checking every host finished.
fn apply_report(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "kubegrid {what} failed:\n{}",
        describe(out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kubegrid {what} printed no JSON report ({e}):\n{}",
            describe(out)
        )
    });
    let hosts = report["hosts"].as_array().expect("report has hosts");
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| h["ok"] == true),
        "kubegrid {what}: not every host finished:\n{}",
        describe(out)
    );
    report
}

fn total_changed(report: &Value) -> u64 {
    report["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["changed"].as_u64().expect("changed is a count"))
        .sum()
}

/// Each host's name and [`HOST_STATE`] report, read over plain ssh.
fn host_states(lab: &LabGuard) -> Vec<(String, String)> {
    lab.hosts
        .iter()
        .map(|h| (h.name.clone(), lab.ssh_ok(h, HOST_STATE)))
        .collect()
}

/// Checks that host i after kubegrid and host i after Ansible ended up alike.
fn compare_states(kg: &[(String, String)], ans: &[(String, String)]) {
    assert_eq!(kg.len(), ans.len(), "the labs have different host counts");
    for ((name, k), (_, a)) in kg.iter().zip(ans) {
        if k != a {
            let diff: Vec<String> = k
                .lines()
                .zip(a.lines())
                .filter(|(x, y)| x != y)
                .map(|(x, y)| format!("  kubegrid: {x}\n  ansible:  {y}"))
                .collect();
            panic!(
                "{name} after kubegrid differs from {name} after Ansible; the playbook under e2e/benches/ansible no longer does what kubegrid does:\n{}\n--- kubegrid host\n{k}\n--- ansible host\n{a}",
                diff.join("\n")
            );
        }
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn print_table(runs: usize, table: &[(Row, Vec<Sample>)]) {
    println!(
        "\nkubegrid apply vs ansible-core, fresh lab hosts per sample, {runs} samples each (medians; ratio = Ansible / kubegrid, same run)"
    );
    println!(
        "{:>8} | {:>5} | {:>13} | {:>12} | {:>6} | {:>14} | {:>13} | {:>6} | target met?",
        "path",
        "hosts",
        "kubegrid full",
        "ansible full",
        "ratio",
        "kubegrid no-op",
        "ansible no-op",
        "ratio"
    );
    for (row, samples) in table {
        let med = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let (kf, af) = (med(|s| s.kubegrid_full), med(|s| s.ansible_full));
        let (kn, an) = (med(|s| s.kubegrid_noop), med(|s| s.ansible_noop));
        let (full_ratio, noop_ratio) = (af / kf, an / kn);
        let target = if row.hosts == TARGET_HOSTS {
            let verdict = |ratio: f64, want: f64| if ratio >= want { "met" } else { "MISSED" };
            format!(
                "full >= {TARGET_FULL:.0}x {}, no-op >= {TARGET_NOOP:.0}x {}",
                verdict(full_ratio, TARGET_FULL),
                verdict(noop_ratio, TARGET_NOOP)
            )
        } else {
            "-".into()
        };
        println!(
            "{:>8} | {:>5} | {kf:>12.2}s | {af:>11.2}s | {full_ratio:>5.1}x | {kn:>13.2}s | {an:>12.2}s | {noop_ratio:>5.1}x | {target}",
            row.path.name(),
            row.hosts
        );
    }
    println!(
        "\nper-phase split of the full runs (medians, seconds; a tool's phases need not sum to its total: the rest is start-up and connecting)"
    );
    for (row, samples) in table {
        let phases = |f: fn(&Sample) -> &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            let names: std::collections::BTreeSet<&String> =
                samples.iter().flat_map(|s| f(s).keys()).collect();
            names
                .into_iter()
                .map(|n| {
                    let xs = samples.iter().map(|s| f(s).get(n).copied().unwrap_or(0.0));
                    (n.clone(), median(xs.collect()))
                })
                .collect()
        };
        let show = |m: BTreeMap<String, f64>| -> String {
            m.iter()
                .map(|(n, v)| format!("{n} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{:>8} | {:>5} | kubegrid: {}",
            row.path.name(),
            row.hosts,
            show(phases(|s| &s.kubegrid_phases))
        );
        println!(
            "{:>8} | {:>5} | ansible:  {}",
            "",
            "",
            show(phases(|s| &s.ansible_phases))
        );
    }
}
