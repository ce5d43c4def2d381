//! Bad input refused up front, the way Kubernetes would refuse it later: names, labels,
//! taints, service ranges, CNI manifests, and YAML that is binary, deep or huge.

use std::time::{Duration, Instant};

use kubegrid_api::{Error, ValidateFor};

use crate::common::{Fixture, GOOD, edit, one_problem, problems_for};

const CLUSTER: &str = "Cluster/gpu-prod";

#[test]
fn node_names_must_be_dns_labels() {
    for (name, why) in [
        ("GPU-1", "uppercase"),
        ("gpu_1", "'_'"),
        ("gpu.1", "'.'"),
        ("-gpu", "starts or ends with '-'"),
    ] {
        let text = edit("name: gpu-2", &format!("name: \"{name}\""));
        let problem = one_problem(&text, &format!("Node/{name}"), "metadata.name", why);
        assert!(problem.contains("DNS-1123 label"), "{problem}");
    }
    let long = "a".repeat(64);
    let text = edit("name: gpu-2", &format!("name: {long}"));
    one_problem(
        &text,
        &format!("Node/{long}"),
        "metadata.name",
        "64 characters",
    );
}

#[test]
fn a_newline_in_a_name_is_refused_and_shown_escaped() {
    let text = edit("name: gpu-2", "name: \"gpu-2\\nevil\"");
    let problem = one_problem(&text, "Node/gpu-2\\nevil", "metadata.name", "'\\n'");
    assert!(!problem.contains('\n'), "{problem}");
}

#[test]
fn cluster_names_must_be_dns_labels() {
    let text = GOOD.replace("gpu-prod", "GPU_Prod");
    let problem = one_problem(&text, "Cluster/GPU_Prod", "metadata.name", "uppercase");
    assert!(problem.contains("DNS-1123 label"), "{problem}");
}

#[test]
fn label_keys_and_values_follow_kubernetes() {
    for (labels, seen) in [
        ("{\"a,b\": x}", "the key `a,b`"),
        ("{\"a=b\": x}", "the key `a=b`"),
        ("{\"Example.com/x\": y}", "prefix `Example.com`"),
        ("{\"a/b/c\": y}", "more than one '/'"),
        ("{\"/x\": y}", "prefix before '/' is empty"),
        ("{\"x_\": y}", "start and end with a letter or digit"),
        (
            &format!("{{\"{}\": y}}", "k".repeat(64)),
            "64 characters long",
        ),
        (
            "{a: \"x,node-role.kubernetes.io/control-plane=\"}",
            "another label",
        ),
        ("{a: \"b=c\"}", "the value `b=c`"),
        ("{a: \" x\"}", "a space"),
        (&format!("{{a: {}}}", "v".repeat(64)), "64 characters long"),
    ] {
        let text = edit(
            "labels: {nvidia.com/gpu.present: \"true\"}",
            &format!("labels: {labels}"),
        );
        let problems = problems_for(&text, ValidateFor::Cli);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let problem = &problems[0];
        assert!(problem.contains("Node/gpu-1 spec.labels["), "{problem}");
        assert!(problem.contains(seen), "`{seen}` missing: {problem}");
        assert!(problem.contains("; expected "), "{problem}");
    }
}

#[test]
fn good_labels_pass() {
    let text = edit(
        "labels: {nvidia.com/gpu.present: \"true\"}",
        "labels: {a: \"\", A_b.c: X-1, example.com/model: H100_80GB.hbm3}",
    );
    assert_eq!(problems_for(&text, ValidateFor::Cli), Vec::<String>::new());
}

#[test]
fn taint_keys_and_values_follow_kubernetes() {
    let text = edit(
        "taints: [{key: dedicated, value: gpu, effect: NoSchedule}]",
        "taints: [{key: \"a b\", value: gpu, effect: NoSchedule}, {key: ok, value: \"g,pu\", effect: NoExecute}]",
    );
    let problems = problems_for(&text, ValidateFor::Cli);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].contains("spec.taints[0].key: got `a b`"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("spec.taints[1].value: got `g,pu`"),
        "{problems:#?}"
    );
}

#[test]
fn service_ranges_larger_than_the_api_server_allows_are_refused() {
    let text = edit("serviceCIDR: 10.96.0.0/12", "serviceCIDR: 10.96.0.0/11");
    one_problem(&text, CLUSTER, "spec.network.serviceCIDR", "2^21 addresses");
    let v6 = GOOD
        .replace("podCIDR: 10.244.0.0/16", "podCIDR: fd00:10:244::/56")
        .replace("serviceCIDR: 10.96.0.0/12", "serviceCIDR: fd00:10:96::/107");
    let problem = one_problem(&v6, CLUSTER, "spec.network.serviceCIDR", "2^21 addresses");
    assert!(problem.contains("/108 or longer"), "{problem}");
    let ok = v6.replace("fd00:10:96::/107", "fd00:10:96::/108");
    assert_eq!(problems_for(&ok, ValidateFor::Cli), Vec::<String>::new());
}

#[test]
fn pod_ranges_must_fit_the_node_mask_as_kubeadm_requires() {
    for (pod, seen, hint) in [
        ("10.244.0.0/25", "a /25 range", "/8 to /24"),
        ("10.0.0.0/7", "a /7 range", "/8 to /24"),
    ] {
        let text = edit("podCIDR: 10.244.0.0/16", &format!("podCIDR: {pod}"));
        let problems = problems_for(&text, ValidateFor::Cli);
        let problem = problems
            .iter()
            .find(|p| p.contains("spec.network.podCIDR"))
            .unwrap_or_else(|| panic!("{problems:#?}"));
        assert!(
            problem.contains(seen) && problem.contains(hint),
            "{problem}"
        );
    }
    let v6 = |pod: &str| {
        GOOD.replace("podCIDR: 10.244.0.0/16", &format!("podCIDR: {pod}"))
            .replace("serviceCIDR: 10.96.0.0/12", "serviceCIDR: fd00:10:96::/108")
    };
    one_problem(
        &v6("fd00:10:244::/80"),
        CLUSTER,
        "spec.network.podCIDR",
        "/48 to /64",
    );
    one_problem(
        &v6("fd00::/47"),
        CLUSTER,
        "spec.network.podCIDR",
        "/48 to /64",
    );
    assert_eq!(
        problems_for(&v6("fd00:10:244::/48"), ValidateFor::Cli),
        Vec::<String>::new()
    );
    assert_eq!(
        problems_for(&v6("fd00:10:244::/64"), ValidateFor::Cli),
        Vec::<String>::new()
    );
}

#[test]
fn node_addresses_are_ip_addresses_and_host_names_are_explained() {
    for (address, seen) in [
        ("\"[fd00::1]\"", "no ':' or brackets"),
        ("\"10.0.0.22:22\"", "no ':' or brackets"),
        ("node_2.example", "'_'"),
        ("node-2.example", "a DNS name"),
    ] {
        let text = edit("address: 10.0.0.22", &format!("address: {address}"));
        one_problem(&text, "Node/gpu-2", "spec.address", seen);
    }
}

#[test]
fn bastions_may_be_named_by_host_name() {
    let text = edit("address: 203.0.113.10", "address: jump.example.com");
    assert_eq!(problems_for(&text, ValidateFor::Cli), Vec::<String>::new());
    let text = edit("address: 203.0.113.10", "address: \"jump..example\"");
    one_problem(&text, CLUSTER, "spec.ssh.bastion.address", "empty part");
}

fn with_cni(manifest: &[u8]) -> Vec<String> {
    let text = edit(
        "    serviceCIDR: 10.96.0.0/12\n",
        "    serviceCIDR: 10.96.0.0/12\n    cniManifest: cni.yaml\n",
    );
    let fixture = Fixture::new(&text);
    std::fs::write(fixture.dir.path().join("cni.yaml"), manifest).unwrap();
    let manifest = fixture.parse().unwrap();
    match manifest.validate(ValidateFor::Cli) {
        Ok(()) => Vec::new(),
        Err(Error::Invalid { problems }) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn cni_manifests_must_be_kubernetes_objects() {
    let good = b"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: cni}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: cni}\n";
    assert_eq!(with_cni(good), Vec::<String>::new());
    for (content, seen) in [
        (&b"a: 1\n"[..], "which has no apiVersion"),
        (
            b"apiVersion: v1\nkind: A\n---\napiVersion: v1\n",
            "line 4, which has no kind",
        ),
        (b"[1, 2]\n", "not a Kubernetes object"),
        (b"", "no Kubernetes objects"),
        (b"apiVersion: v1\n\x00\x01kind: A\n", "control character"),
        (b"\x7fELF\x02\x01\x01\xff\xfe", "binary data"),
        (b"apiVersion: v1\nkind: [\n", "not YAML"),
    ] {
        let problems = with_cni(content);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("Cluster/gpu-prod spec.network.cniManifest: got `cni.yaml`"),
            "{problems:#?}"
        );
        assert!(
            problems[0].contains(seen),
            "`{seen}` missing: {problems:#?}"
        );
        assert!(!problems[0].contains('\0'), "{problems:#?}");
    }
}

#[test]
fn a_cni_manifest_must_be_a_regular_file() {
    let text = edit(
        "    serviceCIDR: 10.96.0.0/12\n",
        "    serviceCIDR: 10.96.0.0/12\n    cniManifest: /dev/null\n",
    );
    let problem = one_problem(
        &text,
        CLUSTER,
        "spec.network.cniManifest",
        "not a regular file",
    );
    assert!(problem.contains("Kubernetes objects"), "{problem}");
    let text = text.replace("/dev/null", "keys");
    one_problem(&text, CLUSTER, "spec.network.cniManifest", "a directory");
}

#[test]
fn the_public_check_is_the_one_validation_uses() {
    assert_eq!(
        kubegrid_api::cni::check_manifest("apiVersion: v1\nkind: ConfigMap\n"),
        Ok(())
    );
    assert!(kubegrid_api::cni::check_manifest("kind: ConfigMap\n").is_err());
}

fn parse_error(text: &str) -> (String, Duration) {
    let fixture = Fixture::new(text);
    let start = Instant::now();
    let err = kubegrid_api::Documents::read(&fixture.path).unwrap_err();
    (err.to_string(), start.elapsed())
}

#[test]
fn deep_nesting_is_refused_in_milliseconds_with_a_short_message() {
    for deep in [
        format!("{GOOD}---\n{}", "[".repeat(300_000)),
        format!("a: {}", "{a: ".repeat(100_000)),
        format!("a: [\"x\", {}", "[".repeat(300_000)),
    ] {
        let (message, took) = parse_error(&deep);
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(message.contains("nested more than 64 levels"), "{message}");
        assert!(message.len() < 400, "{message}");
    }
}

#[test]
fn binary_spec_files_are_refused_with_an_escaped_excerpt() {
    let fixture = Fixture::new("");
    std::fs::write(&fixture.path, b"apiVersion: v1\n\xff\xfe\x1b[2J\x00garbage").unwrap();
    let err = kubegrid_api::Documents::read(&fixture.path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cluster.yaml:2:1: binary data"), "{err}");
    assert!(err.contains("\\xff\\xfe\\x1b"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    let (err, _) = parse_error("apiVersion: kubegrid.io/v1alpha1\nkind: \u{1b}]0;pwned\u{7}\n");
    assert!(
        err.contains(":2:7: the control character `\\u{1b}`"),
        "{err}"
    );
}

#[test]
fn long_values_are_quoted_as_short_excerpts() {
    let long = "x".repeat(1_000_000);
    let text = edit("address: 10.0.0.22", &format!("address: {long}"));
    let problems = problems_for(&text, ValidateFor::Cli);
    let all = problems.join("\n");
    assert!(all.len() < 2_000, "{} characters", all.len());
    assert!(all.contains("more characters)"), "{all}");
    let (message, _) = parse_error(&edit("port: 2222", &format!("port: \"{long}\"")));
    assert!(message.len() < 500, "{} characters", message.len());
}

#[test]
fn schema_errors_speak_yaml_not_rust() {
    let (message, _) = parse_error(&edit("port: 2222", "port: 70000"));
    assert!(message.contains("spec.ssh.port"), "{message}");
    assert!(
        message.contains("expected a port number from 1 to 65535"),
        "{message}"
    );
    assert!(!message.contains("u16"), "{message}");
    let (message, _) = parse_error(&edit("podCIDR: 10.244.0.0/16", "podCIDR: 10.244.0.0"));
    assert!(message.contains("not a CIDR range"), "{message}");
    let (message, _) = parse_error(&edit("metadata:\n  name: gpu-1", "metadata: [gpu-1]"));
    assert!(!message.contains("ObjectMeta"), "{message}");
}

#[test]
fn the_operator_refuses_the_same_names_labels_and_ranges() {
    let text = edit("name: gpu-2", "name: GPU-2")
        .replace(
            "labels: {nvidia.com/gpu.present: \"true\"}",
            "labels: {a: \"x,evil=1\"}",
        )
        .replace("serviceCIDR: 10.96.0.0/12", "serviceCIDR: 172.16.0.0/11");
    let problems = problems_for(&text, ValidateFor::Operator).join("\n");
    for want in [
        "Node/GPU-2 metadata.name",
        "Node/gpu-1 spec.labels[a]",
        "spec.network.serviceCIDR",
    ] {
        assert!(problems.contains(want), "`{want}` missing: {problems}");
    }
}
