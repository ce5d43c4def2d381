//! `spec.containerRuntime.source`: the release archive (the lab's default) lands over a
//! running containerd and restarts it onto the new binary, and puts back a binary changed on
//! the host; `packages` still installs the bundle's Debian packages (bookworm's containerd 1.6
//! and runc).

use std::path::PathBuf;

use kubegrid_e2e::{LabGuard, describe, total_changed};
use serde_json::Value;

/// Only the container runtime matters here.
const RUNTIME: &str = "container-runtime";

fn apply(lab: &LabGuard, spec: &std::path::Path) -> Value {
    let out = lab.run(&[
        "apply",
        "-f",
        spec.to_str().expect("utf-8 path"),
        "-o",
        "json",
        "--until",
        RUNTIME,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)))
}

/// The lab's spec with its containerRuntime replaced by `runtime` (YAML).
fn spec_with_runtime(lab: &LabGuard, name: &str, runtime: &str) -> PathBuf {
    lab.spec_with(name, |c| {
        c["spec"]["containerRuntime"] = serde_yaml::from_str(runtime).expect("yaml");
    })
}

#[test]
fn a_new_containerd_archive_lands_over_the_running_one_and_a_changed_binary_is_restored() {
    let lab = LabGuard::up(1);
    let h = &lab.hosts[0];
    // containerd 1.7 from trixie's archive first, then the lab's 2.1: the new binaries are
    // unpacked over the running daemon's, which is restarted onto them.
    let old = spec_with_runtime(&lab, "archive-1.7", "{containerd: {version: '1.7'}}");
    apply(&lab, &old);
    let running = "systemctl is-active containerd; systemctl show -p MainPID --value containerd; \
         /proc/$(systemctl show -p MainPID --value containerd)/exe --version";
    let before = lab.ssh_ok(h, running);
    let before: Vec<&str> = before.lines().collect();
    assert_eq!(before[0], "active", "{before:?}");
    assert!(before[2].contains(" 1.7.24"), "{before:?}");
    apply(&lab, &lab.spec());
    let after = lab.ssh_ok(h, running);
    let after: Vec<&str> = after.lines().collect();
    assert_eq!(after[0], "active", "{after:?}");
    assert_ne!(
        after[1], before[1],
        "containerd was not restarted: {after:?}"
    );
    assert!(after[2].contains(" 2.1.9"), "the running daemon: {after:?}");
    assert_eq!(total_changed(&apply(&lab, &lab.spec())), 0, "converged");

    // A binary changed on the host (replaced, as writing into a running one is refused) is
    // put back from the archive and reported.
    let sha = "sha256sum /usr/local/bin/containerd | cut -d' ' -f1";
    let original = lab.ssh_ok(h, sha);
    lab.ssh_ok(
        h,
        "cp /usr/local/bin/containerd /tmp/c && printf x >> /tmp/c && mv /tmp/c /usr/local/bin/containerd",
    );
    assert_ne!(lab.ssh_ok(h, sha), original);
    let report = apply(&lab, &lab.spec());
    assert!(total_changed(&report) >= 1, "{report}");
    assert_eq!(lab.ssh_ok(h, sha), original);
    assert_eq!(total_changed(&apply(&lab, &lab.spec())), 0, "converged");
}

#[test]
fn source_packages_installs_the_bundles_debian_packages() {
    let lab = LabGuard::up(1);
    let h = &lab.hosts[0];
    let spec = spec_with_runtime(
        &lab,
        "packages",
        "{containerd: {version: '1.6'}, source: packages}",
    );
    apply(&lab, &spec);
    let state = lab.ssh_ok(
        h,
        "systemctl is-active containerd; dpkg-query -W -f '${Version}\\n' containerd runc; \
         grep -c '^version = 2$' /etc/containerd/config.toml; \
         test -e /usr/local/bin/containerd && echo archive || echo no-archive; \
         test -e /etc/systemd/system/containerd.service && echo own-unit || echo package-unit; \
         r=$(ls -d /var/lib/kubegrid/state/rootfs/*/ | head -1) && ctr run --rm --rootfs \"$r\" e2e-pkg /bin/busybox echo hello-from-packages",
    );
    let lines: Vec<&str> = state.lines().collect();
    assert_eq!(lines[0], "active", "{state}");
    assert!(lines[1].starts_with("1.6.20"), "containerd deb: {state}");
    assert!(lines[2].starts_with("1.1.5"), "runc deb: {state}");
    assert_eq!(lines[3], "1", "version 2 config: {state}");
    assert_eq!(lines[4], "no-archive", "{state}");
    assert_eq!(lines[5], "package-unit", "{state}");
    assert_eq!(lines[6], "hello-from-packages", "{state}");
    assert_eq!(total_changed(&apply(&lab, &spec)), 0, "converged");
}
