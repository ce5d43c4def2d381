//! The `kubegrid-agent run` binary end to end: a plan and blobs on stdin, events on stdout,
//! the exit code. Only modules that need no systemd or package manager run here; those are
//! exercised on lab hosts.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    net::TcpListener,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use kubegrid_agent::{
    facts::TcpProbe,
    fsutil::sha256_hex,
    protocol::{
        Action, ArchiveArgs, BinaryArgs, BlobHeader, CommandArgs, Event, FactsArgs, FileArgs,
        PROTOCOL_VERSION, Plan, Task, TaskStatus,
    },
};

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn plan(&self, tasks: Vec<Task>) -> Plan {
        Plan {
            protocol: PROTOCOL_VERSION,
            phase: "test".into(),
            check_mode: false,
            store_dir: Some(self.path("store")),
            state_dir: Some(self.path("state")),
            blobs: Vec::new(),
            tasks,
        }
    }
}

/// Runs the agent with `stdin`; returns its events and exit code.
fn agent(stdin: &[u8]) -> (Vec<Event>, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubegrid-agent"))
        .arg("run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The agent may stop reading early (a fatal plan); a broken pipe is then expected.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    let events = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (events, out.status.code().unwrap())
}

fn run_plan(plan: &Plan, blobs: &[&[u8]]) -> (Vec<Event>, i32) {
    let mut input = serde_json::to_vec(plan).unwrap();
    input.push(b'\n');
    for b in blobs {
        input.extend_from_slice(b);
    }
    agent(&input)
}

fn finished(events: &[Event]) -> Vec<(String, TaskStatus, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskFinished {
                name,
                status,
                message,
                ..
            } => Some((name.clone(), *status, message.clone())),
            _ => None,
        })
        .collect()
}

fn task(name: &str, action: Action) -> Task {
    Task {
        name: name.into(),
        action,
        always: false,
    }
}

fn file_task(path: &Path, content: &str) -> Task {
    task(
        "config",
        Action::File(FileArgs {
            path: path.to_path_buf(),
            content: content.into(),
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
            backup: true,
        }),
    )
}

fn command_task(name: &str, script: &str, creates: Option<PathBuf>) -> Task {
    task(
        name,
        Action::Command(CommandArgs {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            creates,
            unless: None,
            env: BTreeMap::new(),
            redact: Vec::new(),
            watch: Vec::new(),
        }),
    )
}

#[test]
fn runs_a_plan_then_converges() {
    let host = Host::new();
    let conf = host.path("etc/app.conf");
    let marker = host.path("marker");
    let plan = host.plan(vec![
        task("facts", Action::Facts(FactsArgs::default())),
        file_task(&conf, "a = 1\n"),
        command_task(
            "init",
            &format!("touch {}", marker.display()),
            Some(marker.clone()),
        ),
    ]);
    let (events, code) = run_plan(&plan, &[]);
    assert_eq!(code, 0);
    assert!(matches!(&events[0], Event::Hello { protocol, .. } if *protocol == PROTOCOL_VERSION));
    assert!(matches!(&events[1], Event::TaskStarted { index: 0, .. }));
    assert!(matches!(&events[2], Event::Facts { index: 0, facts } if !facts.kernel.is_empty()));
    let statuses: Vec<TaskStatus> = finished(&events).into_iter().map(|f| f.1).collect();
    assert_eq!(
        statuses,
        vec![
            TaskStatus::Unchanged,
            TaskStatus::Changed,
            TaskStatus::Changed
        ]
    );
    assert_eq!(
        events.last(),
        Some(&Event::PlanFinished {
            ok: true,
            changed: 2
        })
    );
    assert_eq!(fs::read_to_string(&conf).unwrap(), "a = 1\n");
    assert!(marker.exists());

    let (again, code) = run_plan(&plan, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        again.last(),
        Some(&Event::PlanFinished {
            ok: true,
            changed: 0
        })
    );
}

#[test]
fn check_mode_says_would_and_changes_nothing() {
    let host = Host::new();
    let conf = host.path("etc/app.conf");
    let mut plan = host.plan(vec![file_task(&conf, "a = 1\n")]);
    plan.check_mode = true;
    let (events, code) = run_plan(&plan, &[]);
    assert_eq!(code, 0);
    let f = finished(&events);
    assert_eq!(f[0].1, TaskStatus::Changed);
    assert!(
        f[0].2
            .starts_with(&format!("would write {}", conf.display())),
        "{}",
        f[0].2
    );
    assert!(!conf.exists());
}

#[test]
fn a_failed_task_stops_the_plan() {
    let host = Host::new();
    let plan = host.plan(vec![
        command_task("fails", "echo why >&2; exit 3", None),
        command_task("never", "true", None),
    ]);
    let (events, code) = run_plan(&plan, &[]);
    assert_eq!(code, 1);
    let failed = events
        .iter()
        .find_map(|e| match e {
            Event::TaskFinished {
                status: TaskStatus::Failed,
                message,
                output,
                ..
            } => Some((message.clone(), output.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        failed.0,
        "`sh -c 'echo why >&2; exit 3'` exited with code 3"
    );
    assert_eq!(failed.1, "why\n");
    assert_eq!(finished(&events).len(), 1, "the second task never ran");
    assert_eq!(
        events.last(),
        Some(&Event::PlanFinished {
            ok: false,
            changed: 0
        })
    );
}

#[test]
fn a_cleanup_marked_always_runs_after_a_failure_and_the_plan_still_fails() {
    let host = Host::new();
    let secret = host.path("secret.yaml");
    fs::write(&secret, "token: abc\n").unwrap();
    let skipped = host.path("skipped");
    let plan = host.plan(vec![
        command_task("fails", "exit 3", None),
        command_task("skipped", &format!("touch {}", skipped.display()), None),
        Task {
            always: true,
            ..command_task("cleanup", &format!("rm -f {}", secret.display()), None)
        },
    ]);
    let (events, code) = run_plan(&plan, &[]);
    assert_eq!(code, 1, "{events:?}");
    let done = finished(&events);
    let names: Vec<&str> = done.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["fails", "cleanup"], "{events:?}");
    assert_eq!(done[1].1, TaskStatus::Changed);
    assert!(!secret.exists(), "the cleanup removed the secret");
    assert!(
        !skipped.exists(),
        "an ordinary task after the failure never ran"
    );
    assert_eq!(
        events.last(),
        Some(&Event::PlanFinished {
            ok: false,
            changed: 1
        })
    );
}

#[test]
fn stores_verified_blobs() {
    let host = Host::new();
    let (a, b) = (b"first blob".as_slice(), b"second".as_slice());
    let mut plan = host.plan(vec![]);
    plan.blobs = [a, b]
        .iter()
        .map(|bytes| BlobHeader::stdin(sha256_hex(bytes), bytes.len() as u64))
        .collect();
    let (events, code) = run_plan(&plan, &[a, b]);
    assert_eq!(code, 0);
    let stored: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::BlobStored { sha256, .. } => Some(sha256.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(stored, vec![sha256_hex(a), sha256_hex(b)]);
    assert_eq!(fs::read(host.path("store").join(sha256_hex(a))).unwrap(), a);
    assert_eq!(fs::read(host.path("store").join(sha256_hex(b))).unwrap(), b);
    assert_eq!(
        fs::read_dir(host.path("store")).unwrap().count(),
        3,
        "the two blobs and the partial directory"
    );
    assert_eq!(
        fs::read_dir(host.path("store/.partial")).unwrap().count(),
        0,
        "no partial file is left"
    );
}

#[test]
fn a_cut_stdin_stream_keeps_its_bytes_and_the_engine_resumes_from_an_offset() {
    let host = Host::new();
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let sha = sha256_hex(&blob);
    let mut plan = host.plan(vec![]);
    plan.blobs = vec![BlobHeader::stdin(sha.clone(), blob.len() as u64)];
    // The stream ends after 100 000 bytes, as when the SSH connection drops.
    let (events, code) = run_plan(&plan, &[&blob[..100_000]]);
    assert_eq!(code, 2, "{events:?}");
    assert!(
        matches!(events.last(), Some(Event::Fatal { message }) if message.contains("after 100000 of 300000 bytes")),
        "{events:?}"
    );
    let facts =
        kubegrid_agent::facts::gather(&host.path("root"), &Default::default(), &host.path("store"));
    assert_eq!(facts.partials, BTreeMap::from([(sha.clone(), 100_000)]));
    assert!(!facts.store.contains(&sha));

    plan.blobs[0].offset = 100_000;
    let (events, code) = run_plan(&plan, &[&blob[100_000..]]);
    assert_eq!(code, 0, "{events:?}");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::BlobStored {
            resumed_from: 100_000,
            size: 300_000,
            ..
        }
    )));
    assert_eq!(fs::read(host.path("store").join(&sha)).unwrap(), blob);

    // An offset beyond what the partial file holds is refused.
    let other = sha256_hex(b"other");
    plan.blobs = vec![BlobHeader {
        offset: 3,
        ..BlobHeader::stdin(other, 5)
    }];
    let (events, code) = run_plan(&plan, &[b"er"]);
    assert_eq!(code, 2);
    assert!(
        matches!(events.last(), Some(Event::Fatal { message }) if message.contains("holds 0 bytes")),
        "{events:?}"
    );
}

#[test]
fn a_blob_that_does_not_match_is_fatal_and_not_stored() {
    let host = Host::new();
    let mut plan = host.plan(vec![command_task("never", "true", None)]);
    plan.blobs = vec![BlobHeader::stdin(sha256_hex(b"expected"), 8)];
    let (events, code) = run_plan(&plan, &[b"tampered"]);
    assert_eq!(code, 2);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(&events[1], Event::BlobStarted { have: 0, .. }));
    let Event::Fatal { message } = &events[2] else {
        panic!("{events:?}")
    };
    assert!(message.contains("nothing was stored"), "{message}");
    assert!(
        message.contains(&sha256_hex(b"expected")) && message.contains(&sha256_hex(b"tampered")),
        "{message}"
    );
    assert!(!host.path("store").join(sha256_hex(b"expected")).exists());
    assert_eq!(
        fs::read_dir(host.path("store/.partial")).unwrap().count(),
        0
    );
}

#[test]
fn refuses_another_protocol_and_bad_plans() {
    let (events, code) = agent(b"{\"protocol\":99,\"phase\":\"x\",\"tasks\":[],\"newField\":1}\n");
    assert_eq!(code, 2);
    assert_eq!(
        events[1],
        Event::Fatal {
            message: format!(
                "plan protocol 99, this agent speaks {PROTOCOL_VERSION}; hint: the engine must upload its own kubegrid-agent build"
            )
        }
    );
    let (events, code) = agent(b"not json\n");
    assert_eq!(code, 2);
    assert!(
        matches!(&events[1], Event::Fatal { message } if message.starts_with("the plan is not valid"))
    );
    let (events, code) = agent(b"");
    assert_eq!(code, 2);
    assert!(
        matches!(&events[1], Event::Fatal { message } if message.starts_with("stdin ended before a plan line"))
    );
}

/// A tar.gz holding `files`, made with the system tar in a scratch directory under `host`.
fn tar_gz(host: &Host, files: &[(&str, &str)]) -> Vec<u8> {
    let src = host.path("tar-src");
    for (rel, content) in files {
        let path = src.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    let out = host.path("archive.tgz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    fs::read(out).unwrap()
}

#[test]
fn installs_binaries_and_archives_from_blobs_and_redacts_secrets() {
    let host = Host::new();
    let kubeadm = b"#!/bin/sh\necho kubeadm v1.31.0\n".as_slice();
    let cni = tar_gz(&host, &[("bridge", "bridge"), ("host-local", "ipam")]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().to_string();
    let token = "abcdef.0123456789abcdef";
    let (bin_path, cni_dir, marker) = (
        host.path("usr/bin/kubeadm"),
        host.path("opt/cni/bin"),
        host.path("joined"),
    );
    let mut plan = host.plan(vec![
        task(
            "facts",
            Action::Facts(FactsArgs {
                tcp_probes: vec![open.clone()],
                ..FactsArgs::default()
            }),
        ),
        task(
            "kubeadm",
            Action::Binary(BinaryArgs {
                path: bin_path.clone(),
                sha256: sha256_hex(kubeadm),
                mode: 0o755,
            }),
        ),
        task(
            "cni plugins",
            Action::Archive(ArchiveArgs {
                sha256: sha256_hex(&cni),
                dest: cni_dir.clone(),
            }),
        ),
        task(
            "join",
            Action::Command(CommandArgs {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo using token {token}; touch {}", marker.display()),
                ],
                creates: Some(marker.clone()),
                unless: None,
                env: BTreeMap::new(),
                redact: vec![token.into()],
                watch: Vec::new(),
            }),
        ),
    ]);
    plan.blobs = [kubeadm, cni.as_slice()]
        .iter()
        .map(|bytes| BlobHeader::stdin(sha256_hex(bytes), bytes.len() as u64))
        .collect();
    let (events, code) = run_plan(&plan, &[kubeadm, &cni]);
    assert_eq!(code, 0, "{events:?}");
    let facts = events
        .iter()
        .find_map(|e| match e {
            Event::Facts { facts, .. } => Some(facts),
            _ => None,
        })
        .unwrap();
    assert_eq!(facts.tcp_probes, BTreeMap::from([(open, TcpProbe::Open)]));
    assert!(facts.interfaces.iter().all(|i| i.name != "lo"));
    let statuses: Vec<TaskStatus> = finished(&events).into_iter().map(|f| f.1).collect();
    assert_eq!(
        statuses,
        vec![
            TaskStatus::Unchanged,
            TaskStatus::Changed,
            TaskStatus::Changed,
            TaskStatus::Changed
        ]
    );
    let line = String::from_utf8(serde_json::to_vec(&events).unwrap()).unwrap();
    assert!(!line.contains(token), "the token leaked: {line}");
    assert!(line.contains("using token [redacted]"), "{line}");
    assert_eq!(fs::read(&bin_path).unwrap(), kubeadm);
    assert_eq!(fs::metadata(&bin_path).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_to_string(cni_dir.join("host-local")).unwrap(),
        "ipam"
    );

    // Again, with the blobs already in the store and nothing sent.
    plan.blobs.clear();
    let (again, code) = run_plan(&plan, &[]);
    assert_eq!(code, 0, "{again:?}");
    assert_eq!(
        again.last(),
        Some(&Event::PlanFinished {
            ok: true,
            changed: 0
        })
    );
}
