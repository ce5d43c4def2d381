//! A corpus of bad specs run through the real `kubegrid plan`: each is refused before any
//! host is contacted, with exit 2 and a message that names the file and line, the resource,
//! the field, what was seen and what was expected, without Rust jargon, raw control
//! characters or more than a short excerpt of the input. Addresses are in TEST-NET-1 and
//! never contacted.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

/// A valid spec in block style, so field lines can be checked.
pub(crate) const BASE: &str = "\
apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata:
  name: lab
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint:
    address: 192.0.2.10
    port: 6443
  network:
    podCIDR: 10.244.0.0/16
    serviceCIDR: 10.96.0.0/12
  containerRuntime:
    containerd:
      version: \"1.7\"
  bundle:
    source: bundle
  ssh:
    user: root
    port: 22
    passwordEnv: KUBEGRID_CORPUS_PASSWORD
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata:
  name: n1
spec:
  clusterName: lab
  address: 192.0.2.11
  roles: [control-plane, etcd, worker]
  labels:
    example.com/pool: gpu
  taints:
  - key: dedicated
    value: gpu
    effect: NoSchedule
";

/// One bad input: edits to [`BASE`] (each `from` occurs once), or the whole file's bytes.
pub(crate) struct Case {
    name: &'static str,
    edits: Vec<(&'static str, String)>,
    raw: Option<Vec<u8>>,
    /// Substrings stderr must hold.
    want: Vec<String>,
    /// stderr must point at the first line that holds this text of the edited spec.
    line_of: Option<String>,
}

pub(crate) fn case(
    name: &'static str,
    from: &'static str,
    to: impl Into<String>,
    want: &[&str],
) -> Case {
    Case {
        name,
        edits: vec![(from, to.into())],
        raw: None,
        want: want.iter().map(|s| s.to_string()).collect(),
        line_of: None,
    }
}

pub(crate) fn at_line(mut c: Case, text: &str) -> Case {
    c.line_of = Some(text.to_string());
    c
}

pub(crate) fn raw(name: &'static str, bytes: Vec<u8>, want: &[&str]) -> Case {
    Case {
        name,
        edits: Vec::new(),
        raw: Some(bytes),
        want: want.iter().map(|s| s.to_string()).collect(),
        line_of: None,
    }
}

pub(crate) fn cni(name: &'static str, file: &'static str, want: &[&str]) -> Case {
    at_line(
        case(
            name,
            "    serviceCIDR: 10.96.0.0/12\n",
            format!("    serviceCIDR: 10.96.0.0/12\n    cniManifest: {file}\n"),
            &[&["Cluster/lab spec.network.cniManifest: got "][..], want].concat(),
        ),
        "cniManifest:",
    )
}

mod input_cases;
mod spec_cases;

use input_cases::{cni_files, messages, yaml};
use spec_cases::{labels_and_taints, names, network};

fn kubegrid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .env("KUBEGRID_CORPUS_PASSWORD", "x")
        .output()
        .expect("run kubegrid")
}

fn fixtures(dir: &Path) {
    fs::create_dir(dir.join("bundle")).unwrap();
    fs::create_dir(dir.join("adir")).unwrap();
    let files: [(&str, &[u8]); 11] = [
        ("empty.yaml", b""),
        (
            "nokind.yaml",
            b"apiVersion: v1\nkind: A\n---\napiVersion: v1\n",
        ),
        ("noapi.yaml", b"kind: ConfigMap\n"),
        ("list.yaml", b"- a\n- b\n"),
        ("scalar.yaml", b"hello\n"),
        ("binary.yaml", b"\x7fELF\x02\x01\x01\xff\xfe\x00"),
        ("broken.yaml", b"apiVersion: v1\nkind: [\n"),
        ("control.yaml", b"apiVersion: v1\nkind: \x1b[2J\n"),
        ("deep.yaml", &[b'['; 100_000]),
        (
            "token",
            b"eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2ln",
        ),
        (
            "good-cni.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cni}\n",
        ),
    ];
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Runs `plan` on `text`; returns exit code, stderr and how long it took.
fn plan(dir: &Path, file: &str, bytes: &[u8]) -> (Option<i32>, String, Duration) {
    let path = dir.join(file);
    fs::write(&path, bytes).unwrap();
    let journal = dir.join("journal.db");
    let start = Instant::now();
    let out = kubegrid(&[
        "plan",
        "-f",
        path.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let took = start.elapsed();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}

#[test]
fn the_base_spec_passes_validation() {
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    for text in [
        BASE.to_string(),
        BASE.replace(
            "    serviceCIDR: 10.96.0.0/12\n",
            "    serviceCIDR: 10.96.0.0/12\n    cniManifest: good-cni.yaml\n",
        ),
        BASE.replace("    address: 192.0.2.10\n", "    address: lb.example.com\n"),
    ] {
        let (_, err, _) = plan(dir.path(), "spec.yaml", text.as_bytes());
        assert!(!err.contains("the spec has"), "{err}");
        assert!(!err.contains("spec.yaml:"), "{err}");
    }
}

#[test]
fn an_endless_spec_file_is_refused_after_a_bounded_read() {
    let out = kubegrid(&[
        "plan",
        "-f",
        "/dev/zero",
        "--journal",
        "/dev/null/journal.db",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/zero:1:1: more than 16 MiB"), "{err}");
}

#[test]
fn every_bad_spec_in_the_corpus_exits_2_with_a_message_to_act_on() {
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    let cases: Vec<Case> = [
        names(),
        labels_and_taints(),
        network(),
        cni_files(),
        yaml(),
        messages(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(cases.len() >= 70, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let bytes = match &c.raw {
            Some(bytes) => bytes.clone(),
            None => {
                let mut text = BASE.to_string();
                for (from, to) in &c.edits {
                    assert_eq!(text.matches(from).count(), 1, "{}: `{from}`", c.name);
                    text = text.replacen(from, to, 1);
                }
                text.into_bytes()
            }
        };
        let file = format!("spec-{i}.yaml");
        let (code, err, took) = plan(dir.path(), &file, &bytes);
        let mut why = Vec::new();
        if code != Some(2) {
            why.push(format!("exit {code:?}"));
        }
        let mut want = c.want.clone();
        if let Some(marker) = &c.line_of {
            let text = String::from_utf8_lossy(&bytes);
            let line = text
                .lines()
                .position(|l| l.contains(marker.as_str()))
                .unwrap()
                + 1;
            want.push(format!("{file}:{line}:"));
        }
        for w in &want {
            if !err.contains(w.as_str()) {
                why.push(format!("no `{w}`"));
            }
        }
        if !err.contains(&file) {
            why.push("does not name the file".into());
        }
        if err.chars().any(|ch| ch.is_control() && ch != '\n') {
            why.push("raw control characters reach the terminal".into());
        }
        if err.len() > 3_000 {
            why.push(format!("{} bytes of message", err.len()));
        }
        for jargon in [
            "u16",
            "u32",
            "u64",
            "u128",
            "Some(",
            "None",
            "struct ",
            "ObjectMeta",
        ] {
            if err.contains(jargon) {
                why.push(format!("jargon `{jargon}`"));
            }
        }
        // A validation problem carries its field, what was seen and the hint.
        for line in err.lines().filter(|l| l.contains(": got ")) {
            if !line.contains("; expected ") {
                why.push(format!("no hint in `{line}`"));
            }
        }
        if took > Duration::from_secs(10) {
            why.push(format!("took {took:?}"));
        }
        if !why.is_empty() {
            failures.push(format!("{}: {}\n{}", c.name, why.join(", "), err));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        !dir.path().join("journal.db").exists(),
        "nothing is recorded for a refused spec"
    );
}
