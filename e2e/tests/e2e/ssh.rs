//! SSH as users meet it: RSA, ECDSA and passphrase-protected keys, password auth, sudo and a
//! bastion, exercised with read-only `kubegrid plan` runs.

use std::{fs, path::Path, process::Command};

use kubegrid_e2e::{LabGuard, describe};
use serde_json::Value;

const PASSPHRASE: &str = "e2e-key-passphrase";
const PASSWORD: &str = "e2e-Pw-9f3c1a";

fn keygen(dir: &Path, name: &str, args: &[&str], passphrase: &str) -> String {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-C", name, "-N", passphrase, "-f"])
        .arg(&path)
        .args(args)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", describe(&out));
    path.to_str().expect("utf-8").to_string()
}

fn authorize(lab: &LabGuard, host: &str, user: &str, key: &str) {
    let public = fs::read_to_string(format!("{key}.pub")).expect("public key");
    lab.ssh_ok(
        lab.host(host),
        &format!(
            "d=~{user}/.ssh; mkdir -p $d && echo '{}' >> $d/authorized_keys && chown -R {user}: $d",
            public.trim()
        ),
    );
}

#[test]
fn keys_of_every_kind_password_sudo_and_a_bastion_all_connect() {
    let lab = LabGuard::up(4);
    let keys = lab.state_dir.join("e2e-keys");
    fs::create_dir_all(&keys).expect("key dir");
    let rsa = keygen(&keys, "rsa", &["-t", "rsa", "-b", "2048"], "");
    let ecdsa = keygen(&keys, "ecdsa", &["-t", "ecdsa", "-b", "256"], "");
    let sealed = keygen(&keys, "sealed", &["-t", "ed25519"], PASSPHRASE);
    authorize(&lab, "lab-1", "kube", &rsa);
    authorize(&lab, "lab-2", "kube", &ecdsa);
    authorize(&lab, "lab-4", "kube", &sealed);
    // lab-3: a user with only a password (the lab key is not authorised for it) and sudo.
    lab.ssh_ok(
        lab.host("lab-3"),
        &format!(
            "useradd -m -s /bin/bash pwuser && echo 'pwuser:{PASSWORD}' | chpasswd && \
             echo 'pwuser ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/pwuser && \
             printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/10-e2e-password.conf && systemctl reload ssh"
        ),
    );
    // lab-2 refuses SSH from this machine, so only the bastion (lab-1) can reach it.
    let gateway = lab.subnet.replace(".0/24", ".1");
    lab.ssh_ok(
        lab.host("lab-2"),
        &format!("printf 'DenyUsers *@{gateway}\\n' > /etc/ssh/sshd_config.d/10-e2e-bastion.conf && systemctl reload ssh"),
    );
    assert!(
        !lab.ssh(lab.host("lab-2"), "true").status.success(),
        "lab-2 must refuse direct SSH now"
    );

    let text = fs::read_to_string(lab.spec()).expect("spec");
    let mut docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("doc"))
        .collect();
    let lab_key = lab.key.to_str().expect("utf-8").to_string();
    let bastion = lab.host("lab-1").address.clone();
    for d in &mut docs {
        let ssh = match d["metadata"]["name"].as_str() {
            Some("lab-1") => format!("{{user: kube, privateKeyFile: {rsa}}}"),
            Some("lab-2") => format!(
                "{{user: kube, privateKeyFile: {ecdsa}, bastion: {{address: {bastion}, user: root, privateKeyFile: {lab_key}}}}}"
            ),
            Some("lab-3") => "{user: pwuser, passwordEnv: KG_E2E_PASSWORD}".to_string(),
            Some("lab-4") => format!("{{user: kube, privateKeyFile: {sealed}}}"),
            _ => continue,
        };
        d["spec"]["ssh"] = serde_yaml::from_str(&ssh).expect("yaml");
    }
    let spec = lab.state_dir.join("specs-e2e-ssh.yaml");
    let docs: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("yaml"))
        .collect();
    fs::write(&spec, docs.join("---\n")).expect("write spec");
    let spec = spec.to_str().expect("utf-8");

    let plan = |passphrase: Option<&str>| {
        let mut cmd = lab.command(&["plan", "-f", spec, "-o", "json"]);
        cmd.env("KG_E2E_PASSWORD", PASSWORD)
            .env_remove("KUBEGRID_SSH_PASSPHRASE");
        if let Some(p) = passphrase {
            cmd.env("KUBEGRID_SSH_PASSPHRASE", p);
        }
        cmd.output().expect("run plan")
    };

    let out = plan(Some(PASSPHRASE));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    for h in report["hosts"].as_array().expect("hosts") {
        assert_eq!(h["ok"], true, "{h}");
        // The budget: at most two SSH round trips per host per phase.
        for (phase, n) in h["roundTrips"].as_object().expect("roundTrips") {
            assert!(
                n.as_u64().unwrap() <= 2,
                "{} made {n} round trips in {phase}",
                h["name"]
            );
        }
    }

    // Without its passphrase the sealed key cannot be used: refused before any connection
    // (exit 2), naming the host and what to set.
    let out = plan(None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let message = report["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("lab-4: ") && message.contains("KUBEGRID_SSH_PASSPHRASE"),
        "{report}"
    );

    // Secrets never reach the journal (its WAL included).
    for file in [lab.journal(), lab.journal().with_extension("db-wal")] {
        let bytes = fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(PASSWORD) && !text.contains(PASSPHRASE),
            "{}",
            file.display()
        );
    }
}
