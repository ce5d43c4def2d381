//! What `lab list` shows, as a table or as JSON.

use std::{collections::BTreeMap, fmt, path::PathBuf};

use serde::Serialize;

use crate::{LabState, Layout, LinkRate, host, identity, net};

/// The whole lab as seen now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// The lab's state directory.
    pub state_dir: PathBuf,
    /// Whether a lab exists there.
    pub exists: bool,
    /// Its address range.
    pub subnet: Option<String>,
    /// Its bridge on the machine.
    pub bridge: Option<String>,
    /// The machine's address on the bridge.
    pub gateway: Option<String>,
    /// The rate every link is shaped to (tc syntax, `50mbit`); `None` when unlimited.
    pub link_rate: Option<LinkRate>,
    /// The same rate in bits per second.
    pub link_rate_bits_per_second: Option<u64>,
    /// Private key that logs in as root or `kube` on every host.
    pub ssh_key: PathBuf,
    /// known_hosts with every host's key.
    pub known_hosts: PathBuf,
    /// Cluster spec per host group, for `kubegrid apply -f`.
    pub specs: BTreeMap<String, PathBuf>,
    /// The hosts.
    pub hosts: Vec<HostView>,
}

/// One host as seen now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// Host name and hostname.
    pub name: String,
    /// Group (name prefix).
    pub group: String,
    /// `running` or `stopped`.
    pub state: &'static str,
    /// `up`, `cut`, `down` (host stopped) or `missing`.
    pub link: &'static str,
    /// Address on the lab bridge.
    pub address: String,
    /// The Debian release it runs.
    pub release: String,
    /// Users that accept the lab key: root, and `kube` with passwordless sudo.
    pub users: Vec<&'static str>,
    /// /etc/machine-id.
    pub machine_id: String,
    /// SSH host key fingerprint.
    pub host_key: String,
    /// nspawn pid while running.
    pub pid: Option<u32>,
    /// Console log of the last boot.
    pub console_log: PathBuf,
}

impl Listing {
    /// Builds the listing from the state (or its absence).
    pub fn new(layout: &Layout, state: Option<&LabState>) -> Self {
        let hosts = state
            .map(|s| {
                s.hosts
                    .iter()
                    .map(|h| {
                        let running = host::running(h);
                        let link = match net::link_is_up(&s.veth(h)) {
                            None => "missing",
                            Some(_) if h.cut => "cut",
                            Some(true) => "up",
                            Some(false) => "down",
                        };
                        HostView {
                            name: h.name.clone(),
                            group: h.group.clone(),
                            state: if running { "running" } else { "stopped" },
                            link,
                            address: h.address.to_string(),
                            release: h.release.clone(),
                            users: vec!["root", identity::SUDO_USER],
                            machine_id: h.machine_id.clone(),
                            host_key: identity::fingerprint(&h.host_key),
                            pid: h.pid.filter(|_| running),
                            console_log: layout.console_log(&h.name),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let specs = state
            .map(|s| {
                s.hosts
                    .iter()
                    .map(|h| (h.group.clone(), layout.spec(&h.group)))
                    .collect()
            })
            .unwrap_or_default();
        Listing {
            state_dir: layout.dir.clone(),
            exists: state.is_some(),
            subnet: state.map(|s| s.subnet.to_string()),
            bridge: state.map(|s| s.bridge()),
            gateway: state.map(|s| s.gateway().to_string()),
            link_rate: state.and_then(|s| s.link_rate),
            link_rate_bits_per_second: state
                .and_then(|s| s.link_rate)
                .map(LinkRate::bits_per_second),
            ssh_key: layout.ssh_key(),
            known_hosts: layout.known_hosts(),
            specs,
            hosts,
        }
    }
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.exists {
            return writeln!(
                f,
                "no lab in {}; create one with `kubegrid lab up`",
                self.state_dir.display()
            );
        }
        writeln!(
            f,
            "{:<16} {:<8} {:<8} {:<16} {:<9} USERS",
            "NAME", "STATE", "LINK", "ADDRESS", "RELEASE"
        )?;
        for h in &self.hosts {
            writeln!(
                f,
                "{:<16} {:<8} {:<8} {:<16} {:<9} {}",
                h.name,
                h.state,
                h.link,
                h.address,
                h.release,
                h.users.join(",")
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "subnet {} on bridge {} (machine: {})",
            self.subnet.as_deref().unwrap_or("-"),
            self.bridge.as_deref().unwrap_or("-"),
            self.gateway.as_deref().unwrap_or("-")
        )?;
        match self.link_rate {
            Some(rate) => writeln!(
                f,
                "link rate:   {rate} each way on every host link and the machine's side of the bridge (tbf)"
            )?,
            None => writeln!(
                f,
                "link rate:   unlimited (set one with `kubegrid lab shape --rate`)"
            )?,
        }
        writeln!(f, "ssh key:     {}", self.ssh_key.display())?;
        writeln!(f, "known_hosts: {}", self.known_hosts.display())?;
        for (group, path) in &self.specs {
            writeln!(f, "spec {group}: kubegrid apply -f {}", path.display())?;
        }
        if let Some(h) = self.hosts.first() {
            writeln!(
                f,
                "try:         ssh -i {} -o UserKnownHostsFile={} root@{}",
                self.ssh_key.display(),
                self.known_hosts.display(),
                h.address
            )?;
        }
        Ok(())
    }
}
