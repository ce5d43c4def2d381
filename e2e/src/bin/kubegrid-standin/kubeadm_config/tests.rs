use super::*;
use crate::yaml::parse_docs;

const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn own() -> KubeVersion {
    KubeVersion::parse("v1.31.4").unwrap()
}

fn init_v1beta4(etcd: &str) -> String {
    format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: abcdef.0123456789abcdef
    ttl: 2h0m0s
localAPIEndpoint:
  advertiseAddress: 10.213.100.11
  bindPort: 6443
certificateKey: {KEY}
nodeRegistration:
  name: cp-1
  criSocket: unix:///run/containerd/containerd.sock
  taints:
    - key: node-role.kubernetes.io/control-plane
      effect: NoSchedule
  kubeletExtraArgs:
    - name: node-ip
      value: 10.213.100.11
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
controlPlaneEndpoint: 10.213.100.5:6443
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
  dnsDomain: cluster.local
apiServer:
  certSANs: [10.213.100.5, cp.lab]
  extraArgs:
    - name: audit-log-maxage
      value: "7"
{etcd}---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"#
    )
}

const EXTERNAL_ETCD: &str = "etcd:
  external:
    endpoints: [https://10.213.100.21:2379, https://10.213.100.22:2379]
    caFile: /etc/kubernetes/pki/etcd/ca.crt
    certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt
    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key
";

fn join_v1beta4(control_plane: &str) -> String {
    format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: 10.213.100.5:6443
    caCertHashes: ["{HASH}"]
nodeRegistration:
  name: worker-1
  criSocket: unix:///run/containerd/containerd.sock
  taints: []
{control_plane}"#
    )
}

fn run(flow: Flow, text: &str, own: &KubeVersion) -> Checked {
    let docs = parse_docs(text).expect("test YAML parses");
    check(flow, &docs, own, &|_| true)
}

/// Asserts that kubeadm would refuse `text` with a problem containing `needle`.
fn refused(flow: Flow, text: &str, needle: &str) {
    let c = run(flow, text, &own());
    assert!(
        c.problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {:#?}",
        c.problems
    );
}

#[test]
fn valid_v1beta4_init_is_accepted_with_its_facts() {
    let c = run(Flow::Init, &init_v1beta4(""), &own());
    assert_eq!(c.problems, Vec::<String>::new());
    assert_eq!(c.warnings, Vec::<String>::new());
    assert!(c.facts.control_plane && c.facts.local_etcd);
    assert_eq!(c.facts.server.as_deref(), Some("https://10.213.100.5:6443"));
    assert_eq!(c.facts.node_name.as_deref(), Some("cp-1"));
    assert_eq!(
        c.facts.kubelet_args,
        vec![("node-ip".to_string(), "10.213.100.11".to_string())]
    );
    assert_eq!(c.facts.certificate_key.as_deref(), Some(KEY));
}

#[test]
fn external_etcd_needs_https_endpoints_and_existing_files() {
    let text = init_v1beta4(EXTERNAL_ETCD);
    let c = run(Flow::Init, &text, &own());
    assert_eq!(c.problems, Vec::<String>::new());
    assert!(!c.facts.local_etcd);
    let docs = parse_docs(&text).unwrap();
    let missing = check(Flow::Init, &docs, &own(), &|p| !p.ends_with(".key"));
    assert!(
        missing
            .problems
            .iter()
            .any(|p| p
                .contains("keyFile /etc/kubernetes/pki/apiserver-etcd-client.key does not exist")),
        "{:?}",
        missing.problems
    );
    refused(
        Flow::Init,
        &init_v1beta4(&EXTERNAL_ETCD.replace("https://10.213.100.21", "http://10.213.100.21")),
        "is not an https:// URL",
    );
}

#[test]
fn valid_v1beta4_joins_are_accepted() {
    let worker = run(Flow::Join, &join_v1beta4(""), &own());
    assert_eq!(worker.problems, Vec::<String>::new());
    assert!(!worker.facts.control_plane);
    assert_eq!(
        worker.facts.server.as_deref(),
        Some("https://10.213.100.5:6443")
    );
    let cp = format!(
        "controlPlane:\n  certificateKey: {KEY}\n  localAPIEndpoint:\n    advertiseAddress: 10.213.100.12\n"
    );
    let c = run(Flow::Join, &join_v1beta4(&cp), &own());
    assert_eq!(c.problems, Vec::<String>::new());
    assert!(c.facts.control_plane);
}

#[test]
fn api_version_must_fit_the_kubernetes_version() {
    let v130 = KubeVersion::parse("v1.30.8").unwrap();
    let c = run(Flow::Join, &join_v1beta4(""), &v130);
    assert!(
        c.problems
            .iter()
            .any(|p| p.contains("v1beta4 needs Kubernetes 1.31 or later")),
        "{:?}",
        c.problems
    );
    let init_130 =
        init_v1beta4("").replace("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.30.8");
    refused(
        Flow::Init,
        &init_130,
        "v1beta4 needs Kubernetes 1.31 or later",
    );
    // v1beta3 for 1.31 is deprecated, not refused (as real kubeadm 1.31); its map args are right.
    let v3 = join_v1beta4("").replace("v1beta4", "v1beta3");
    let c = run(Flow::Join, &v3, &own());
    assert_eq!(c.problems, Vec::<String>::new());
    assert!(
        c.warnings.iter().any(|w| w.contains("deprecated")),
        "{:?}",
        c.warnings
    );
    // v1beta3 below 1.31 is plain right.
    let c = run(Flow::Join, &v3, &v130);
    assert_eq!((c.problems.len(), c.warnings.len()), (0, 0), "{c:?}");
}

#[test]
fn mixed_or_unknown_api_versions_are_refused() {
    let mixed = init_v1beta4("").replacen("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3", 1);
    refused(Flow::Init, &mixed, "mix");
    refused(
        Flow::Init,
        &init_v1beta4("").replace("v1beta4", "v1beta2"),
        "is not served by kubeadm",
    );
    refused(
        Flow::Join,
        "apiVersion: v1\nkind: ConfigMap\n",
        "is not a kubeadm configuration document",
    );
    refused(
        Flow::Init,
        &format!("{}---\n{}", init_v1beta4(""), init_v1beta4("")),
        "specified twice",
    );
}

#[test]
fn extra_args_shape_follows_the_api_version() {
    let map_args = init_v1beta4("").replace(
        "  extraArgs:\n    - name: audit-log-maxage\n      value: \"7\"\n",
        "  extraArgs:\n    audit-log-maxage: \"7\"\n",
    );
    refused(
        Flow::Init,
        &map_args,
        "takes a list of {name, value}, found a map",
    );
    let v3_list = join_v1beta4("").replace("v1beta4", "v1beta3").replace(
        "  taints: []\n",
        "  kubeletExtraArgs:\n    - name: node-ip\n      value: 10.0.0.1\n",
    );
    let c = run(
        Flow::Join,
        &v3_list,
        &KubeVersion::parse("v1.30.8").unwrap(),
    );
    assert!(
        c.problems
            .iter()
            .any(|p| p.contains("takes a map of flag: value, found a list")),
        "{:?}",
        c.problems
    );
}

#[test]
fn join_needs_ca_hashes_and_a_control_plane_certificate_key() {
    refused(
        Flow::Join,
        &join_v1beta4("").replace(&format!("    caCertHashes: [\"{HASH}\"]\n"), ""),
        "caCertHashes: required",
    );
    refused(
        Flow::Join,
        &join_v1beta4("").replace(HASH, "sha256:abc"),
        "is not sha256:<64 hex digits>",
    );
    let cp = "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.213.100.12\n";
    refused(
        Flow::Join,
        &join_v1beta4(cp),
        "certificateKey: required to join a control-plane node",
    );
    refused(
        Flow::Join,
        &join_v1beta4("").replace("10.213.100.5:6443", "10.213.100.5"),
        "has no port",
    );
    refused(
        Flow::Join,
        &join_v1beta4("").replace("abcdef.0123456789abcdef", "not-a-token"),
        "token: required",
    );
}

#[test]
fn init_needs_both_documents_and_valid_networking() {
    let only_cluster = init_v1beta4("");
    let cluster_only = &only_cluster[only_cluster.find("---").unwrap()..];
    refused(
        Flow::Init,
        cluster_only,
        "needs a InitConfiguration document",
    );
    refused(
        Flow::Init,
        &init_v1beta4("").replace("10.244.0.0/16", "10.244.0.0/33"),
        "podSubnet: `10.244.0.0/33` is not a CIDR",
    );
    refused(
        Flow::Init,
        &init_v1beta4("").replace("10.96.0.0/12", "10.96.0.0"),
        "serviceSubnet: `10.96.0.0` is not a CIDR",
    );
    refused(
        Flow::Init,
        &init_v1beta4("").replace("10.96.0.0/12", "10.0.0.0/8"),
        "prefix outside",
    );
    refused(
        Flow::Init,
        &init_v1beta4("").replace("controlPlaneEndpoint: 10.213.100.5:6443\n", ""),
        "controlPlaneEndpoint: required",
    );
    refused(
        Flow::Init,
        &init_v1beta4("").replace("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.29.0"),
        "too old",
    );
}

#[test]
fn node_registration_is_checked() {
    refused(
        Flow::Join,
        &join_v1beta4("").replace("name: worker-1", "name: Worker_1"),
        "is not a valid node name",
    );
    refused(
        Flow::Join,
        &join_v1beta4("").replace(
            "  taints: []\n",
            "  taints:\n    - key: a\n      effect: Sometimes\n",
        ),
        "taints[0]",
    );
    refused(
        Flow::Join,
        &join_v1beta4("").replace("unix:///run", "tcp:///run"),
        "is not a unix:// endpoint",
    );
    refused(
        Flow::Init,
        &init_v1beta4("").replace("cgroupDriver: systemd", "cgroupDriver: systemdd"),
        "cgroupDriver",
    );
}

#[test]
fn unknown_fields_are_warnings_as_under_strict_decoding() {
    let typo = init_v1beta4("").replace(
        "controlPlaneEndpoint: 10.213.100.5:6443",
        "controlPlaneEndpoint: 10.213.100.5:6443\ncontrolPlaneEndpiont: x",
    );
    let c = run(Flow::Init, &typo, &own());
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("unknown field `controlPlaneEndpiont`")),
        "{:?}",
        c.warnings
    );
    // v1beta3's apiServer.timeoutForControlPlane moved to InitConfiguration.timeouts in v1beta4.
    let moved =
        init_v1beta4("").replace("  certSANs:", "  timeoutForControlPlane: 4m0s\n  certSANs:");
    let c = run(Flow::Init, &moved, &own());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("unknown field `timeoutForControlPlane`")),
        "{:?}",
        c.warnings
    );
}
