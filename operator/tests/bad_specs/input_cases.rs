//! Bad input files: CNI manifests, YAML that is binary, deep or huge, and the wording of
//! messages.

use crate::{BASE, Case, at_line, case, cni, raw};

pub(crate) fn cni_files() -> Vec<Case> {
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

pub(crate) fn yaml() -> Vec<Case> {
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

pub(crate) fn messages() -> Vec<Case> {
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
