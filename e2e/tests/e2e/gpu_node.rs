//! A GPU Node in one real `kubegrid apply` on a 3-Node lab with `runtimes: [runc, gvisor,
//! nvidia]` (a spec with `gpu` must list nvidia, the GPU pods' handler) and `spec.gpu` (driver
//! packages, branch 535). lab-3 carries the e2e GPU stand-in
//! (e2e/src/gpu_standin.rs: an NVIDIA L4 on its PCI bus, nouveau loaded until blacklisted and
//! rebooted, kernel headers that cannot build); everything kubegrid does is real:
//!
//! - the facts find the GPU, so `Node.spec.gpu: auto` makes lab-3 a GPU Node and no other;
//! - gVisor containers run through containerd on every host (the runtime phase's check, and
//!   one more `ctr run` here);
//! - lab-3 gets the nouveau blacklist, reboots inside the apply (a new boot id, in the report),
//!   and the apply goes on there on the new boot: nouveau is gone;
//! - Debian bookworm non-free's NVIDIA driver packages install from the bundle until the
//!   driver's DKMS module build, which fails against the stand-in headers: the apply stops
//!   there on lab-3 (exit 1), naming the phase and dkms's error. No GPU means nothing past the
//!   module build can be shown in the lab (docs/gpu.md says what ran where).

use kubegrid_e2e::{LabGuard, describe, gpu_standin, json, nouveau_standin};
use serde_json::Value;

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {report}"))
}

/// The phases `host` ran tasks in, in order, without repeats.
fn phases(host: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in host["tasks"].as_array().expect("tasks") {
        let p = t["phase"].as_str().expect("phase").to_string();
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_gpu_node_reboots_inside_the_apply_and_stops_at_the_dkms_module_build() {
    let lab = LabGuard::up(3);
    let gpu = lab.host("lab-3");
    gpu_standin::install(&lab, gpu);
    assert!(nouveau_standin::nouveau_loaded(&lab, gpu));
    let boots: Vec<String> = lab.hosts.iter().map(|h| lab.ssh_ok(h, BOOT_ID)).collect();

    let spec = lab.spec_with("gpu", |c| {
        c["spec"]["containerRuntime"]["runtimes"] =
            serde_yaml::to_value(["runc", "gvisor", "nvidia"]).expect("yaml");
        c["spec"]["gpu"] = serde_yaml::to_value(serde_json::json!({
            "driver": {"source": "packages", "branch": "535"},
            "devicePlugin": "none",
        }))
        .expect("yaml");
    });
    eprintln!(
        "gpu e2e: lab-3's NVIDIA L4, its loaded nouveau and its kernel headers are TEST STAND-INS (e2e/src/gpu_standin.rs); the driver packages are Debian bookworm non-free's; the toolkit packages in the bundle are TEST STAND-INS and are not reached"
    );
    let out = lab.apply_json(&spec, &["--skip-check", "cluster-api"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);

    // lab-3 alone is a GPU Node: only it ran the GPU phases, and it stopped in the driver's.
    let h3 = host(&report, "lab-3");
    assert_eq!(h3["ok"], false, "{h3}");
    assert_eq!(h3["failedPhase"], "gpu-driver", "{h3}");
    let ran = phases(h3);
    for p in [
        "container-runtime",
        "gpu-prepare",
        "gpu-reboot",
        "gpu-driver",
    ] {
        assert!(ran.iter().any(|r| r == p), "lab-3 ran {ran:?}, not {p}");
    }
    for name in ["lab-1", "lab-2"] {
        let h = host(&report, name);
        assert!(
            phases(h).iter().all(|p| !p.starts_with("gpu-")),
            "{name} is no GPU Node but ran {:?}",
            phases(h)
        );
        assert!(h.get("reboot").is_none(), "{name} rebooted: {h}");
    }

    // Every listed handler runs somewhere: nvidia on the GPU Node only (its containerd got the
    // handler in the runtime phase, before the driver), gVisor everywhere.
    let rc = report["kubernetes"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "runtime-classes")
        .unwrap_or_else(|| panic!("no runtime-classes check: {report}"));
    assert_eq!(rc["ok"], true, "{rc}");
    assert_eq!(
        rc["detail"],
        "every RuntimeClass has Nodes: gvisor on lab-1, lab-2, lab-3; nvidia on lab-3",
        "{rc}"
    );

    // The reboot happened inside the apply, and the driver phase ran on the new boot.
    let now = lab.ssh_ok(gpu, BOOT_ID);
    assert_ne!(now, boots[2], "lab-3 did not reboot");
    assert_eq!(h3["reboot"]["oldBootId"], boots[2].as_str(), "{h3}");
    assert_eq!(h3["reboot"]["newBootId"], now.as_str(), "{h3}");
    for (h, boot) in lab.hosts.iter().zip(&boots).take(2) {
        assert_eq!(&lab.ssh_ok(h, BOOT_ID), boot, "{} rebooted", h.name);
    }
    lab.ssh_ok(gpu, &format!("test -s {}", nouveau_standin::BLACKLIST));
    assert!(
        !nouveau_standin::nouveau_loaded(&lab, gpu),
        "nouveau still loaded after the reboot"
    );

    // Debian's driver packages went in up to the DKMS build, which failed at the module build
    // against the stand-in headers; dkms says so and its make log shows the stand-in's refusal.
    // The report names the failed task; the journal keeps dpkg's output.
    assert!(
        h3["error"]
            .as_str()
            .is_some_and(|e| e.contains("driver packages") && e.contains("dpkg -i")),
        "{h3}"
    );
    let op = report["operation"]
        .as_i64()
        .expect("operation id")
        .to_string();
    let logs = json(&lab.run(&["logs", &op, "--host", "lab-3", "-o", "json"]));
    let output = logs["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["phase"] == "gpu-driver" && e["task"] == "driver packages")
        .and_then(|e| e["output"].as_str())
        .unwrap_or_else(|| panic!("no output of the driver packages task: {logs}"))
        .to_string();
    assert!(
        output.contains("Bad return status for module build")
            && output.contains("error processing package nvidia-kernel-dkms"),
        "{output}"
    );
    let make_log = lab.ssh_ok(gpu, "cat /var/lib/dkms/nvidia-current/*/build/make.log");
    assert!(
        make_log.contains("TEST STAND-IN kernel headers"),
        "the module build did not reach the stand-in headers: {make_log}"
    );
    let statuses = lab.ssh_ok(
        gpu,
        "dpkg-query -W -f '${Package} ${Version} ${Status}\\n' nvidia-smi libcuda1 nvidia-kernel-dkms",
    );
    assert!(
        statuses.lines().all(|l| l.contains(" 535.")),
        "driver packages not unpacked at 535: {statuses}"
    );
    assert!(
        statuses
            .lines()
            .any(|l| l.starts_with("nvidia-kernel-dkms ") && !l.ends_with("install ok installed")),
        "the DKMS package cannot be configured without a module: {statuses}"
    );

    // gVisor ran through containerd everywhere: the runtime phase's check passed on every host,
    // and a container run here with ctr reports gVisor's kernel on the GPU Node, as the
    // non-root user (65534) the `gvisor-pod` cluster check's pod runs as.
    for name in ["lab-1", "lab-2", "lab-3"] {
        let h = host(&report, name);
        let gvisor = h["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .filter(|t| t["phase"] == "container-runtime")
            .find(|t| t["task"] == "gVisor runs a container")
            .unwrap_or_else(|| panic!("{name}: no gVisor check in {h}"));
        assert_ne!(gvisor["status"], "failed", "{name}: {gvisor}");
    }
    let dmesg = lab.ssh_ok(
        gpu,
        "r=$(ls -d /var/lib/kubegrid/state/rootfs/*/ | head -1) && \
         ctr run --rm --user 65534:65534 --runtime io.containerd.runc.v2 \
         --runc-binary /usr/local/lib/kubegrid/runsc-containerd \
         --rootfs \"$r\" e2e-gpu-gvisor /bin/busybox dmesg",
    );
    assert!(dmesg.contains("Starting gVisor"), "{dmesg}");

    // A re-run does not reboot again: the blacklist holds, nouveau is gone, and the journaled
    // reboot is not repeated; it stops at the same build.
    let out = lab.apply_json(&spec, &["--skip-check", "cluster-api"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(host(&json(&out), "lab-3")["failedPhase"], "gpu-driver");
    assert_eq!(
        lab.ssh_ok(gpu, BOOT_ID),
        now,
        "lab-3 rebooted a second time"
    );
}
