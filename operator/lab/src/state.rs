//! The lab's state file: which hosts exist, their addresses, identities and processes.
//!
//! A host is recorded *before* anything is created for it, and the file is replaced
//! atomically, so after a crash the state always names everything that might exist and
//! `down` can remove it; every teardown step tolerates pieces that were never made.

use std::{
    fs::{self, File},
    io::Write,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::{Error, LinkRate, Result};

/// Current version of the state file format.
const VERSION: u32 = 1;

/// The whole lab, as stored in `<state-dir>/lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    /// Format version.
    pub version: u32,
    /// Short random id that names the lab's bridge, links and namespaces.
    pub id: String,
    /// The private /24 (or other prefix) that hosts get addresses from.
    pub subnet: Ipv4Net,
    /// The hosts, in creation order.
    pub hosts: Vec<HostRecord>,
    /// The rate every lab link is shaped to (`lab up --link-rate`, `lab shape`); `None`
    /// leaves links unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_rate: Option<LinkRate>,
}

/// How a host's writable rootfs is made.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RootfsMode {
    /// overlayfs on the cached base.
    Overlay,
    /// A full copy of the base, where overlayfs cannot be used.
    Copy,
}

/// One lab host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HostRecord {
    /// Host name, also its hostname.
    pub name: String,
    /// The group (name prefix) it was created under; each group gets a cluster spec.
    pub group: String,
    /// Its address on the lab bridge.
    pub address: Ipv4Addr,
    /// The base rootfs its overlay sits on.
    pub base: PathBuf,
    /// The Debian release (suite) it runs; hosts recorded before releases were chosen run
    /// bookworm.
    #[serde(default = "default_release")]
    pub release: String,
    /// How its rootfs is made.
    pub rootfs: RootfsMode,
    /// Its /etc/machine-id.
    pub machine_id: String,
    /// SHA256 fingerprint of its SSH host key.
    pub host_key: String,
    /// Whether the user cut its network link.
    pub cut: bool,
    /// The systemd-nspawn process running it, if started.
    pub pid: Option<u32>,
    /// That process's start time (clock ticks since boot), to tell a reused pid apart.
    pub pid_start: Option<u64>,
    /// The per-host cgroup directories it runs in, one per hierarchy.
    pub cgroups: Vec<PathBuf>,
}

impl HostRecord {
    /// A host that has nothing created yet: no identity, no process, no cgroups.
    pub fn new(name: &str, group: &str, address: Ipv4Addr, base: &Path) -> Self {
        HostRecord {
            name: name.to_string(),
            group: group.to_string(),
            address,
            base: base.to_path_buf(),
            release: crate::SUITE.to_string(),
            rootfs: RootfsMode::Overlay,
            machine_id: String::new(),
            host_key: String::new(),
            cut: false,
            pid: None,
            pid_start: None,
            cgroups: Vec::new(),
        }
    }
}

fn default_release() -> String {
    crate::SUITE.to_string()
}

impl LabState {
    /// A new, empty lab.
    pub fn new(id: String, subnet: Ipv4Net) -> Self {
        LabState {
            version: VERSION,
            id,
            subnet,
            hosts: Vec::new(),
            link_rate: None,
        }
    }

    /// The lab's bridge on the machine.
    pub fn bridge(&self) -> String {
        format!("kgb-{}", self.id)
    }

    /// The ifb device that the bridge's ingress goes through while a link rate is set.
    pub fn ifb(&self) -> String {
        format!("kgi-{}", self.id)
    }

    /// The bridge's own address: the first in the subnet.
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.hosts().next().unwrap_or(self.subnet.network())
    }

    /// The machine-side end of a host's veth pair (at most 15 bytes, as Linux requires).
    pub fn veth(&self, host: &HostRecord) -> String {
        format!("kg{}-{}", self.id, host.address.octets()[3])
    }

    /// The network namespace a host lives in.
    pub fn netns(&self, host: &HostRecord) -> String {
        format!("kg-{}-{}", self.id, host.name)
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> Result<&HostRecord> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    /// A host by name, mutably.
    pub fn host_mut(&mut self, name: &str) -> Result<&mut HostRecord> {
        let err = self.unknown(name);
        self.hosts.iter_mut().find(|h| h.name == name).ok_or(err)
    }

    fn unknown(&self, name: &str) -> Error {
        let known: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        Error::UnknownHost {
            name: name.to_string(),
            known: if known.is_empty() {
                "(none)".into()
            } else {
                known.join(", ")
            },
        }
    }

    /// The lowest free address for a new host, skipping the gateway.
    pub fn free_address(&self) -> Result<Ipv4Addr> {
        let gateway = self.gateway();
        self.subnet
            .hosts()
            .find(|a| *a != gateway && !self.hosts.iter().any(|h| h.address == *a))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "lab subnet {} has no free address left",
                    self.subnet
                ))
            })
    }
}

/// The files and folders of a lab under its state directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The state directory.
    pub dir: PathBuf,
}

impl Layout {
    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }
    /// The lab's SSH private key; `.pub` beside it.
    pub fn ssh_key(&self) -> PathBuf {
        self.dir.join("ssh/id_ed25519")
    }
    /// known_hosts for every lab host's key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("ssh/known_hosts")
    }
    /// The cluster spec written for a host group.
    pub fn spec(&self, group: &str) -> PathBuf {
        self.dir.join("specs").join(format!("{group}.yaml"))
    }
    /// A host's own folder.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.dir.join("hosts").join(name)
    }
    /// A host's root filesystem as the container sees it.
    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("rootfs")
    }
    /// A host's console output from its last boot.
    pub fn console_log(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("console.log")
    }
    /// Where a host's cgroup tree is assembled before being bound into it.
    pub fn cgroup_tree(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("cgroup")
    }

    /// Reads the state, or `None` when there is no lab here.
    pub fn load(&self) -> Result<Option<LabState>> {
        let path = self.state_file();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::ParseState { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path)(e)),
        }
    }

    /// Writes the state atomically: a temporary file, fsync, then rename.
    pub fn save(&self, state: &LabState) -> Result<()> {
        let path = self.state_file();
        let tmp = self.dir.join(".lab.json.tmp");
        let json = serde_json::to_vec_pretty(state).map_err(|source| Error::ParseState {
            path: path.clone(),
            source,
        })?;
        write_synced(&tmp, &json)?;
        fs::rename(&tmp, &path).map_err(Error::io("replace", &path))
    }

    /// Takes the lab's exclusive lock; it is held until the guard drops.
    pub fn lock(&self) -> Result<File> {
        fs::create_dir_all(&self.dir).map_err(Error::io("create state directory", &self.dir))?;
        let path = self.dir.join("lab.lock");
        let file = File::create(&path).map_err(Error::io("create lock file", &path))?;
        file.lock().map_err(Error::io("lock", &path))?;
        Ok(file)
    }
}

/// Writes `bytes` to `path` and flushes it to disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(Error::io("create", path))?;
    f.write_all(bytes).map_err(Error::io("write", path))?;
    f.sync_all().map_err(Error::io("sync", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, address: &str) -> HostRecord {
        HostRecord::new(name, "lab", address.parse().unwrap(), Path::new("/base"))
    }

    #[test]
    fn addresses_skip_gateway_and_taken_ones() {
        let mut s = LabState::new("ab12".into(), "10.213.0.0/24".parse().unwrap());
        assert_eq!(s.gateway().to_string(), "10.213.0.1");
        assert_eq!(s.free_address().unwrap().to_string(), "10.213.0.2");
        s.hosts.push(host("lab-1", "10.213.0.2"));
        s.hosts.push(host("lab-3", "10.213.0.4"));
        assert_eq!(s.free_address().unwrap().to_string(), "10.213.0.3");
        assert_eq!(s.veth(&s.hosts[1]), "kgab12-4");
        assert!(s.veth(&s.hosts[1]).len() <= 15);
        assert_eq!(s.netns(&s.hosts[0]), "kg-ab12-lab-1");
    }

    #[test]
    fn full_subnet_is_an_error() {
        let mut s = LabState::new("ab12".into(), "10.213.0.0/30".parse().unwrap());
        s.hosts.push(host("a", "10.213.0.2"));
        assert!(
            s.free_address()
                .unwrap_err()
                .to_string()
                .contains("no free address")
        );
    }

    #[test]
    fn unknown_host_lists_known_ones() {
        let mut s = LabState::new("ab12".into(), "10.213.0.0/24".parse().unwrap());
        s.hosts.push(host("lab-1", "10.213.0.2"));
        let msg = s.host("lab-9").unwrap_err().to_string();
        assert_eq!(msg, "no lab host named `lab-9`; known hosts: lab-1");
    }

    #[test]
    fn state_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            dir: dir.path().into(),
        };
        assert!(layout.load().unwrap().is_none());
        let mut s = LabState::new("ab12".into(), "10.213.0.0/24".parse().unwrap());
        s.hosts.push(host("lab-1", "10.213.0.2"));
        layout.save(&s).unwrap();
        assert_eq!(layout.load().unwrap(), Some(s));
        assert!(!dir.path().join(".lab.json.tmp").exists());
        fs::write(layout.state_file(), "{not json").unwrap();
        assert!(matches!(layout.load(), Err(Error::ParseState { .. })));
    }
}
