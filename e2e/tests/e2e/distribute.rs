//! Distribution during `apply`: a large blob fetched from the engine's blob server is cut
//! off part-way by taking the host's link down, and resumes with a Range request once the
//! link is back, in the same run, ending with the right bytes in the host's store.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use kubegrid_e2e::{LabGuard, bundle_dir, describe, kubegrid_bin, sh};
use serde_yaml::Value;

/// Random bytes appended to the rootfs tarball, so its transfer takes long enough to cut.
const PAD_MIB: u64 = 256;
/// Link rate while the test runs: the padded rootfs then takes about 20 s.
const RATE: &str = "100mbit";
/// The cut comes once the host holds this much of the blob.
const CUT_AT: u64 = 32 << 20;

/// The e2e bundle with its rootfs replaced by the same tarball plus a random member, in a
/// temporary directory (files hard-linked where possible).
struct PaddedBundle {
    dir: tempfile::TempDir,
    sha256: String,
}

impl PaddedBundle {
    fn build() -> PaddedBundle {
        let src = bundle_dir();
        let dir = tempfile::Builder::new()
            .prefix("kubegrid-e2e-padded-")
            .tempdir_in("/var/tmp")
            .expect("temp bundle dir");
        let text = fs::read_to_string(src.join("manifest.yaml")).expect("read manifest");
        let mut manifest: Value = serde_yaml::from_str(&text).expect("manifest yaml");
        let files = manifest["files"].as_sequence_mut().expect("files");
        let mut sha256 = String::new();
        for f in files.iter_mut() {
            let path = f["path"].as_str().expect("path").to_string();
            let dest = dir.path().join(&path);
            fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            if f["kind"] == "rootfs" {
                let padded = dir.path().join("rootfs-padded.tar");
                pad_tarball(&src.join(&path), &padded, dir.path());
                sha256 = sha256sum(&padded);
                f["path"] = Value::from("rootfs-padded.tar");
                f["sha256"] = Value::from(sha256.clone());
                f["size"] = Value::from(fs::metadata(&padded).expect("stat").len());
            } else if fs::hard_link(src.join(&path), &dest).is_err() {
                fs::copy(src.join(&path), &dest).expect("copy bundle file");
            }
        }
        assert!(!sha256.is_empty(), "the e2e bundle has no rootfs");
        fs::write(
            dir.path().join("manifest.yaml"),
            serde_yaml::to_string(&manifest).expect("yaml"),
        )
        .expect("write manifest");
        PaddedBundle { dir, sha256 }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Copies the tarball `from` to `to` with a member of PAD_MIB random bytes appended.
fn pad_tarball(from: &Path, to: &Path, work: &Path) {
    fs::copy(from, to).expect("copy rootfs");
    let pad = work.join("kubegrid-padding.bin");
    sh(&format!(
        "head -c {}M /dev/urandom > {} && tar --append -f {} -C {} kubegrid-padding.bin && rm {}",
        PAD_MIB,
        pad.display(),
        to.display(),
        work.display(),
        pad.display()
    ));
}

fn sha256sum(path: &Path) -> String {
    sh(&format!("sha256sum {}", path.display()))
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// Polls `check` every 100 ms until it holds; panics naming `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// `apply --until container-runtime` from the padded bundle, running in the background with
/// the engine's transfer logs on; its stderr lines are collected as they come.
struct Apply {
    child: std::process::Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: thread::JoinHandle<()>,
}

impl Apply {
    fn start(lab: &LabGuard, bundle: &Path) -> Apply {
        let mut child = Command::new(kubegrid_bin())
            .args(["apply", "-f"])
            .arg(lab.spec())
            .arg("--journal")
            .arg(lab.journal())
            .arg("--bundle")
            .arg(bundle)
            // The padded bundle is built by this test, so it carries no signature.
            .args(["--insecure-bundle", "--distribution", "http"])
            .args(["--until", "container-runtime", "-o", "json"])
            .env("RUST_LOG", "warn,kubegrid_engine=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start apply");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log lock").push(line);
            }
        });
        Apply { child, log, reader }
    }

    fn finish(self) -> (Output, Vec<String>) {
        let out = self.child.wait_with_output().expect("wait for apply");
        self.reader.join().expect("stderr reader");
        let log = self.log.lock().expect("log lock").clone();
        (out, log)
    }
}

/// The number right after `marker` on the first log line that holds every one of `terms`.
fn number_in(log: &[String], terms: &[&str], marker: &str) -> Option<u64> {
    log.iter()
        .filter(|l| terms.iter().all(|t| l.contains(t)))
        .find_map(|l| l.split(marker).nth(1))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
}

#[test]
fn a_blob_transfer_cut_part_way_resumes_in_the_same_run() {
    let bundle = PaddedBundle::build();
    let lab = LabGuard::up(1);
    let host = lab.host("lab-1").clone();
    let listing = lab.list();
    let gateway = listing["gateway"].as_str().expect("gateway").to_string();
    let lab_id = listing["bridge"]
        .as_str()
        .and_then(|b| b.strip_prefix("kgb-"))
        .expect("bridge kgb-<id>")
        .to_string();
    let octet = host.address.rsplit('.').next().expect("address");
    let veth = format!("kg{lab_id}-{octet}");
    let netns = format!("kg-{lab_id}-{}", host.name);
    sh(&format!(
        "tc qdisc replace dev {veth} root tbf rate {RATE} burst 256kb latency 200ms"
    ));

    let apply = Apply::start(&lab, bundle.path());
    let partial = format!("/var/lib/kubegrid/store/.partial/{}", bundle.sha256);
    wait_for(
        "the host's partial file to pass 32 MiB",
        Duration::from_secs(180),
        || {
            let out = lab.ssh(
                &host,
                &format!("stat -c %s {partial} 2>/dev/null || echo 0"),
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .is_ok_and(|n| n >= CUT_AT)
        },
    );

    let out = lab.kubegrid(&["cut", &host.name]);
    assert!(out.status.success(), "{}", describe(&out));
    // The agent notices the dead connection by its read timeout and closes it; the host's
    // network namespace can be looked at from here while its link is down.
    let fetching = format!(
        "ip netns exec {netns} ss -Htn state established dst {gateway} | grep -v ':22 ' || true"
    );
    assert!(!sh(&fetching).is_empty(), "no fetch connection to cut");
    wait_for(
        "the agent to drop its fetch connection",
        Duration::from_secs(60),
        || sh(&fetching).is_empty(),
    );
    let out = lab.kubegrid(&["heal", &host.name]);
    assert!(out.status.success(), "{}", describe(&out));

    let (out, log) = apply.finish();
    let log_text = log.join("\n");
    assert_eq!(out.status.code(), Some(0), "{}\n{log_text}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["outcome"], "succeeded", "{report}");

    let sha12 = &bundle.sha256[..12];
    for line in log.iter().filter(|l| l.contains(sha12)) {
        eprintln!("{line}");
    }
    let served_from = number_in(&log, &["blob server", "resumes blob", sha12], " at byte ");
    assert!(
        served_from.is_some_and(|n| n >= CUT_AT),
        "the blob server saw no Range request past {CUT_AT}:\n{log_text}"
    );
    let resumed = number_in(&log, &["stored:", sha12], "resumed from byte ");
    assert!(
        resumed.is_some_and(|n| n >= CUT_AT),
        "the agent did not report a resumed transfer:\n{log_text}"
    );
    assert!(
        number_in(&log, &["retry", sha12], " at byte ").is_some_and(|n| n >= CUT_AT),
        "no retry was logged:\n{log_text}"
    );

    let stored = lab.ssh_ok(
        &host,
        &format!(
            "sha256sum /var/lib/kubegrid/store/{} | cut -d' ' -f1; test ! -e {partial} && echo no-partial",
            bundle.sha256
        ),
    );
    assert_eq!(stored, format!("{}\nno-partial", bundle.sha256));
}
