//! The container check against a scripted `ctr` (first on the agent's PATH): a run that exits
//! 0 but prints nothing (containerd can lose a short-lived container's output) is tried
//! again under a new name, up to three times; a run that prints something else is not.

mod scripted;

use std::{fs, path::Path};

use kubegrid_agent::protocol::{Action, CheckArgs, CheckKind, TaskStatus};

/// Writes a `ctr` into `dir/bin` that prints nothing for its first `silent` runs, then
/// `text`, logging each run's arguments to `dir/ctr.log`.
fn scripted_ctr(dir: &Path, silent: u32, text: &str) {
    let log = dir.join("ctr.log");
    scripted::script(
        dir,
        "ctr",
        &format!(
            "echo \"$*\" >> {log}\nn=$(grep -c ' run ' {log})\n[ \"$1 $2 $3\" = \"--address /run/test.sock run\" ] && [ \"$n\" -gt {silent} ] && echo {text}\nexit 0\n",
            log = log.display()
        ),
    );
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
    let action = Action::Check(CheckArgs {
        check: CheckKind::ContainerRuns {
            socket: "/run/test.sock".into(),
            runtime: "io.containerd.runc.v2".into(),
            binary: binary.map(String::from),
            rootfs_sha256: sha,
            argv: vec!["/bin/busybox".into(), "echo".into(), "ok".into()],
            expect: "ok".into(),
        },
    });
    let (status, message) = scripted::run_task(dir.path(), "runc runs a container", action);
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
