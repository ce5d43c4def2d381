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
const BASE: &str = "\
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
struct Case {
    name: &'static str,
    edits: Vec<(&'static str, String)>,
    raw: Option<Vec<u8>>,
    /// Substrings stderr must hold.
    want: Vec<String>,
    /// stderr must point at the first line that holds this text of the edited spec.
    line_of: Option<String>,
}

fn case(name: &'static str, from: &'static str, to: impl Into<String>, want: &[&str]) -> Case {
    Case {
        name,
        edits: vec![(from, to.into())],
        raw: None,
        want: want.iter().map(|s| s.to_string()).collect(),
        line_of: None,
    }
}

fn at_line(mut c: Case, text: &str) -> Case {
    c.line_of = Some(text.to_string());
    c
}

fn raw(name: &'static str, bytes: Vec<u8>, want: &[&str]) -> Case {
    Case {
        name,
        edits: Vec::new(),
        raw: Some(bytes),
        want: want.iter().map(|s| s.to_string()).collect(),
        line_of: None,
    }
}

fn cni(name: &'static str, file: &'static str, want: &[&str]) -> Case {
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

fn names() -> Vec<Case> {
    let cluster = |name: &'static str, to: &str, want: &[&str]| Case {
        name,
        edits: vec![
            ("  name: lab\n", format!("  name: {to}\n")),
            ("clusterName: lab", format!("clusterName: {to}")),
        ],
        raw: None,
        want: want.iter().map(|s| s.to_string()).collect(),
        line_of: None,
    };
    let node = |name: &'static str, to: &str, want: &[&str]| {
        at_line(
            case(name, "  name: n1\n", format!("  name: {to}\n"), want),
            &format!("  name: {to}"),
        )
    };
    let long = "a".repeat(64);
    vec![
        at_line(
            cluster(
                "cluster name uppercase",
                "Lab",
                &["Cluster/Lab metadata.name", "uppercase", "DNS-1123 label"],
            ),
            "  name: Lab",
        ),
        cluster(
            "cluster name underscore",
            "la_b",
            &["Cluster/la_b metadata.name", "'_'"],
        ),
        cluster(
            "cluster name newline",
            "\"lab\\nx\"",
            &["Cluster/lab\\nx metadata.name", "'\\n'"],
        ),
        cluster("cluster name dot", "lab.example", &["metadata.name", "'.'"]),
        node(
            "node name uppercase",
            "N1",
            &["Node/N1 metadata.name", "uppercase", "certificates"],
        ),
        node(
            "node name dot",
            "n1.example.com",
            &["Node/n1.example.com metadata.name", "'.'"],
        ),
        node(
            "node name newline",
            "\"n1\\n\"",
            &["Node/n1\\n metadata.name", "'\\n'"],
        ),
        node(
            "node name leading dash",
            "\"-n1\"",
            &["starts or ends with '-'"],
        ),
        node(
            "node name escape sequence",
            "\"n1\\e[31m\"",
            &["Node/n1\\u{1b}[31m", "'\\u{1b}'"],
        ),
        node("node name too long", &long, &["64 characters long"]),
        node("node name space", "\"n 1\"", &["' ' (a space)"]),
        node("node name unicode", "\"nöde\"", &["'ö'"]),
    ]
}

fn labels_and_taints() -> Vec<Case> {
    let label = |name: &'static str, to: &str, want: &[&str]| {
        at_line(
            case(
                name,
                "    example.com/pool: gpu\n",
                format!("    {to}\n"),
                &[&["Node/n1 spec.labels["][..], want].concat(),
            ),
            &format!("    {to}"),
        )
    };
    let taint_key = |name: &'static str, to: &str, want: &[&str]| {
        case(
            name,
            "  - key: dedicated\n",
            format!("  - key: {to}\n"),
            &[&["Node/n1 spec.taints[0].key: got "][..], want].concat(),
        )
    };
    let taint_value = |name: &'static str, to: &str, want: &[&str]| {
        at_line(
            case(
                name,
                "    value: gpu\n",
                format!("    value: {to}\n"),
                &[&["Node/n1 spec.taints[0].value: got "][..], want].concat(),
            ),
            "    value: ",
        )
    };
    vec![
        label(
            "label key with comma",
            "\"a,b\": x",
            &["the key `a,b`", "another label"],
        ),
        label(
            "label key with equals",
            "\"a=b\": x",
            &["the key `a=b`", "'='"],
        ),
        label(
            "label value smuggles a label",
            "pool: \"x,node-role.kubernetes.io/control-plane=\"",
            &["the value `x,node-role", "another label"],
        ),
        label(
            "label value with equals",
            "pool: \"a=b\"",
            &["the value `a=b`"],
        ),
        label(
            "label key uppercase prefix",
            "Example.com/pool: x",
            &["prefix `Example.com`", "DNS subdomain"],
        ),
        label(
            "label key empty name",
            "\"example.com/\": x",
            &["name part is empty"],
        ),
        label("label key two slashes", "a/b/c: x", &["more than one '/'"]),
        label(
            "label key empty prefix",
            "\"/pool\": x",
            &["prefix before '/' is empty"],
        ),
        label(
            "label key too long",
            &format!("{}: x", "k".repeat(64)),
            &["64 characters long"],
        ),
        label(
            "label value too long",
            &format!("pool: {}", "v".repeat(64)),
            &["the value", "64 characters long"],
        ),
        label(
            "label value with space",
            "pool: \"a b\"",
            &["' ' (a space)"],
        ),
        label(
            "label key leading underscore",
            "_pool: x",
            &["start and end with a letter or digit"],
        ),
        label("label value newline", "pool: \"a\\nb\"", &["'\\n'"]),
        label(
            "label key prefix too long",
            &format!("{}.com/x: y", "a".repeat(250)),
            &["not a DNS subdomain"],
        ),
        taint_key(
            "taint key with space",
            "\"a b\"",
            &["' ' (a space)", "taint key"],
        ),
        taint_key("taint key with comma", "\"a,b\"", &["another label"]),
        taint_key(
            "taint key empty name",
            "\"example.com/\"",
            &["name part is empty"],
        ),
        taint_value("taint value with comma", "\"x,y\"", &["`x,y`"]),
        taint_value(
            "taint value too long",
            &"t".repeat(64),
            &["64 characters long"],
        ),
        taint_value("taint value with equals", "\"a=b\"", &["'='"]),
    ]
}

fn network() -> Vec<Case> {
    let service = |name: &'static str, to: &str, want: &[&str]| {
        at_line(
            case(
                name,
                "    serviceCIDR: 10.96.0.0/12\n",
                format!("    serviceCIDR: {to}\n"),
                &[&["Cluster/lab spec.network.serviceCIDR: got "][..], want].concat(),
            ),
            "serviceCIDR:",
        )
    };
    let v6 = |name: &'static str, service: &str, want: &[&str]| Case {
        name,
        edits: vec![
            (
                "    podCIDR: 10.244.0.0/16\n",
                "    podCIDR: fd00:10:244::/56\n".to_string(),
            ),
            (
                "    serviceCIDR: 10.96.0.0/12\n",
                format!("    serviceCIDR: {service}\n"),
            ),
        ],
        raw: None,
        want: want.iter().map(|s| s.to_string()).collect(),
        line_of: Some("serviceCIDR:".into()),
    };
    vec![
        service(
            "service range /11",
            "172.16.0.0/11",
            &["2^21 addresses", "/12 or longer"],
        ),
        service(
            "service range /8",
            "172.0.0.0/8",
            &["2^24 addresses", "kube-apiserver"],
        ),
        service("service range /0", "0.0.0.0/0", &["2^32 addresses"]),
        v6(
            "service range v6 /64",
            "fd00:10:96::/64",
            &["2^64 addresses", "/108 or longer"],
        ),
        v6(
            "service range v6 /107",
            "fd00:10:96::/107",
            &["2^21 addresses"],
        ),
        service(
            "service range overlaps pods",
            "10.244.0.0/20",
            &["overlaps podCIDR"],
        ),
        service("service range host bits", "10.96.0.1/12", &["host bits"]),
        at_line(
            case(
                "pod range not a CIDR",
                "podCIDR: 10.244.0.0/16",
                "podCIDR: 10.244.0.0",
                &["spec.network.podCIDR", "not a CIDR range"],
            ),
            "podCIDR:",
        ),
        at_line(
            case(
                "pod range narrower than a node's",
                "podCIDR: 10.244.0.0/16",
                "podCIDR: 10.244.0.0/25",
                &[
                    "Cluster/lab spec.network.podCIDR: got `10.244.0.0/25`",
                    "/8 to /24",
                ],
            ),
            "podCIDR:",
        ),
        case(
            "pod range too wide",
            "podCIDR: 10.244.0.0/16",
            "podCIDR: 10.0.0.0/7",
            &["spec.network.podCIDR", "16 bits wider"],
        ),
        case(
            "pod range garbage",
            "podCIDR: 10.244.0.0/16",
            "podCIDR: banana",
            &["not a CIDR range"],
        ),
    ]
}

fn cni_files() -> Vec<Case> {
    vec![
        cni("cni manifest missing", "missing.yaml", &["does not exist"]),
        cni("cni manifest is a directory", "adir", &["a directory"]),
        cni(
            "cni manifest is a device",
            "/dev/null",
            &["not a regular file"],
        ),
        cni(
            "cni manifest empty",
            "empty.yaml",
            &["no Kubernetes objects"],
        ),
        cni(
            "cni manifest without kind",
            "nokind.yaml",
            &["line 4, which has no kind"],
        ),
        cni(
            "cni manifest without apiVersion",
            "noapi.yaml",
            &["which has no apiVersion"],
        ),
        cni(
            "cni manifest a list",
            "list.yaml",
            &["not a Kubernetes object"],
        ),
        cni(
            "cni manifest a scalar",
            "scalar.yaml",
            &["not a Kubernetes object"],
        ),
        cni(
            "cni manifest binary",
            "binary.yaml",
            &["binary data", "\\xff\\xfe"],
        ),
        cni("cni manifest broken yaml", "broken.yaml", &["not YAML"]),
        cni(
            "cni manifest control characters",
            "control.yaml",
            &["control character", "\\u{1b}"],
        ),
        cni(
            "cni manifest deeply nested",
            "deep.yaml",
            &["nested more than 64"],
        ),
        cni(
            "cni manifest the operator's token",
            "token",
            &["not a Kubernetes object"],
        ),
    ]
}

fn yaml() -> Vec<Case> {
    let mut deep_node = BASE.as_bytes().to_vec();
    deep_node.extend_from_slice(
        b"---\napiVersion: kubegrid.io/v1alpha1\nkind: Node\nmetadata: {name: n2}\nspec: {roles: ",
    );
    deep_node.extend_from_slice("[".repeat(300_000).as_bytes());
    vec![
        raw(
            "300 KB of [",
            "[".repeat(300_000).into_bytes(),
            &["nested more than 64 levels"],
        ),
        raw(
            "100 K of {a:",
            "{a: ".repeat(100_000).into_bytes(),
            &["nested more than 64 levels"],
        ),
        raw(
            "deep nesting in a Node",
            deep_node,
            &[":41:78:", "nested more than 64 levels"],
        ),
        raw(
            "not UTF-8",
            b"apiVersion: kubegrid.io/v1alpha1\n\xff\xfe\x00\x01".to_vec(),
            &[".yaml:2:1:", "binary data", "\\xff\\xfe\\x00"],
        ),
        raw(
            "an ELF file",
            b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00".to_vec(),
            &[".yaml:1:1:", "control character", "\\u{7f}"],
        ),
        raw(
            "NUL bytes",
            b"apiVersion: v1\0\0\0".to_vec(),
            &[".yaml:1:15:", "control character", "\\u{0}"],
        ),
        raw(
            "terminal escapes",
            format!("{BASE}# \u{1b}]0;title\u{7}\n").into_bytes(),
            &["control character", "\\u{1b}"],
        ),
        case(
            "a megabyte name",
            "  name: n1\n",
            format!("  name: {}\n", "n".repeat(1_000_000)),
            &["1000000 characters long", "more characters)"],
        ),
        case(
            "a megabyte port",
            "    port: 22\n",
            format!("    port: \"{}\"\n", "9".repeat(1_000_000)),
            &[
                "spec.ssh.port",
                "more characters)",
                "a port number from 1 to 65535",
            ],
        ),
        raw(
            "a sequence for a document",
            b"- a\n- b\n".to_vec(),
            &[".yaml:1:1:", "expected a mapping with apiVersion"],
        ),
    ]
}

fn messages() -> Vec<Case> {
    vec![
        case(
            "unknown role",
            "etcd, worker]",
            "etcd, workr]",
            &[".yaml:30:", "spec.roles[2]", "`workr`", "expected one of"],
        ),
        case(
            "unknown taint effect",
            "    effect: NoSchedule\n",
            "    effect: Nope\n",
            &[".yaml:36:", "spec.taints[0].effect", "expected one of"],
        ),
        case(
            "unknown field",
            "  roles: [",
            "  rolez: [",
            &[".yaml:30:", "unknown field `rolez`"],
        ),
        case(
            "wrong kind",
            "kind: Node",
            "kind: Nodes",
            &[".yaml:24:", "`Nodes`", "kind Cluster or Node"],
        ),
        case(
            "node of no cluster",
            "clusterName: lab",
            "clusterName: other",
            &[
                "Node/n1 spec.clusterName: got `other`",
                "expected the name of a Cluster",
            ],
        ),
        at_line(
            case(
                "ssh port too large",
                "    port: 22\n",
                "    port: 70000\n",
                &["spec.ssh.port", "a port number from 1 to 65535"],
            ),
            "port: 70000",
        ),
        case(
            "ssh port negative",
            "    port: 22\n",
            "    port: -1\n",
            &["a port number from 1 to 65535"],
        ),
        case(
            "ssh port a word",
            "    port: 22\n",
            "    port: ssh\n",
            &["a port number from 1 to 65535"],
        ),
        at_line(
            case(
                "ssh port zero",
                "    port: 22\n",
                "    port: 0\n",
                &["Cluster/lab spec.ssh.port: got 0", "a port from 1 to 65535"],
            ),
            "port: 0",
        ),
        case(
            "endpoint port too large",
            "    port: 6443\n",
            "    port: 99999\n",
            &[
                "spec.controlPlaneEndpoint.port",
                "a port number from 1 to 65535",
            ],
        ),
        case(
            "metadata a list",
            "metadata:\n  name: n1\n",
            "metadata: [n1]\n",
            &["metadata", "a mapping of fields"],
        ),
        at_line(
            case(
                "kubernetes version overflow",
                "v1.31.4",
                "v1.31.99999999999999999999",
                &["Cluster/lab spec.kubernetesVersion", "too large"],
            ),
            "kubernetesVersion:",
        ),
        at_line(
            case(
                "node address bracketed",
                "  address: 192.0.2.11\n",
                "  address: \"[fd00::1]\"\n",
                &["Node/n1 spec.address: got `[fd00::1]`", "without brackets"],
            ),
            "[fd00::1]",
        ),
        case(
            "node address with port",
            "  address: 192.0.2.11\n",
            "  address: \"192.0.2.11:22\"\n",
            &["no ':' or brackets"],
        ),
        case(
            "node address a DNS name",
            "  address: 192.0.2.11\n",
            "  address: n1.example.com\n",
            &["`n1.example.com`, a DNS name", "node IP"],
        ),
        case(
            "node address underscore",
            "  address: 192.0.2.11\n",
            "  address: n_1.example\n",
            &["'_'"],
        ),
        case(
            "endpoint address with port",
            "    address: 192.0.2.10\n",
            "    address: lb.example:6443\n",
            &["spec.controlPlaneEndpoint.address", "no ':' or brackets"],
        ),
        case(
            "endpoint address uppercase",
            "    address: 192.0.2.10\n",
            "    address: LB.example.com\n",
            &["spec.controlPlaneEndpoint.address", "uppercase"],
        ),
        case(
            "endpoint address empty label",
            "    address: 192.0.2.10\n",
            "    address: lb..example\n",
            &["empty part between dots"],
        ),
        case(
            "bastion address bad",
            "    passwordEnv: KUBEGRID_CORPUS_PASSWORD\n",
            "    passwordEnv: KUBEGRID_CORPUS_PASSWORD\n    bastion:\n      address: \"jump host\"\n      user: jump\n",
            &["spec.ssh.bastion.address", "whitespace"],
        ),
    ]
}

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
