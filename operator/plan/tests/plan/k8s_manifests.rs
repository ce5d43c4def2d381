//! Structural checks of the etcd unit and the Cilium manifest.

use kubegrid_plan::render;
use serde_yaml::Value;

use crate::{
    k8s_fixtures::{LOAD_BALANCER, VIP, k8s_cluster, k8s_host, variant},
    k8s_templates::{CILIUM, ETCD, ETCD_ENV, doc, render_for, yaml_docs},
};

/// `--flag=value` (or bare `--flag`) pairs of the unit's ExecStart, in order.
fn etcd_flags(unit: &str) -> Vec<(String, String)> {
    let exec = unit
        .split_once("ExecStart=")
        .expect("no ExecStart")
        .1
        .split("\n\n")
        .next()
        .unwrap();
    let mut words = exec.replace("\\\n", " ");
    words.truncate(words.find('\n').unwrap_or(words.len()));
    let mut words = words.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/etcd"));
    words
        .map(|w| {
            let w = w.strip_prefix("--").unwrap_or_else(|| panic!("`{w}`"));
            match w.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (w.to_string(), String::new()),
            }
        })
        .collect()
}

/// The flags the etcd unit may use: all exist with these meanings in etcd 3.4 (Debian's
/// etcd-server) and 3.5 (upstream).
const ETCD_34_FLAGS: &[&str] = &[
    "name",
    "data-dir",
    "logger",
    "listen-client-urls",
    "advertise-client-urls",
    "listen-peer-urls",
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "client-cert-auth",
    "trusted-ca-file",
    "cert-file",
    "key-file",
    "peer-client-cert-auth",
    "peer-trusted-ca-file",
    "peer-cert-file",
    "peer-key-file",
];

#[test]
fn etcd_unit_runs_a_tls_member_of_the_spec_cluster() {
    let unit = render_for(ETCD, "v1.30-external-lb", "cp-3");
    let flags = etcd_flags(&unit);
    let get = |name: &str| {
        let found: Vec<_> = flags.iter().filter(|(k, _)| k == name).collect();
        assert_eq!(found.len(), 1, "--{name} in\n{unit}");
        found[0].1.as_str()
    };
    for (flag, _) in &flags {
        assert!(ETCD_34_FLAGS.contains(&flag.as_str()), "--{flag}");
    }
    assert_eq!(get("name"), "cp-3");
    assert_eq!(get("data-dir"), "/var/lib/etcd");
    assert_eq!(
        get("listen-client-urls"),
        "https://10.0.0.13:2379,https://127.0.0.1:2379"
    );
    assert_eq!(get("advertise-client-urls"), "https://10.0.0.13:2379");
    assert_eq!(get("listen-peer-urls"), "https://10.0.0.13:2380");
    assert_eq!(get("initial-advertise-peer-urls"), "https://10.0.0.13:2380");
    // The first start's member list is in the environment file, so that membership changes
    // never change (and restart) a running member's unit.
    assert!(
        flags
            .iter()
            .all(|(k, _)| k != "initial-cluster" && k != "initial-cluster-state"),
        "{unit}"
    );
    assert!(
        unit.lines()
            .any(|l| l == "EnvironmentFile=/etc/etcd/initial-cluster.env"),
        "{unit}"
    );
    let env = render_for(ETCD_ENV, "v1.30-external-lb", "cp-3");
    assert!(
        env.lines().any(|l| l
            == "ETCD_INITIAL_CLUSTER=cp-1=https://10.0.0.11:2380,cp-2=https://10.0.0.12:2380,cp-3=https://10.0.0.13:2380"),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l == "ETCD_INITIAL_CLUSTER_STATE=new"),
        "{env}"
    );
    assert_eq!(get("initial-cluster-token"), "gpu-lab");
    assert_eq!(get("client-cert-auth"), "");
    assert_eq!(get("peer-client-cert-auth"), "");
    assert_eq!(get("trusted-ca-file"), "/etc/etcd/pki/ca.crt");
    assert_eq!(get("peer-trusted-ca-file"), "/etc/etcd/pki/ca.crt");
    assert_eq!(get("cert-file"), "/etc/etcd/pki/server.crt");
    assert_eq!(get("key-file"), "/etc/etcd/pki/server.key");
    assert_eq!(get("peer-cert-file"), "/etc/etcd/pki/peer.crt");
    assert_eq!(get("peer-key-file"), "/etc/etcd/pki/peer.key");
    for line in ["Type=notify", "Restart=always", "LimitNOFILE=65536"] {
        assert!(unit.lines().any(|l| l == line), "{line} in\n{unit}");
    }
    assert!(!unit.contains("ETCD_UNSUPPORTED_ARCH"), "{unit}");
}

#[test]
fn etcd_unit_lets_etcd_34_run_on_arm64() {
    let mut host = k8s_host("cp-1");
    host.facts.arch = "arm64".into();
    let unit = render(
        ETCD,
        &k8s_cluster(variant("v1.31-external-lb")),
        &host,
        None,
    )
    .unwrap();
    assert!(
        unit.lines()
            .any(|l| l == "Environment=ETCD_UNSUPPORTED_ARCH=arm64"),
        "{unit}"
    );
}

#[test]
fn etcd_unit_brackets_ipv6_addresses() {
    let mut host = k8s_host("cp-1");
    host.address = "fd00::11".into();
    let unit = render(
        ETCD,
        &k8s_cluster(variant("v1.31-external-lb")),
        &host,
        None,
    )
    .unwrap();
    let flags = etcd_flags(&unit);
    assert!(
        flags
            .iter()
            .any(|(k, v)| k == "listen-peer-urls" && v == "https://[fd00::11]:2380"),
        "{unit}"
    );
}

#[test]
fn etcd_unit_for_stacked_etcd_is_an_error() {
    let err = render(
        ETCD,
        &k8s_cluster(variant("v1.31-stacked-vip")),
        &k8s_host("cp-1"),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("external etcd") && err.contains("stacked"),
        "{err}"
    );
}

/// Every container of a pod template, init containers first.
fn containers(workload: &Value) -> Vec<&Value> {
    let spec = &workload["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k))
        .flat_map(|list| list.as_sequence().unwrap())
        .collect()
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container
        .get("env")?
        .as_sequence()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
}

#[test]
fn cilium_has_every_object_it_needs() {
    let docs = yaml_docs(&render_for(CILIUM, "v1.31-stacked-vip", "cp-1"));
    let mut objects: Vec<_> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    objects.sort();
    assert_eq!(
        objects,
        [
            "ClusterRole/cilium",
            "ClusterRole/cilium-operator",
            "ClusterRoleBinding/cilium",
            "ClusterRoleBinding/cilium-operator",
            "ConfigMap/cilium-config",
            "DaemonSet/cilium",
            "Deployment/cilium-operator",
            "Role/cilium-config-agent",
            "RoleBinding/cilium-config-agent",
            "ServiceAccount/cilium",
            "ServiceAccount/cilium-operator",
        ]
    );
    let agent = doc(&docs, "DaemonSet");
    let init: Vec<_> = agent["spec"]["template"]["spec"]["initContainers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        init,
        [
            "config",
            "mount-cgroup",
            "apply-sysctl-overwrites",
            "mount-bpf-fs",
            "clean-cilium-state",
            "install-cni-binaries"
        ]
    );
    assert_eq!(
        agent["spec"]["template"]["spec"]["serviceAccountName"],
        "cilium"
    );
    assert_eq!(agent["spec"]["template"]["spec"]["hostNetwork"], true);
    let operator = doc(&docs, "Deployment");
    assert_eq!(
        operator["spec"]["template"]["spec"]["serviceAccountName"],
        "cilium-operator"
    );
}

#[test]
fn cilium_config_follows_the_spec() {
    for (label, endpoint) in [
        ("v1.31-stacked-vip", VIP),
        ("v1.30-external-lb", LOAD_BALANCER),
    ] {
        let docs = yaml_docs(&render_for(CILIUM, label, "cp-1"));
        let config = &doc(&docs, "ConfigMap")["data"];
        for (key, value) in [
            ("ipam", "cluster-pool"),
            ("cluster-pool-ipv4-cidr", "10.244.0.0/16"),
            ("routing-mode", "tunnel"),
            ("tunnel-protocol", "vxlan"),
            ("kube-proxy-replacement", "false"),
        ] {
            assert_eq!(config[key], value, "{key} in {label}");
        }
        // Every ConfigMap value must be a string, or the API server rejects the object.
        assert!(
            config.as_mapping().unwrap().values().all(|v| v.is_string()),
            "{config:?}"
        );
        for workload in ["DaemonSet", "Deployment"] {
            let pods = containers(doc(&docs, workload));
            let with_api: Vec<_> = pods
                .iter()
                .filter(|c| env_value(c, "KUBERNETES_SERVICE_HOST").is_some())
                .collect();
            assert!(!with_api.is_empty(), "{workload}");
            for c in with_api {
                assert_eq!(env_value(c, "KUBERNETES_SERVICE_HOST").unwrap(), endpoint);
                assert_eq!(env_value(c, "KUBERNETES_SERVICE_PORT").unwrap(), "6443");
            }
        }
    }
}

#[test]
fn cilium_images_are_one_pinned_release() {
    let docs = yaml_docs(&render_for(CILIUM, "v1.31-stacked-vip", "cp-1"));
    let mut images: Vec<_> = ["DaemonSet", "Deployment"]
        .iter()
        .flat_map(|kind| containers(doc(&docs, kind)))
        .map(|c| c["image"].as_str().unwrap().to_string())
        .collect();
    images.sort();
    images.dedup();
    assert_eq!(
        images,
        [
            "quay.io/cilium/cilium:v1.16.5",
            "quay.io/cilium/operator-generic:v1.16.5"
        ]
    );
}

#[test]
fn cilium_refuses_an_ipv6_pod_cidr() {
    let mut cluster = k8s_cluster(variant("v1.31-stacked-vip"));
    cluster.kubernetes.as_mut().unwrap().pod_cidr = "fd00:10:244::/56".into();
    let err = render(CILIUM, &cluster, &k8s_host("cp-1"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("IPv4 pod CIDR only"), "{err}");
}
