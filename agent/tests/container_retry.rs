//! The container check against a scripted `ctr` (first on the agent's PATH): a run that exits
//! 0 but prints nothing (containerd can lose a short-lived container's output) is tried
//! again under a new name, up to three times; a run that prints something else is not.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
};

use kubegrid_agent::protocol::{
    Action, CheckArgs, CheckKind, Event, PROTOCOL_VERSION, Plan, Task, TaskStatus,
};

/// Writes a `ctr` into `dir/bin` that prints nothing for its first `silent` runs, then
/// `text`, logging each run's arguments to `dir/ctr.log`.
fn scripted_ctr(dir: &Path, silent: u32, text: &str) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let log = dir.join("ctr.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {log}\nn=$(grep -c ' run ' {log})\n[ \"$1 $2 $3\" = \"--address /run/test.sock run\" ] && [ \"$n\" -gt {silent} ] && echo {text}\nexit 0\n",
        log = log.display()
    );
    fs::write(bin.join("ctr"), script).unwrap();
    fs::set_permissions(bin.join("ctr"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs one container check with the scripted `ctr`; returns the task's status and message
/// and the `ctr run` command lines.
fn check(silent: u32, text: &str) -> (TaskStatus, String, Vec<String>) {
    check_with(silent, text, None)
}

/// [`check`] with an OCI runtime for the runc shim to run instead of runc.
fn check_with(silent: u32, text: &str, binary: Option<&str>) -> (TaskStatus, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    scripted_ctr(dir.path(), silent, text);
    let sha = "c".repeat(64);
    fs::create_dir_all(dir.path().join("state/rootfs").join(&sha)).unwrap();
    let plan = Plan {
        protocol: PROTOCOL_VERSION,
        phase: "test".into(),
        check_mode: false,
        store_dir: Some(dir.path().join("store")),
        state_dir: Some(dir.path().join("state")),
        blobs: Vec::new(),
        tasks: vec![Task {
            name: "runc runs a container".into(),
            action: Action::Check(CheckArgs {
                check: CheckKind::ContainerRuns {
                    socket: "/run/test.sock".into(),
                    runtime: "io.containerd.runc.v2".into(),
                    binary: binary.map(String::from),
                    rootfs_sha256: sha,
                    argv: vec!["/bin/busybox".into(), "echo".into(), "ok".into()],
                    expect: "ok".into(),
                },
            }),
            always: false,
        }],
    };
    let path = format!(
        "{}:{}",
        dir.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubegrid-agent"))
        .arg("run")
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut input = serde_json::to_vec(&plan).unwrap();
    input.push(b'\n');
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let (status, message) = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| match serde_json::from_str::<Event>(l).unwrap() {
            Event::TaskFinished {
                status, message, ..
            } => Some((status, message)),
            _ => None,
        })
        .next()
        .expect("the task finished");
    let runs = fs::read_to_string(dir.path().join("ctr.log"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(" run "))
        .map(String::from)
        .collect();
    (status, message, runs)
}

fn names(runs: &[String]) -> std::collections::BTreeSet<&str> {
    runs.iter()
        .filter_map(|r| {
            r.split_whitespace()
                .find(|w| w.starts_with("kubegrid-check-"))
        })
        .collect()
}

#[test]
fn a_run_that_prints_nothing_is_tried_again_under_a_new_name() {
    let (status, message, runs) = check(2, "ok");
    assert_eq!(status, TaskStatus::Unchanged, "{message}");
    assert!(message.contains("printed \"ok\""), "{message}");
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert_eq!(names(&runs).len(), 3, "a new name each time: {runs:#?}");
}

#[test]
fn three_silent_runs_fail_and_say_so() {
    let (status, message, runs) = check(99, "ok");
    assert_eq!(status, TaskStatus::Failed, "{message}");
    assert!(message.contains("printed nothing, 3 times"), "{message}");
    assert_eq!(runs.len(), 3, "{runs:#?}");
}

#[test]
fn a_run_that_prints_something_else_is_not_tried_again() {
    let (status, message, runs) = check(0, "hello");
    assert_eq!(status, TaskStatus::Failed, "{message}");
    assert!(message.contains("printed something else"), "{message}");
    assert_eq!(runs.len(), 1, "{runs:#?}");
}

#[test]
fn another_oci_runtime_is_handed_to_the_runc_shim() {
    let runsc = "/usr/local/lib/kubegrid/runsc-containerd";
    let (status, message, runs) = check_with(0, "ok", Some(runsc));
    assert_eq!(status, TaskStatus::Unchanged, "{message}");
    assert!(message.contains(runsc), "{message}");
    assert!(
        runs[0].contains(&format!(
            "--runtime io.containerd.runc.v2 --runc-binary {runsc} --rootfs"
        )),
        "{runs:#?}"
    );
    let (_, _, runs) = check(0, "ok");
    assert!(!runs[0].contains("--runc-binary"), "{runs:#?}");
}
