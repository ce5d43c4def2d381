//! Sandboxed runtimes (docs/runtimes.md) on a 3-Node lab: `runtimes: [runc, gvisor]` installs
//! Debian's runsc from the bundle and a gVisor container runs through containerd for real
//! (its dmesg is gVisor's own kernel's); a second apply changes nothing and leaves containerd's
//! PID as it was; a kata runtime is refused by preflight's kata-vm check where no VM can be
//! created (exit 5, nothing changed on any host), and with `--skip-check kata-vm` the apply
//! goes on without a kata handler on those hosts, and the report says so; the whole apply then
//! creates kata's RuntimeClass and fails its `runtime-classes` check, as no Node runs kata.
//! crun, from the bundle's Debian packages, runs a container too.

use std::path::{Path, PathBuf};

use kubegrid_e2e::{LabGuard, describe, json, total_changed};

/// Only the container runtime matters here.
const RUNTIME: &str = "container-runtime";

/// Everything of a host that an apply which changes nothing must leave as it was: containerd's
/// PID, its config and the runsc wrapper (sha256), and whether Kata's tree exists.
const STATE: &str = "systemctl show -p MainPID --value containerd; \
    sha256sum /etc/containerd/config.toml /usr/local/lib/kubegrid/runsc-containerd | cut -d' ' -f1; \
    test -e /opt/kata && echo kata || echo no-kata";

fn apply(lab: &LabGuard, spec: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "apply",
        "-f",
        spec.to_str().expect("utf-8 path"),
        "-o",
        "json",
        "--until",
        RUNTIME,
    ];
    args.extend_from_slice(extra);
    lab.run(&args)
}

fn spec_with_runtimes(lab: &LabGuard, name: &str, runtimes: &[&str]) -> PathBuf {
    lab.spec_with(name, |c| {
        c["spec"]["containerRuntime"]["runtimes"] =
            serde_yaml::to_value(runtimes).expect("runtimes as yaml");
    })
}

/// The Nodes of the lab's spec with role worker (`lab up` makes lab-1 the control plane).
fn workers(lab: &LabGuard) -> Vec<String> {
    let text = std::fs::read_to_string(lab.spec()).expect("read lab spec");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml doc"))
        .filter(|d: &serde_yaml::Value| {
            d["kind"] == "Node"
                && d["spec"]["roles"]
                    .as_sequence()
                    .is_some_and(|r| r.iter().any(|r| r == "worker"))
        })
        .map(|d| d["metadata"]["name"].as_str().expect("name").to_string())
        .collect()
}

fn states(lab: &LabGuard) -> Vec<String> {
    lab.hosts.iter().map(|h| lab.ssh_ok(h, STATE)).collect()
}

#[test]
fn gvisor_runs_through_containerd_and_kata_is_refused_without_a_vm() {
    let lab = LabGuard::up(3);
    let gvisor = spec_with_runtimes(&lab, "gvisor", &["runc", "gvisor"]);
    let out = apply(&lab, &gvisor, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    for h in &lab.hosts {
        // Debian's runsc package, and containerd's gvisor handler running it through the
        // runc shim: checked here with ctr itself, not through kubegrid's agent.
        let installed = lab.ssh_ok(h, "dpkg-query -W -f '${Version}' runsc");
        assert!(
            installed.starts_with("0.0~20240729"),
            "{}: {installed}",
            h.name
        );
        let config = lab.ssh_ok(h, "cat /etc/containerd/config.toml");
        assert!(
            config.contains(".containerd.runtimes.gvisor]")
                && config.contains(r#"BinaryName = "/usr/local/lib/kubegrid/runsc-containerd""#),
            "{}: {config}",
            h.name
        );
        let dmesg = lab.ssh_ok(
            h,
            "r=$(ls -d /var/lib/kubegrid/state/rootfs/*/ | head -1) && \
             ctr run --rm --runtime io.containerd.runc.v2 \
             --runc-binary /usr/local/lib/kubegrid/runsc-containerd \
             --rootfs \"$r\" e2e-gvisor /bin/busybox dmesg",
        );
        // gVisor's kernel boots with its own log; the host kernel's never says this.
        assert!(dmesg.contains("Starting gVisor"), "{}: {dmesg}", h.name);
    }

    // A re-apply that changes nothing leaves containerd running as it was (same PID).
    let before = states(&lab);
    let out = apply(&lab, &gvisor, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        total_changed(&json(&out)),
        0,
        "converged: {}",
        describe(&out)
    );
    assert_eq!(
        states(&lab),
        before,
        "containerd was restarted or its config changed"
    );

    // kata-qemu where no lab host can create a VM: refused by kata-vm, nothing changed.
    let kata = spec_with_runtimes(&lab, "kata", &["runc", "gvisor", "kata-qemu"]);
    let out = apply(&lab, &kata, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "preflightFailed", "{report}");
    let findings = report["preflight"].as_array().expect("findings");
    let workers = workers(&lab);
    assert!(!workers.is_empty());
    // Kata pods run on workers: each worker is refused, and nothing else is.
    assert_eq!(findings.len(), workers.len(), "{findings:#?}");
    for name in &workers {
        let f = findings
            .iter()
            .find(|f| f["host"] == name.as_str() && f["check"] == "kata-vm")
            .unwrap_or_else(|| panic!("no kata-vm finding for {name}: {findings:#?}"));
        assert!(
            f["seen"].as_str().unwrap().contains("facts.gpu.kvm")
                && f["seen"].as_str().unwrap().contains("kata-qemu"),
            "{f}"
        );
        assert!(f["expected"].as_str().unwrap().contains("/dev/kvm"), "{f}");
        assert!(
            f["hint"].as_str().unwrap().contains("--skip-check kata-vm"),
            "{f}"
        );
    }
    assert_eq!(states(&lab), before, "a refused apply changed a host");

    // Knowingly skipped: the apply goes on, kata is neither installed nor configured on any
    // host, and each host's report says why.
    let out = apply(&lab, &kata, &["--skip-check", "kata-vm"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report = json(&out);
    for host in report["hosts"].as_array().expect("hosts") {
        let skipped = host["skippedRuntimes"].as_array().expect("skippedRuntimes");
        assert!(
            skipped.iter().any(|s| {
                let s = s.as_str().unwrap();
                s.contains("kata-qemu is not configured") && s.contains("needs a VM")
            }),
            "{host}"
        );
    }
    assert_eq!(
        states(&lab),
        before,
        "kata was configured or installed where no VM can be created"
    );

    // The whole apply, knowingly skipped: the kata-qemu RuntimeClass is created with the
    // others, and the runtime-classes check fails honestly, since no Node runs its handler
    // (exit 1; the API checks are skipped, as no kube-apiserver runs here).
    let out = lab.apply_json(
        &kata,
        &["--skip-check", "kata-vm", "--skip-check", "cluster-api"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    let checks = report["kubernetes"]["checks"].as_array().expect("checks");
    let rc = checks
        .iter()
        .find(|c| c["name"] == "runtime-classes")
        .unwrap_or_else(|| panic!("no runtime-classes check: {report}"));
    let detail = rc["detail"].as_str().expect("detail");
    assert_eq!(rc["ok"], false, "{rc}");
    assert!(
        detail.contains("RuntimeClass kata-qemu has no Node whose containerd runs its handler")
            && detail.contains("needs a VM")
            && !detail.contains("RuntimeClass gvisor"),
        "{detail}"
    );
    let objects = lab.ssh_ok(
        &lab.hosts[0],
        "cat /etc/kubernetes/kubegrid/cluster-objects.yaml",
    );
    assert!(
        objects.contains("name: kata-qemu") && objects.contains("handler: kata-qemu"),
        "{objects}"
    );
}

/// crun from the bundle's Debian packages (bookworm's 1.8) on containerd 1.6, whose OCI specs
/// it reads; it refuses the specs of the lab's newer containerd builds (trixie's 1.7.24 and
/// sid's 2.1.9 both refused: "unknown version specified"), and the apply's `crun runs a
/// container` check fails saying so.
#[test]
fn crun_is_installed_from_the_bundles_debs_and_runs_a_container() {
    let lab = LabGuard::up(1);
    let h = &lab.hosts[0];
    let spec = lab.spec_with("crun", |c| {
        c["spec"]["containerRuntime"]["runtimes"] =
            serde_yaml::to_value(["runc", "crun"]).expect("yaml");
        c["spec"]["containerRuntime"]["containerd"]["version"] = "1.6".into();
    });
    let out = apply(&lab, &spec, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let state = lab.ssh_ok(
        h,
        "dpkg-query -W -f '${Version}\\n' crun libyajl2; \
         grep -c 'BinaryName = \"/usr/bin/crun\"' /etc/containerd/config.toml; \
         r=$(ls -d /var/lib/kubegrid/state/rootfs/*/ | head -1) && \
         ctr run --rm --runtime io.containerd.runc.v2 --runc-binary /usr/bin/crun \
         --rootfs \"$r\" e2e-crun /bin/busybox echo hello-from-crun",
    );
    let lines: Vec<&str> = state.lines().collect();
    assert!(lines[0].starts_with("1.8.1"), "crun deb: {state}");
    assert!(lines[1].starts_with("2.1.0"), "libyajl2 deb: {state}");
    assert_eq!(lines[2], "1", "crun handler: {state}");
    assert_eq!(lines[3], "hello-from-crun", "{state}");
    assert_eq!(
        total_changed(&json(&apply(&lab, &spec, &[]))),
        0,
        "converged"
    );

    // containerd 2.1: crun 1.8 refuses its OCI specs; the apply fails on the check.
    let newer = lab.spec_with("crun-2.1", |c| {
        c["spec"]["containerRuntime"]["runtimes"] =
            serde_yaml::to_value(["runc", "crun"]).expect("yaml");
    });
    let out = apply(&lab, &newer, &[]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let text = describe(&out);
    assert!(
        text.contains("crun runs a container") && text.contains("unknown version specified"),
        "{text}"
    );
}
