//! `kubegrid lab` hosts reboot like machines: `systemctl reboot` inside a host brings it back
//! with its disk, address, identity and host key and a new boot id; `systemctl poweroff`
//! leaves it off until `lab start`.

use std::{
    process::Output,
    thread,
    time::{Duration, Instant},
};

use kubegrid_e2e::{Host, LabGuard, describe, nouveau_standin};

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

/// Runs `cmd` on `host` with the lab's own known_hosts and strict host key checking, so a
/// host that came back with another key fails the login.
fn ssh_strict(lab: &LabGuard, host: &Host, cmd: &str) -> Output {
    std::process::Command::new("ssh")
        .arg("-i")
        .arg(&lab.key)
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.state_dir.join("ssh/known_hosts").display()
        ))
        .args(["-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"])
        .arg(format!("root@{}", host.address))
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ssh")
}

/// Waits until `host` answers SSH with a boot id other than `old`, and returns it.
pub fn wait_new_boot_id(lab: &LabGuard, host: &Host, old: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = ssh_strict(lab, host, BOOT_ID);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !id.is_empty() && id != old {
            return id;
        }
        let last = if out.status.success() {
            format!("still boot id {id}")
        } else {
            describe(&out)
        };
        assert!(
            Instant::now() < deadline,
            "{} did not answer with a new boot id within {limit:?}; last: {last}",
            host.name
        );
        // ssh's own connect timeout paces the attempts while the host is down; this only
        // spaces out the ones a host that is shutting down answers at once.
        thread::sleep(Duration::from_millis(200));
    }
}

fn host_state(lab: &LabGuard, name: &str) -> String {
    let listing = lab.list();
    listing["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .map(|h| h["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn a_rebooted_host_comes_back_as_itself_and_a_powered_off_host_stays_off() {
    let lab = LabGuard::up(2);
    let (h1, h2) = (lab.host("lab-1"), lab.host("lab-2"));
    let identity = "hostname; cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub; \
                    ip -4 -o addr show eth0 | awk '{print $4}'; cat /var/lib/e2e-marker";
    lab.ssh_ok(h1, "echo kept > /var/lib/e2e-marker");
    let before = lab.ssh_ok(h1, identity);
    let boot1 = lab.ssh_ok(h1, BOOT_ID);
    let other_boot = lab.ssh_ok(h2, BOOT_ID);
    let pid = lab.list()["hosts"][0]["pid"].clone();

    // The connection drops as the host goes down: any exit status is fine here.
    let _ = lab.ssh(h1, "systemctl reboot");
    let boot2 = wait_new_boot_id(&lab, h1, &boot1, Duration::from_secs(120));
    assert_eq!(
        lab.ssh_ok(h1, identity),
        before,
        "disk, identity, address and host key must survive a reboot"
    );
    assert_eq!(
        lab.list()["hosts"][0]["pid"],
        pid,
        "the same supervisor runs it"
    );
    assert_eq!(host_state(&lab, "lab-1"), "running");
    // Still on the bridge: it reaches the other host, which did not reboot.
    lab.ssh_ok(h1, &format!("ping -c1 -W2 {} >/dev/null", h2.address));
    assert_eq!(lab.ssh_ok(h2, BOOT_ID), other_boot);
    let state = lab.ssh_ok(h1, "systemctl is-system-running --wait || true");
    assert_eq!(state, "running", "the rebooted host's systemd is healthy");

    // A second reboot works too (the supervisor keeps going).
    let _ = lab.ssh(h1, "systemctl reboot");
    let boot3 = wait_new_boot_id(&lab, h1, &boot2, Duration::from_secs(120));
    assert_ne!(boot3, boot1);

    // A poweroff is final: the supervisor exits ("stopped" means its process is gone), so
    // nothing is left to start the host again.
    let _ = lab.ssh(h1, "systemctl poweroff");
    let deadline = Instant::now() + Duration::from_secs(60);
    while host_state(&lab, "lab-1") != "stopped" {
        assert!(
            Instant::now() < deadline,
            "lab-1 still runs 60 s after poweroff"
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lab.ssh(h1, "true").status.code(), Some(255));

    let out = lab.kubegrid(&["start", "lab-1"]);
    assert!(out.status.success(), "{}", describe(&out));
    let boot4 = wait_new_boot_id(&lab, h1, &boot3, Duration::from_secs(60));
    assert_ne!(boot4, boot1);
    assert_eq!(lab.ssh_ok(h1, identity), before);
}

#[test]
fn the_nouveau_stand_in_looks_loaded_until_blacklisted_and_rebooted() {
    let lab = LabGuard::up(1);
    let h = &lab.hosts[0];
    assert!(!nouveau_standin::nouveau_loaded(&lab, h));
    nouveau_standin::install(&lab, h);
    assert!(nouveau_standin::nouveau_loaded(&lab, h));

    // Without the blacklist it is "loaded" again at the next boot.
    let boot1 = lab.ssh_ok(h, BOOT_ID);
    let _ = lab.ssh(h, "systemctl reboot");
    let boot2 = wait_new_boot_id(&lab, h, &boot1, Duration::from_secs(120));
    assert!(nouveau_standin::nouveau_loaded(&lab, h));

    // Blacklisted: still loaded until the reboot, gone after it, as on a GPU machine.
    lab.ssh_ok(
        h,
        &format!("echo 'blacklist nouveau' > {}", nouveau_standin::BLACKLIST),
    );
    assert!(nouveau_standin::nouveau_loaded(&lab, h));
    let _ = lab.ssh(h, "systemctl reboot");
    wait_new_boot_id(&lab, h, &boot2, Duration::from_secs(120));
    assert!(!nouveau_standin::nouveau_loaded(&lab, h));
}
