//! Golden files for the Kubernetes templates in every fixture variant, and structural checks
//! of what kubeadm, kube-vip, etcd and Cilium read from them.

use kubegrid_plan::render;
use serde::Deserialize;
use serde_yaml::Value;

use crate::{
    common::{assert_golden, golden_path},
    k8s_fixtures::{
        CA_CERT_HASH, CERTIFICATE_KEY, LOAD_BALANCER, TOKEN, VARIANTS, VIP, k8s_cluster, k8s_host,
        node_names, variant,
    },
};

pub const INIT: &str = "kubeadm/init.yaml.tera";
pub const JOIN: &str = "kubeadm/join.yaml.tera";
const UPGRADE: &str = "kubeadm/upgrade.sh.tera";
pub const KUBE_VIP: &str = "kube-vip/kube-vip.yaml.tera";
pub const ETCD: &str = "etcd/etcd.service.tera";
/// The external etcd member's first-start environment.
pub const ETCD_ENV: &str = "etcd/initial-cluster.env.tera";
pub const CILIUM: &str = "cni/cilium.yaml.tera";
const KUBELET_UNIT: &str = "kubelet/kubelet.service.tera";
const KUBELET_DROP_IN: &str = "kubelet/10-kubeadm.conf.tera";

/// Renders `template` for Node `host` of the variant labelled `label`.
pub fn render_for(template: &str, label: &str, host: &str) -> String {
    render(
        template,
        &k8s_cluster(variant(label)),
        &k8s_host(host),
        None,
    )
    .unwrap_or_else(|e| panic!("{template} for {host} in {label}: {e}"))
}

/// Every YAML document of a rendered multi-document file.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{e}\n{text}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The document of `kind`; exactly one must exist.
pub fn doc<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} document");
    found[0]
}

#[test]
fn kubeadm_init_matches_golden_in_every_variant() {
    for v in VARIANTS {
        let text = render_for(INIT, v.label, "cp-1");
        assert_golden(&golden_path(INIT, v.label), &text);
    }
}

#[test]
fn kubeadm_join_matches_golden_for_control_planes_and_workers() {
    for v in VARIANTS {
        for host in ["cp-2", "worker-1"] {
            let text = render_for(JOIN, v.label, host);
            assert_golden(&golden_path(JOIN, &format!("{}-{host}", v.label)), &text);
        }
    }
}

#[test]
fn kubeadm_upgrade_script_matches_golden_and_is_valid_shell() {
    let text = render_for(UPGRADE, "v1.31-external-lb", "cp-2");
    assert_golden(&golden_path(UPGRADE, "v1.31-external-lb-cp-2"), &text);
    assert!(text.starts_with("#!/bin/sh\n"), "{text}");
    assert!(text.contains("want=v1.31.4\n"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("upgrade.sh");
    std::fs::write(&script, &text).unwrap();
    let syntax = std::process::Command::new("sh")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success(), "sh -n refuses the script:\n{text}");
    let usage = std::process::Command::new("sh")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2), "no argument is a usage error");
}

#[test]
fn kubelet_unit_and_drop_in_match_golden() {
    for template in [KUBELET_UNIT, KUBELET_DROP_IN] {
        let text = render_for(template, "v1.31-stacked-vip", "worker-1");
        assert_golden(&golden_path(template, "gpu-lab"), &text);
    }
}

#[test]
fn kube_vip_matches_golden_on_the_init_node_and_a_joining_one() {
    for v in VARIANTS.iter().filter(|v| v.vip) {
        for host in ["cp-1", "cp-2"] {
            let text = render_for(KUBE_VIP, v.label, host);
            assert_golden(
                &golden_path(KUBE_VIP, &format!("{}-{host}", v.label)),
                &text,
            );
        }
    }
}

#[test]
fn etcd_unit_matches_golden() {
    let text = render_for(ETCD, "v1.31-external-lb", "cp-2");
    assert_golden(&golden_path(ETCD, "v1.31-external-lb-cp-2"), &text);
    let env = render_for(ETCD_ENV, "v1.31-external-lb", "cp-2");
    assert_golden(&golden_path(ETCD_ENV, "v1.31-external-lb-cp-2"), &env);
}

#[test]
fn cilium_matches_golden() {
    for label in ["v1.31-stacked-vip", "v1.30-external-lb"] {
        let text = render_for(CILIUM, label, "cp-1");
        assert_golden(&golden_path(CILIUM, label), &text);
    }
}

#[test]
fn init_config_uses_the_kubeadm_api_of_the_version() {
    for v in VARIANTS {
        let text = render_for(INIT, v.label, "cp-1");
        let docs = yaml_docs(&text);
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "InitConfiguration",
                "ClusterConfiguration",
                "KubeletConfiguration",
                "KubeProxyConfiguration"
            ],
            "{}",
            v.label
        );
        let v1beta4 = v.version.starts_with("1.31");
        let api = if v1beta4 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        };
        let init = doc(&docs, "InitConfiguration");
        let cluster = doc(&docs, "ClusterConfiguration");
        assert_eq!(init["apiVersion"], api);
        assert_eq!(cluster["apiVersion"], api);
        assert_eq!(
            doc(&docs, "KubeletConfiguration")["apiVersion"],
            "kubelet.config.k8s.io/v1beta1"
        );
        assert_eq!(
            doc(&docs, "KubeProxyConfiguration")["apiVersion"],
            "kubeproxy.config.k8s.io/v1alpha1"
        );
        let args = &init["nodeRegistration"]["kubeletExtraArgs"];
        if v1beta4 {
            let list = args.as_sequence().expect("v1beta4 extraArgs are a list");
            assert_eq!(list[0]["name"], "node-ip");
            assert_eq!(list[0]["value"], "10.0.0.11");
            assert_eq!(cluster["certificateValidityPeriod"], "8760h0m0s");
            assert_eq!(cluster["caCertificateValidityPeriod"], "87600h0m0s");
        } else {
            assert_eq!(args.as_mapping().unwrap().len(), 1, "{}", v.label);
            assert_eq!(args["node-ip"], "10.0.0.11");
            assert!(cluster.get("certificateValidityPeriod").is_none());
            assert!(cluster.get("caCertificateValidityPeriod").is_none());
        }
        assert_eq!(cluster["kubernetesVersion"], format!("v{}", v.version));
    }
}

#[test]
fn init_config_carries_the_spec() {
    for v in VARIANTS {
        let docs = yaml_docs(&render_for(INIT, v.label, "cp-1"));
        let init = doc(&docs, "InitConfiguration");
        let cluster = doc(&docs, "ClusterConfiguration");
        let token = &init["bootstrapTokens"][0];
        assert_eq!(token["token"], TOKEN);
        assert_eq!(token["ttl"], "2h0m0s");
        assert_eq!(
            token["usages"],
            serde_yaml::to_value(["signing", "authentication"]).unwrap()
        );
        assert_eq!(init["certificateKey"], CERTIFICATE_KEY);
        assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "10.0.0.11");
        assert_eq!(init["localAPIEndpoint"]["bindPort"], 6443);
        let registration = &init["nodeRegistration"];
        assert_eq!(registration["name"], "cp-1");
        assert_eq!(
            registration["criSocket"],
            "unix:///run/containerd/containerd.sock"
        );
        let taints = registration["taints"].as_sequence().unwrap();
        assert_eq!(taints.len(), 1);
        assert_eq!(taints[0]["key"], "node-role.kubernetes.io/control-plane");
        assert_eq!(taints[0]["effect"], "NoSchedule");

        let endpoint = if v.vip { VIP } else { LOAD_BALANCER };
        assert_eq!(cluster["clusterName"], "gpu-lab");
        assert_eq!(cluster["controlPlaneEndpoint"], format!("{endpoint}:6443"));
        assert_eq!(cluster["networking"]["podSubnet"], "10.244.0.0/16");
        assert_eq!(cluster["networking"]["serviceSubnet"], "10.96.0.0/12");
        assert_eq!(cluster["networking"]["dnsDomain"], "cluster.local");
        let sans = cluster["apiServer"]["certSANs"].as_sequence().unwrap();
        assert!(sans.iter().any(|s| s == endpoint), "{sans:?}");
        let etcd = &cluster["etcd"];
        if v.external_etcd {
            assert!(etcd.get("local").is_none());
            assert_eq!(
                etcd["external"]["endpoints"],
                serde_yaml::to_value([
                    "https://10.0.0.11:2379",
                    "https://10.0.0.12:2379",
                    "https://10.0.0.13:2379"
                ])
                .unwrap()
            );
            assert_eq!(
                etcd["external"]["caFile"],
                "/etc/kubernetes/pki/etcd/ca.crt"
            );
            assert_eq!(
                etcd["external"]["certFile"],
                "/etc/kubernetes/pki/apiserver-etcd-client.crt"
            );
            assert_eq!(
                etcd["external"]["keyFile"],
                "/etc/kubernetes/pki/apiserver-etcd-client.key"
            );
        } else {
            assert!(etcd.get("external").is_none());
            assert_eq!(etcd["local"]["dataDir"], "/var/lib/etcd");
        }

        let kubelet = doc(&docs, "KubeletConfiguration");
        assert_eq!(kubelet["cgroupDriver"], "systemd");
        assert_eq!(
            kubelet["containerRuntimeEndpoint"],
            "unix:///run/containerd/containerd.sock"
        );
        assert!(kubelet.get("clusterDNS").is_none(), "kubeadm fills it");
        let proxy = doc(&docs, "KubeProxyConfiguration");
        assert_eq!(proxy["mode"], "iptables");
        assert_eq!(proxy["clusterCIDR"], "10.244.0.0/16");
    }
}

#[test]
fn join_config_differs_for_control_planes_and_workers() {
    for v in VARIANTS {
        let v1beta4 = v.version.starts_with("1.31");
        for host in node_names().filter(|h| *h != "cp-1") {
            let docs = yaml_docs(&render_for(JOIN, v.label, host));
            assert_eq!(docs.len(), 1);
            let join = doc(&docs, "JoinConfiguration");
            let discovery = &join["discovery"]["bootstrapToken"];
            assert_eq!(discovery["token"], TOKEN);
            let endpoint = if v.vip { VIP } else { LOAD_BALANCER };
            assert_eq!(discovery["apiServerEndpoint"], format!("{endpoint}:6443"));
            assert_eq!(discovery["caCertHashes"][0], CA_CERT_HASH);
            let registration = &join["nodeRegistration"];
            assert_eq!(registration["name"], host);
            let taint_keys: Vec<_> = registration["taints"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|t| t["key"].as_str().unwrap())
                .collect();
            let args = &registration["kubeletExtraArgs"];
            let arg = |name: &str| -> Option<&Value> {
                if v1beta4 {
                    args.as_sequence()
                        .unwrap()
                        .iter()
                        .find(|a| a["name"] == name)
                        .map(|a| &a["value"])
                } else {
                    args.get(name)
                }
            };
            if host.starts_with("cp-") {
                assert_eq!(taint_keys, ["node-role.kubernetes.io/control-plane"]);
                let control_plane = &join["controlPlane"];
                assert_eq!(control_plane["certificateKey"], CERTIFICATE_KEY);
                assert_eq!(
                    control_plane["localAPIEndpoint"]["advertiseAddress"],
                    k8s_host(host).address.as_str()
                );
                assert!(arg("node-labels").is_none());
            } else {
                assert_eq!(taint_keys, ["nvidia.com/gpu"]);
                assert_eq!(registration["taints"][0]["value"], "present");
                assert!(join.get("controlPlane").is_none(), "{host}");
                assert_eq!(
                    arg("node-labels").unwrap(),
                    "nvidia.com/gpu.present=true,topology.kubernetes.io/zone=rack-a"
                );
            }
            assert_eq!(arg("node-ip").unwrap(), k8s_host(host).address.as_str());
        }
    }
}

#[test]
fn secrets_appear_only_in_kubeadm_configs() {
    for v in VARIANTS {
        for host in node_names() {
            let h = k8s_host(host);
            let cluster = k8s_cluster(v);
            let mut templates = vec![KUBELET_UNIT, KUBELET_DROP_IN, CILIUM];
            if v.vip && h.has_role("control-plane") {
                templates.push(KUBE_VIP);
            }
            if v.external_etcd && h.has_role("etcd") {
                templates.push(ETCD);
            }
            for template in templates {
                let text = render(template, &cluster, &h, None).unwrap();
                assert!(
                    !text.contains(TOKEN) && !text.contains(CERTIFICATE_KEY),
                    "{template} for {host} in {} carries a join secret",
                    v.label
                );
            }
        }
        let worker_join = render_for(JOIN, v.label, "worker-1");
        assert!(worker_join.contains(TOKEN));
        assert!(
            !worker_join.contains(CERTIFICATE_KEY),
            "workers must not get the key to the control-plane certificates"
        );
    }
}

#[test]
fn kube_vip_uses_super_admin_only_on_the_init_node() {
    let volume_path = |host: &str| {
        let docs = yaml_docs(&render_for(KUBE_VIP, "v1.31-stacked-vip", host));
        let pod = doc(&docs, "Pod");
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
            "/etc/kubernetes/admin.conf"
        );
        pod["spec"]["volumes"][0]["hostPath"]["path"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(volume_path("cp-1"), "/etc/kubernetes/super-admin.conf");
    assert_eq!(volume_path("cp-2"), "/etc/kubernetes/admin.conf");

    let docs = yaml_docs(&render_for(KUBE_VIP, "v1.30-stacked-vip", "cp-1"));
    let env = &doc(&docs, "Pod")["spec"]["containers"][0]["env"];
    let get = |name: &str| {
        env.as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))["value"]
            .clone()
    };
    assert_eq!(get("address"), VIP);
    assert_eq!(get("vip_interface"), "eth0");
    assert_eq!(get("vip_arp"), "true");
    assert_eq!(get("cp_enable"), "true");
    assert_eq!(get("vip_leaderelection"), "true");
    assert_eq!(get("port"), "6443");
}

#[test]
fn kube_vip_without_a_vip_is_an_error() {
    let err = render(
        KUBE_VIP,
        &k8s_cluster(variant("v1.31-external-lb")),
        &k8s_host("cp-1"),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs a VIP"), "{err}");
}

#[test]
fn kubernetes_templates_need_the_kubernetes_context() {
    let cluster = kubegrid_plan::ClusterContext::new("plain", "1.7").unwrap();
    for template in [INIT, JOIN, KUBE_VIP, ETCD, CILIUM] {
        let err = render(template, &cluster, &k8s_host("cp-1"), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs cluster.kubernetes"),
            "{template}: {err}"
        );
    }
}
