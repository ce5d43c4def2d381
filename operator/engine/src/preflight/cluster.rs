//! Checks that compare hosts with each other or with the engine.

use std::collections::BTreeMap;

use super::{Check, Finding, Subject};

/// Largest tolerated clock offset from the engine. etcd and TLS tolerate little more, and
/// a pair of hosts can then differ by at most twice this.
const MAX_SKEW_MS: i64 = 1500;

pub(super) fn checks() -> Vec<Box<dyn Check>> {
    vec![Box::new(Ports), Box::new(Unique), Box::new(Time)]
}

/// Ports Kubernetes needs free, by role ("" = every host).
const PORTS: &[(&str, u16, &str)] = &[
    ("control-plane", 6443, "kube-apiserver"),
    ("control-plane", 10257, "kube-controller-manager"),
    ("control-plane", 10259, "kube-scheduler"),
    ("etcd", 2379, "etcd client"),
    ("etcd", 2380, "etcd peer"),
    ("", 10250, "kubelet"),
    ("", 10256, "kube-proxy health"),
];

struct Ports;
impl Check for Ports {
    fn name(&self) -> &'static str {
        "ports"
    }
    fn describe(&self) -> &'static str {
        "the ports Kubernetes needs on each host's roles are free"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        let mut out = Vec::new();
        for h in hosts {
            // A host that already runs what kubegrid installed listens there by design.
            let joined = h.has_path(kubegrid_plan::KUBELET_CONF);
            let etcd_installed = h.has_path(kubegrid_plan::ETCD_UNIT);
            let busy: Vec<String> = PORTS
                .iter()
                .filter(|(role, _, _)| role.is_empty() || h.has_role(role))
                .filter(|(role, _, _)| {
                    if *role == "etcd" {
                        !etcd_installed
                    } else {
                        !joined
                    }
                })
                .filter(|(_, port, _)| h.facts.listening.iter().any(|l| l.port == *port))
                .map(|(_, port, what)| format!("{port} ({what})"))
                .collect();
            if !busy.is_empty() {
                out.push(Finding {
                    host: h.name.to_string(),
                    check: self.name(),
                    seen: format!("in use: {}", busy.join(", ")),
                    expected: "free".into(),
                    hint: "stop whatever listens there (ss -ltnp shows it)".into(),
                });
            }
        }
        out
    }
}

struct Unique;
impl Check for Unique {
    fn name(&self) -> &'static str {
        "unique-identity"
    }
    fn describe(&self) -> &'static str {
        "hostnames and machine-ids differ between hosts"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        let mut out = Vec::new();
        for (what, get, hint) in [
            (
                "hostname",
                (|h: &Subject<'_>| h.facts.hostname.clone()) as fn(&Subject<'_>) -> String,
                "give each host its own hostname (hostnamectl set-hostname)",
            ),
            (
                "machine-id",
                |h: &Subject<'_>| h.facts.machine_id.clone(),
                "cloned images share /etc/machine-id: empty it and run systemd-machine-id-setup",
            ),
        ] {
            let mut by: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for h in hosts {
                by.entry(get(h)).or_default().push(h.name);
            }
            for h in hosts {
                let value = get(h);
                let same = &by[&value];
                if value.is_empty() || same.len() > 1 {
                    let others: Vec<&str> = same.iter().copied().filter(|n| *n != h.name).collect();
                    out.push(Finding {
                        host: h.name.to_string(),
                        check: self.name(),
                        seen: if value.is_empty() {
                            format!("empty {what}")
                        } else {
                            format!("{what} {value:?} also on {}", others.join(", "))
                        },
                        expected: format!("a {what} no other host has"),
                        hint: hint.into(),
                    });
                }
            }
        }
        out
    }
}

struct Time;
impl Check for Time {
    fn name(&self) -> &'static str {
        "time"
    }
    fn describe(&self) -> &'static str {
        "each host's clock is within 1.5 s of this machine's"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        hosts
            .iter()
            .filter(|h| h.clock_offset_ms.abs() > MAX_SKEW_MS)
            .map(|h| Finding {
                host: h.name.to_string(),
                check: self.name(),
                seen: format!("clock {:+} ms from this machine", h.clock_offset_ms),
                expected: format!("within ±{MAX_SKEW_MS} ms"),
                hint: "run NTP (systemd-timesyncd or chrony) on every host".into(),
            })
            .collect()
    }
}
