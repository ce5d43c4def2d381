//! Bad specs: names, labels and taints, network ranges.

use crate::{Case, at_line, case};

pub(crate) fn names() -> Vec<Case> {
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

pub(crate) fn labels_and_taints() -> Vec<Case> {
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

pub(crate) fn network() -> Vec<Case> {
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
