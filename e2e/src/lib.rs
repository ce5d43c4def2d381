//! Test harness for kubegrid on lab hosts.
//!
//! [`LabGuard::up`] brings up lab hosts through the real `kubegrid` binary, in a state
//! directory and address range of its own, and tears them down when dropped, also when a
//! test panics. Hosts are checked with the plain OpenSSH client ([`LabGuard::ssh`]), never
//! through kubegrid's own code, so verification does not trust the code under test.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

pub mod boot_unit;
pub mod gpu_standin;
pub mod nouveau_standin;

/// Where e2e labs keep their state; one folder per lab, named `<pid>-<slot>`.
const STATE_ROOT: &str = "/var/tmp/kubegrid-e2e";
/// Slot files, one per address range in use: `10.213.<slot>.0/24`.
const SLOT_ROOT: &str = "/run/kubegrid-e2e/slots";
/// Slots used by tests; the lab's own default range (10.213.0.0/24) stays free for users.
const SLOTS: std::ops::Range<u16> = 100..200;

/// The `kubegrid` binary under test: `$KUBEGRID_BIN`, or the one cargo built beside this test.
pub fn kubegrid_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBEGRID_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> -> target/<profile>/kubegrid
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("kubegrid"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "kubegrid binary not found at {}; build it (cargo build -p kubegrid) or set KUBEGRID_BIN",
        bin.display()
    );
    bin
}

/// The base rootfs cache shared by all tests and the user's own labs, so it is built once.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KUBEGRID_LAB_CACHE_DIR")
        .map_or_else(|| PathBuf::from("/var/cache/kubegrid/lab"), PathBuf::from)
}

/// The e2e offline bundle: the dev bundle's real Debian artifacts (containerd, runc, etcd,
/// CNI plugins) plus STAND-INS for kubeadm, kubelet, kubectl and crictl, which no registry
/// here provides. `.ci/setup` builds it with `e2e/standin-bundle.sh`; `$KUBEGRID_BUNDLE`
/// overrides. Tests never download it themselves.
pub fn bundle_dir() -> PathBuf {
    let dir = std::env::var_os("KUBEGRID_BUNDLE").map_or_else(
        || PathBuf::from("/var/cache/kubegrid/bundle-e2e"),
        PathBuf::from,
    );
    assert!(
        dir.join("manifest.yaml").is_file(),
        "no offline bundle at {}; build it with e2e/standin-bundle.sh {} (.ci/setup does)",
        dir.display(),
        dir.display()
    );
    dir
}

/// The public key the e2e bundle is signed with: `$KUBEGRID_BUNDLE_PUBLIC_KEY`, or the key
/// `.ci/setup` makes once and signs the cached bundles with.
pub fn bundle_public_key() -> PathBuf {
    std::env::var_os("KUBEGRID_BUNDLE_PUBLIC_KEY").map_or_else(
        || PathBuf::from("/var/cache/kubegrid/bundle-signing.key.pub"),
        PathBuf::from,
    )
}

/// The agents `.ci/setup` builds with agent/build-glibc228.sh.
pub fn glibc228_agent() -> PathBuf {
    let dir = std::env::var_os("KUBEGRID_GLIBC228_AGENT_DIR")
        .map_or_else(|| PathBuf::from("/var/cache/kubegrid/agent"), PathBuf::from);
    let path = dir.join("kubegrid-agent-amd64");
    assert!(
        path.is_file(),
        "no glibc 2.28 agent at {}; build it with agent/build-glibc228.sh (.ci/setup does)",
        path.display()
    );
    path
}

/// Runs a shell command on this machine; asserts success and returns trimmed stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    assert!(out.status.success(), "`{cmd}` failed:\n{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The OpenSSH client options every plain ssh or scp to a lab host uses: lab hosts are new
/// each run, so their keys are neither checked nor kept.
pub const SSH_OPTIONS: [&str; 8] = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
];

/// One lab host as `lab list` reports it.
#[derive(Debug, Clone)]
pub struct Host {
    /// Host name.
    pub name: String,
    /// Address on the lab bridge.
    pub address: String,
}

/// A lab for one test; dropping it runs `kubegrid lab down --all`.
pub struct LabGuard {
    /// The lab's state directory.
    pub state_dir: PathBuf,
    /// The /24 it owns.
    pub subnet: String,
    /// Its hosts, in order.
    pub hosts: Vec<Host>,
    /// The SSH key that logs in to every host.
    pub key: PathBuf,
    /// The base rootfs cache it uses; [`cache_dir`] unless a test changes it.
    pub cache_dir: PathBuf,
    slot_file: PathBuf,
}

impl LabGuard {
    /// Reserves a state directory and address range, without creating any host yet.
    pub fn reserve() -> LabGuard {
        sweep_stale();
        fs::create_dir_all(SLOT_ROOT).expect("create slot folder");
        for slot in SLOTS {
            let slot_file = Path::new(SLOT_ROOT).join(slot.to_string());
            let state_dir = Path::new(STATE_ROOT).join(format!("{}-{slot}", std::process::id()));
            let Ok(mut f) = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&slot_file)
            else {
                continue;
            };
            writeln!(f, "{}\n{}", std::process::id(), state_dir.display())
                .expect("write slot file");
            return LabGuard {
                key: state_dir.join("ssh/id_ed25519"),
                cache_dir: cache_dir(),
                state_dir,
                subnet: format!("10.213.{slot}.0/24"),
                hosts: Vec::new(),
                slot_file,
            };
        }
        panic!("no free e2e lab slot in {SLOT_ROOT}");
    }

    /// Brings up `n` hosts named `lab-1..n` and returns the guard that removes them.
    pub fn up(n: usize) -> LabGuard {
        let mut lab = LabGuard::reserve();
        lab.bring_up(n);
        lab
    }

    /// Runs `lab up --hosts n` for a reserved lab, records its hosts and returns the output.
    pub fn bring_up(&mut self, n: usize) -> Output {
        self.bring_up_with(n, &[])
    }

    /// [`LabGuard::bring_up`] with more `lab up` arguments (`--release bullseye`).
    pub fn bring_up_with(&mut self, n: usize, extra: &[&str]) -> Output {
        let (hosts, subnet) = (n.to_string(), self.subnet.clone());
        let mut args = vec!["up", "--hosts", &hosts, "--subnet", &subnet, "-o", "json"];
        args.extend_from_slice(extra);
        let out = self.kubegrid(&args);
        assert!(out.status.success(), "lab up failed:\n{}", describe(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).expect("lab up prints JSON");
        self.hosts = doc["lab"]["hosts"]
            .as_array()
            .expect("hosts array")
            .iter()
            .map(|h| Host {
                name: h["name"].as_str().expect("name").to_string(),
                address: h["address"].as_str().expect("address").to_string(),
            })
            .collect();
        assert_eq!(
            self.hosts.len(),
            n,
            "lab up reported {} hosts",
            self.hosts.len()
        );
        out
    }

    /// Runs `kubegrid lab <args>` against this lab.
    pub fn kubegrid(&self, args: &[&str]) -> Output {
        Command::new(kubegrid_bin())
            .arg("lab")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubegrid")
    }

    /// `lab list -o json`, parsed.
    pub fn list(&self) -> Value {
        let out = self.kubegrid(&["list", "-o", "json"]);
        assert!(out.status.success(), "lab list failed:\n{}", describe(&out));
        serde_json::from_slice(&out.stdout).expect("lab list prints JSON")
    }

    /// A plain ssh client command to `host` as `user` with the lab's key and [`SSH_OPTIONS`],
    /// stdin closed (set it otherwise); append the remote command with `.arg`.
    pub fn ssh_command_as(&self, user: &str, host: &Host) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.key)
            .args(SSH_OPTIONS)
            .args(["-o", "ConnectTimeout=3"])
            .arg(format!("{user}@{}", host.address))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd` on `host` as `user` with the plain ssh client.
    pub fn ssh_as(&self, user: &str, host: &Host, cmd: &str) -> Output {
        self.ssh_command_as(user, host)
            .arg(cmd)
            .output()
            .expect("run ssh")
    }

    /// Runs `cmd` on `host` as root.
    pub fn ssh(&self, host: &Host, cmd: &str) -> Output {
        self.ssh_as("root", host, cmd)
    }

    /// Runs `cmd` on `host` as root, asserts success and returns trimmed stdout.
    pub fn ssh_ok(&self, host: &Host, cmd: &str) -> String {
        let out = self.ssh(host, cmd);
        assert!(
            out.status.success(),
            "ssh {} `{cmd}` failed:\n{}",
            host.name,
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The Cluster/Node spec `lab up` wrote for this lab's hosts.
    pub fn spec(&self) -> PathBuf {
        self.state_dir.join("specs/lab.yaml")
    }

    /// The lab's spec with `edit` applied to its Cluster document, written beside it as
    /// `<state-dir>/specs-e2e-<name>.yaml` (outside `specs/`, which `lab up` owns).
    pub fn spec_with(&self, name: &str, edit: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
        let text = std::fs::read_to_string(self.spec()).expect("read lab spec");
        let mut docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("lab spec is YAML"))
            .collect();
        let cluster = docs
            .iter_mut()
            .find(|d| d["kind"] == "Cluster")
            .expect("the lab spec has a Cluster");
        edit(cluster);
        let out: Vec<String> = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).expect("YAML"))
            .collect();
        let path = self.state_dir.join(format!("specs-e2e-{name}.yaml"));
        std::fs::write(&path, out.join("---\n")).expect("write spec");
        path
    }

    /// This lab's own journal, so parallel tests never share one.
    pub fn journal(&self) -> PathBuf {
        self.state_dir.join("journal.db")
    }

    /// Runs a top-level kubegrid command (`apply`, `plan`, `history`, …) with this lab's
    /// journal. `apply`, `plan`, `reset`, `upgrade` and `certs` also get the e2e bundle and its public
    /// key.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubegrid")
    }

    /// `kubegrid apply -f SPEC -o json` with the admin kubeconfig written into the lab's state
    /// directory (never the user's `~/.kube`), plus `extra` arguments.
    pub fn apply_json(&self, spec: &Path, extra: &[&str]) -> Output {
        let kubeconfig = self.state_dir.join("admin.conf");
        let mut args = vec![
            "apply",
            "-f",
            spec.to_str().expect("utf-8 spec path"),
            "-o",
            "json",
            "--kubeconfig-out",
            kubeconfig.to_str().expect("utf-8 state dir"),
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The command [`LabGuard::run`] would run, for tests that need to watch it as it goes.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubegrid_bin());
        cmd.args(args).arg("--journal").arg(self.journal());
        if matches!(
            args.first(),
            Some(&"apply" | &"plan" | &"reset" | &"upgrade" | &"certs")
        ) {
            cmd.arg("--bundle").arg(bundle_dir());
            cmd.arg("--bundle-public-key").arg(bundle_public_key());
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Host by name.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let out = self.kubegrid(&["down", "--all"]);
        if !out.status.success() {
            eprintln!(
                "warning: tearing down e2e lab {} failed:\n{}",
                self.state_dir.display(),
                describe(&out)
            );
            return;
        }
        let _ = fs::remove_file(&self.slot_file);
    }
}

/// Removes labs left by test processes that died without unwinding (killed by a timeout).
fn sweep_stale() {
    let Ok(entries) = fs::read_dir(SLOT_ROOT) else {
        return;
    };
    for entry in entries.flatten() {
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        let mut lines = text.lines();
        let (Some(pid), Some(dir)) = (lines.next(), lines.next()) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let ok = Command::new(kubegrid_bin())
            .args(["lab", "--state-dir", dir, "down", "--all"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            eprintln!("removed stale e2e lab {dir} (its test process {pid} is gone)");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A command's stdout as JSON (`-o json`); panics with the whole output when it is not.
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", describe(out)))
}

/// The tasks an operation report says changed, over all its hosts.
pub fn total_changed(report: &Value) -> u64 {
    report["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["changed"].as_u64().expect("changed"))
        .sum()
}

/// Exit status, stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Median of a non-empty sample.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}
