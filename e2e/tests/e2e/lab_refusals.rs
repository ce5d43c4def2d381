//! `lab` refuses bad situations with a clear message and an exit code, before writing anything.

use std::{
    os::unix::fs::symlink,
    process::{Command, Output, Stdio},
};

use kubegrid_e2e::{LabGuard, describe, kubegrid_bin};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn refuses_without_root() {
    let lab = LabGuard::reserve();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(kubegrid_bin())
        .args(["lab", "--state-dir"])
        .arg(&lab.state_dir)
        .args(["up", "--hosts", "1", "--subnet", &lab.subnet])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains("must run as root"),
        "{}",
        describe(&out)
    );
    assert!(!lab.state_dir.exists(), "a refused up must write nothing");
}

#[test]
fn refuses_when_tools_are_missing_and_names_the_package() {
    let lab = LabGuard::reserve();
    let empty_cache = tempfile_dir("cache");
    // A PATH with everything the lab needs except one program at a time.
    for (missing, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
    ] {
        let bin = tempfile_dir(&format!("bin-{missing}"));
        for tool in [
            "systemd-nspawn",
            "debootstrap",
            "ip",
            "nsenter",
            "setsid",
            "timeout",
            "chroot",
        ] {
            if tool != missing {
                let real = which(tool);
                symlink(&real, bin.join(tool)).unwrap();
            }
        }
        let out = Command::new(kubegrid_bin())
            .env("PATH", &bin)
            .args(["lab", "--state-dir"])
            .arg(&lab.state_dir)
            .arg("--cache-dir")
            .arg(&empty_cache)
            .args(["up", "--hosts", "1", "--subnet", &lab.subnet])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        assert!(
            stderr(&out).contains(&format!("`{missing}` is not installed")),
            "{}",
            describe(&out)
        );
        assert!(
            stderr(&out).contains(&format!("apt-get install {package}")),
            "{}",
            describe(&out)
        );
        assert!(!lab.state_dir.exists(), "a refused up must write nothing");
    }
}

#[test]
fn refuses_a_subnet_that_collides_with_a_route() {
    let lab = LabGuard::reserve();
    // A spare bridge owning the range makes a real, local-only route that collides
    // (this kernel has no `dummy` link type).
    let dummy = format!("kge2e{}", std::process::id() % 100_000);
    let gateway = lab.subnet.replace(".0/24", ".1/24");
    run("ip", &["link", "add", &dummy, "type", "bridge"]);
    run("ip", &["addr", "add", &gateway, "dev", &dummy]);
    run("ip", &["link", "set", &dummy, "up"]);
    let out = lab.kubegrid(&["up", "--hosts", "1", "--subnet", &lab.subnet]);
    run("ip", &["link", "del", &dummy]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("lab subnet {} collides", lab.subnet)) && err.contains(&dummy),
        "{}",
        describe(&out)
    );
    assert!(!lab.state_dir.exists(), "a refused up must write nothing");
}

#[test]
fn bad_input_gets_usage_errors() {
    let lab = LabGuard::reserve();
    let out = lab.kubegrid(&["down"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "down needs --all or names:\n{}",
        describe(&out)
    );
    let out = lab.kubegrid(&["start", "lab-9"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("there is no lab in"),
        "{}",
        describe(&out)
    );
    let out = lab.kubegrid(&[
        "up",
        "--name",
        "Bad_Name",
        "--subnet",
        &lab.subnet,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error on stdout");
    assert_eq!(doc["error"]["exitCode"], 2);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid host name prefix")
    );
    assert!(!lab.state_dir.exists(), "refusals must write nothing");
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        describe(&out)
    );
}

fn which(tool: &str) -> std::path::PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{tool} is needed by this test");
    String::from_utf8_lossy(&out.stdout).trim().into()
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kubegrid-e2e-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn up_names_the_hosts_that_are_late_and_why() {
    let lab = LabGuard::reserve();
    let out = lab.kubegrid(&[
        "up",
        "--hosts",
        "2",
        "--subnet",
        &lab.subnet,
        "--timeout",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("2 of 2 lab hosts did not become ready within 0s"),
        "{}",
        describe(&out)
    );
    for host in ["lab-1", "lab-2"] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("- {host}: ")))
            .unwrap_or_else(|| panic!("{host} not named:\n{err}"));
        assert!(
            line.len() > format!("  - {host}: ").len(),
            "no reason given for {host}"
        );
    }
    // The hosts were created and keep booting; the guard removes them.
}
