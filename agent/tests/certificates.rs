//! Certificates end to end through the `kubegrid-agent run` binary: facts read them, the
//! certificates module replaces them, and no private key ever reaches stdout.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use kubegrid_agent::protocol::{
    Action, CertificatesArgs, Event, FactsArgs, PROTOCOL_VERSION, Plan, Task, TaskStatus,
};

fn cert_and_key(name: &str) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

fn task(name: &str, action: Action) -> Task {
    Task {
        name: name.into(),
        action,
        always: false,
    }
}

/// Runs `plan`; returns stdout as text and the parsed events.
fn run(plan: &Plan) -> (String, Vec<Event>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubegrid-agent"))
        .arg("run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = serde_json::to_vec(plan).unwrap();
    line.push(b'\n');
    child.stdin.take().unwrap().write_all(&line).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (text, events)
}

#[test]
fn facts_read_and_the_module_renews_a_combined_file_without_leaking_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let (old, key) = cert_and_key("kubelet");
    let (new, _) = cert_and_key("kubelet");
    let file = pki.join("kubelet-client-current.pem");
    std::fs::write(&file, format!("{old}{key}")).unwrap();
    let facts = || {
        task(
            "read certificates",
            Action::Facts(FactsArgs {
                certificates: vec![pki.clone()],
                ..FactsArgs::default()
            }),
        )
    };
    let renew = Action::Certificates(CertificatesArgs {
        path: file.clone(),
        certificate: Some(new.clone()),
        ca: None,
    });
    let wire = serde_json::to_value(&renew).unwrap();
    assert_eq!(wire["module"], "certificates");
    assert_eq!(wire["path"], file.to_str().unwrap());
    let plan = Plan {
        protocol: PROTOCOL_VERSION,
        phase: "certs".into(),
        check_mode: false,
        store_dir: Some(dir.path().join("store")),
        state_dir: Some(dir.path().join("state")),
        blobs: Vec::new(),
        tasks: vec![facts(), task("renew", renew), facts()],
    };
    let (stdout, events) = run(&plan);
    let seen: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Facts { facts, .. } => Some(
                facts.certificates[file.to_str().unwrap()].certificates[0]
                    .pem
                    .clone(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(seen, vec![old, new.clone()]);
    let statuses: Vec<TaskStatus> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskFinished { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            TaskStatus::Unchanged,
            TaskStatus::Changed,
            TaskStatus::Unchanged
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{new}{key}")
    );
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!stdout.contains(line), "the key reached stdout");
    }
    assert!(!stdout.contains("PRIVATE KEY"));
}
