//! Checks of ClusterConfiguration and of the component configs kubeadm passes on.

use serde_json::Value;

use super::{
    Checked,
    docs::{args, fields},
};
use crate::checks::{host_port, https_url, is_dns_subdomain, overlaps, parse_cidr_list};

/// ClusterConfiguration.
pub fn cluster(c: &mut Checked, doc: &Value, v4: bool, exists: &dyn Fn(&str) -> bool) {
    let at_ = "ClusterConfiguration";
    let both = [
        "etcd",
        "networking",
        "kubernetesVersion",
        "controlPlaneEndpoint",
        "apiServer",
        "controllerManager",
        "scheduler",
        "dns",
        "certificatesDir",
        "imageRepository",
        "featureGates",
        "clusterName",
    ];
    let v4_only = [
        "encryptionAlgorithm",
        "certificateValidityPeriod",
        "caCertificateValidityPeriod",
        "proxy",
    ];
    c.known_fields(doc, at_, &fields(&both, &v4_only, v4));
    match c.string(doc, "controlPlaneEndpoint", at_) {
        Some(ep) => match host_port(ep, false) {
            Ok((_, port)) => {
                let url = format!(
                    "https://{ep}{}",
                    if port.is_some() {
                        String::new()
                    } else {
                        ":6443".into()
                    }
                );
                c.facts.server = Some(url);
            }
            Err(e) => c.problem(format!("{at_}.controlPlaneEndpoint: {e}")),
        },
        None => c.problem(format!(
            "{at_}.controlPlaneEndpoint: required (the load balancer or VIP address all nodes use)"
        )),
    }
    networking(c, doc, at_);
    for component in ["apiServer", "controllerManager", "scheduler"] {
        let Some(comp) = c.map(doc, component, at_) else {
            continue;
        };
        let at_ = format!("{at_}.{component}");
        let mut known = vec!["extraArgs", "extraVolumes"];
        match (component, v4) {
            ("apiServer", false) => known.extend(["certSANs", "timeoutForControlPlane"]),
            ("apiServer", true) => known.extend(["certSANs", "extraEnvs"]),
            (_, true) => known.push("extraEnvs"),
            _ => {}
        }
        c.known_fields(comp, &at_, &known);
        args(c, comp, "extraArgs", &at_, v4);
        for san in c.strings(comp, "certSANs", &at_) {
            let wildcard = san.strip_prefix("*.").unwrap_or(&san);
            if san.parse::<std::net::IpAddr>().is_err() && !is_dns_subdomain(wildcard) {
                c.problem(format!(
                    "{at_}.certSANs: `{san}` is neither an IP address nor a DNS name"
                ));
            }
        }
    }
    if let Some(dir) = c.string(doc, "certificatesDir", at_)
        && !dir.starts_with('/')
    {
        c.problem(format!(
            "{at_}.certificatesDir: `{dir}` is not an absolute path"
        ));
    }
    etcd(c, doc, at_, v4, exists);
}

fn networking(c: &mut Checked, doc: &Value, at_: &str) {
    let Some(net) = c.map(doc, "networking", at_) else {
        c.problem(format!(
            "{at_}.networking: required, with podSubnet and serviceSubnet"
        ));
        return;
    };
    let at_ = format!("{at_}.networking");
    c.known_fields(net, &at_, &["serviceSubnet", "podSubnet", "dnsDomain"]);
    let mut subnets = Vec::new();
    // kube-controller-manager's default node mask (/24, /64) must fit in the pod subnet, at
    // most 16 bits apart; the service subnet holds at most 2^20 addresses.
    for (key, v4_limit, v6_limit) in [
        ("podSubnet", (8, 24), (48, 64)),
        ("serviceSubnet", (12, 32), (108, 128)),
    ] {
        match c.string(net, key, &at_).map(parse_cidr_list) {
            Some(Ok(cidrs)) => {
                for (ip, len) in &cidrs {
                    let (lo, hi) = if ip.is_ipv4() { v4_limit } else { v6_limit };
                    if !(lo..=hi).contains(len) {
                        c.problem(format!("{at_}.{key}: {ip}/{len} has a prefix outside /{lo}../{hi}, which kubeadm refuses"));
                    }
                }
                subnets.push(cidrs);
            }
            Some(Err(e)) => c.problem(format!("{at_}.{key}: {e}")),
            None => c.problem(format!(
                "{at_}.{key}: required, a CIDR like {}",
                if key == "podSubnet" {
                    "10.244.0.0/16"
                } else {
                    "10.96.0.0/12"
                }
            )),
        }
    }
    if let [pods, services] = subnets.as_slice()
        && pods
            .iter()
            .any(|p| services.iter().any(|s| overlaps(*p, *s)))
    {
        c.warn(format!("{at_}: podSubnet and serviceSubnet overlap"));
    }
    if let Some(domain) = c.string(net, "dnsDomain", &at_)
        && !is_dns_subdomain(domain)
    {
        c.problem(format!("{at_}.dnsDomain: `{domain}` is not a DNS name"));
    }
}

fn etcd(c: &mut Checked, doc: &Value, at_: &str, v4: bool, exists: &dyn Fn(&str) -> bool) {
    let etcd = c.map(doc, "etcd", at_);
    let at_ = format!("{at_}.etcd");
    let external = etcd.and_then(|e| c.map(e, "external", &at_));
    let local = etcd.and_then(|e| c.map(e, "local", &at_));
    if let Some(e) = etcd {
        c.known_fields(e, &at_, &["local", "external"]);
    }
    c.facts.local_etcd = external.is_none();
    if let (Some(_), Some(_)) = (local, external) {
        c.problem(format!("{at_}: local and external are mutually exclusive"));
    }
    if let Some(local) = local {
        let at_ = format!("{at_}.local");
        let mut known = vec![
            "imageRepository",
            "imageTag",
            "dataDir",
            "extraArgs",
            "serverCertSANs",
            "peerCertSANs",
        ];
        if v4 {
            known.push("extraEnvs");
        }
        c.known_fields(local, &at_, &known);
        args(c, local, "extraArgs", &at_, v4);
    }
    let Some(ext) = external else { return };
    let at_ = format!("{at_}.external");
    c.known_fields(ext, &at_, &["endpoints", "caFile", "certFile", "keyFile"]);
    let endpoints = c.strings(ext, "endpoints", &at_);
    if endpoints.is_empty() {
        c.problem(format!(
            "{at_}.endpoints: required, a non-empty list of https://host:2379 URLs"
        ));
    }
    for ep in &endpoints {
        if let Err(e) = https_url(ep) {
            c.problem(format!("{at_}.endpoints: {e}"));
        }
    }
    for key in ["caFile", "certFile", "keyFile"] {
        match c.string(ext, key, &at_) {
            Some(path) if !path.starts_with('/') => c.problem(format!("{at_}.{key}: `{path}` is not an absolute path")),
            Some(path) if !exists(path) => c.problem(format!("[preflight] ExternalEtcdClientCertificates: {at_}.{key} {path} does not exist on this host")),
            Some(_) => {}
            None => c.problem(format!("{at_}.{key}: required (kubegrid's etcd client certificate files)")),
        }
    }
}

/// KubeletConfiguration: the fields kubegrid sets.
pub fn kubelet(c: &mut Checked, doc: &Value) {
    if let Some(driver) = c.string(doc, "cgroupDriver", "KubeletConfiguration")
        && driver != "systemd"
        && driver != "cgroupfs"
    {
        c.problem(format!(
            "KubeletConfiguration.cgroupDriver: `{driver}` is not systemd or cgroupfs"
        ));
    }
    if let Some(ep) = c.string(doc, "containerRuntimeEndpoint", "KubeletConfiguration")
        && !ep.starts_with("unix://")
    {
        c.problem(format!(
            "KubeletConfiguration.containerRuntimeEndpoint: `{ep}` is not a unix:// endpoint"
        ));
    }
    c.facts.kubelet_config = Some(doc.clone());
}

/// KubeProxyConfiguration: the fields kubegrid sets.
pub fn kube_proxy(c: &mut Checked, doc: &Value) {
    if let Some(mode) = c.string(doc, "mode", "KubeProxyConfiguration")
        && !["", "iptables", "ipvs", "nftables"].contains(&mode)
    {
        c.problem(format!(
            "KubeProxyConfiguration.mode: `{mode}` is not iptables, ipvs or nftables"
        ));
    }
    if let Some(Err(e)) = c
        .string(doc, "clusterCIDR", "KubeProxyConfiguration")
        .map(parse_cidr_list)
    {
        c.problem(format!("KubeProxyConfiguration.clusterCIDR: {e}"));
    }
}
