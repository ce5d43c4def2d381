//! The control-plane endpoint: a kube-vip VIP must sit in a control-plane host's subnet and
//! be free before the cluster exists.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Check, Finding, Subject};

pub(super) fn checks() -> Vec<Box<dyn Check>> {
    vec![Box::new(Vip)]
}

struct Vip;
impl Check for Vip {
    fn name(&self) -> &'static str {
        "vip"
    }
    fn describe(&self) -> &'static str {
        "the kube-vip VIP is in a control-plane host's subnet and nothing answers on it yet"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        let Some(k) = hosts.iter().find_map(|h| h.kubernetes) else {
            return Vec::new();
        };
        let Some(vip) = &k.vip else {
            return Vec::new();
        };
        let Ok(vip_ip) = vip.parse::<IpAddr>() else {
            // Spec validation already refused a VIP that is not an IP address.
            return Vec::new();
        };
        let initialized = hosts.iter().any(|h| h.has_path(kubegrid_plan::ADMIN_CONF));
        let probe = kubegrid_plan::vip_probe(vip, k.endpoint_port);
        let mut out = Vec::new();
        for h in hosts.iter().filter(|h| h.has_role("control-plane")) {
            let finding = |seen: String, expected: &str, hint: &str| Finding {
                host: h.name.to_string(),
                check: "vip",
                seen,
                expected: expected.to_string(),
                hint: hint.to_string(),
            };
            if h.address == vip {
                out.push(finding(
                    format!("the VIP {vip} is this host's own address"),
                    "a VIP no host uses",
                    "pick an unused address in the control-plane subnet",
                ));
                continue;
            }
            let subnet = h
                .facts
                .interfaces
                .iter()
                .flat_map(|i| &i.addresses)
                .filter_map(|a| a.parse::<IpNet>().ok())
                .find(|net| net.addr().to_string() == h.address);
            match subnet {
                Some(net) if !net.contains(&vip_ip) => out.push(finding(
                    format!("VIP {vip} outside the host's subnet {}", net.trunc()),
                    "a VIP in the subnet of every control-plane host's address",
                    "kube-vip announces the VIP by ARP, which only reaches the local subnet",
                )),
                None => out.push(finding(
                    format!("no interface carries the host's address {}", h.address),
                    "the Node address on one of the host's interfaces",
                    "set the Node's address to one the host has (ip -o addr shows them)",
                )),
                Some(_) => {}
            }
            // Once the cluster exists, kube-vip itself holds the VIP.
            let answered = h.facts.tcp_probes.get(&probe).copied();
            if !initialized
                && matches!(
                    answered,
                    Some(
                        kubegrid_agent::facts::TcpProbe::Open
                            | kubegrid_agent::facts::TcpProbe::Refused
                    )
                )
            {
                let how = match answered {
                    Some(kubegrid_agent::facts::TcpProbe::Open) => "a connection was accepted",
                    _ => "the connection was refused, so a host holds the address",
                };
                out.push(finding(
                    format!("something answers on {probe} ({how})"),
                    "no host answering on the VIP before the cluster exists",
                    "another machine holds the VIP; pick a free address",
                ));
            }
        }
        out
    }
}
