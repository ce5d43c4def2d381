//! The lab as a whole: the operations behind `kubegrid lab …`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::{
    Error, HostRecord, LabState, Layout, LinkRate, Result,
    base::{self, Recipe},
    exec, host, identity, net, ready, shape, spec,
    view::Listing,
};

/// The lab's default address range.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";

/// Where a lab keeps its state and finds its base rootfs.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// State directory: state file, keys, specs, host layers.
    pub state_dir: PathBuf,
    /// Cache directory for base rootfs builds.
    pub cache_dir: PathBuf,
    /// Debian mirror for debootstrap.
    pub mirror: String,
}

/// What `up` should bring up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Hosts `<prefix>-1` … `<prefix>-N` should exist and run.
    pub hosts: usize,
    /// Name prefix; also the host group and the generated cluster's name.
    pub prefix: String,
    /// Address range for a new lab (an existing lab keeps its own).
    pub subnet: Option<Ipv4Net>,
    /// How long to wait for every host to be ready.
    pub timeout: Duration,
    /// The Debian release new hosts run (a suite from [`crate::RELEASES`]); `None` is
    /// [`crate::SUITE`]. Hosts that exist already keep theirs: naming a release they do not
    /// run is refused.
    pub release: Option<String>,
    /// Shape every link of the lab to this rate (recorded; see [`Lab::shape`]); `None`
    /// keeps the lab's current rate, if any.
    pub link_rate: Option<LinkRate>,
}

/// One host that `up` or `start` waited for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostReady {
    /// Host name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Seconds from boot to ready; zero if it was already running.
    pub seconds: f64,
    /// `running`, `degraded`, or `already-running`.
    pub system_state: String,
    /// Failed units of a degraded host.
    pub failed_units: Vec<String>,
}

/// Which hosts `down` removes.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every host, and the lab itself.
    All,
    /// These hosts.
    Names(Vec<String>),
}

/// A lab on this machine.
#[derive(Debug, Clone)]
pub struct Lab {
    config: LabConfig,
    layout: Layout,
}

impl Lab {
    /// The lab whose state lives in `config.state_dir`.
    pub fn new(config: LabConfig) -> Self {
        let layout = Layout {
            dir: config.state_dir.clone(),
        };
        Lab { config, layout }
    }

    /// The lab's file layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Makes sure hosts `<prefix>-1..=N` exist and run, building the base rootfs if needed.
    /// Existing hosts are kept; stopped ones are started. Returns when all are ready.
    pub fn up(&self, opts: &UpOptions, progress: &dyn Fn(&str)) -> Result<Vec<HostReady>> {
        validate_prefix(&opts.prefix)?;
        if !(1..=250).contains(&opts.hosts) {
            return Err(Error::InvalidArgument(format!(
                "--hosts must be between 1 and 250, got {}",
                opts.hosts
            )));
        }
        let recipe = Recipe::for_release(opts.release.as_deref().unwrap_or(base::SUITE))?;
        preflight()?;
        raise_inotify_limits(progress);
        if !base::is_built(&recipe, &self.config.cache_dir) {
            exec::require("debootstrap", "debootstrap")?;
            exec::require("chroot", "coreutils")?;
        }
        if opts.link_rate.is_some() {
            exec::require("tc", "iproute2")?;
        }
        // Refuse a colliding range before writing anything; ensure_bridge checks again
        // under the machine lock, where it counts.
        let planned = self.load_or_new(opts.subnet)?;
        if !net::bridge_exists(&planned) {
            net::check_subnet_free(planned.subnet, &planned.bridge())?;
        }
        if let Some(release) = &opts.release {
            check_release(&planned, &opts.prefix, opts.hosts, recipe.suite, release)?;
        }
        let _lock = self.layout.lock()?;
        let mut state = self.load_or_new(opts.subnet)?;
        if opts.link_rate.is_some() {
            state.link_rate = opts.link_rate;
        }
        let key = identity::ensure_client_key(&self.layout.ssh_key())?;
        let base = base::ensure(
            &recipe,
            &self.config.cache_dir,
            &self.config.mirror,
            progress,
        )?;
        {
            let _net = net::machine_lock()?;
            net::ensure_bridge(&state)?;
        }
        self.layout.save(&state)?;
        if opts.link_rate.is_some() {
            // A new rate reaches the bridge and every host link; booting hosts get it at boot.
            shape::sync_all(&state)?;
        } else if state.link_rate.is_some() {
            shape::sync_bridge(&state)?;
        }

        let mut booted = Vec::new();
        let mut ready = Vec::new();
        for i in 1..=opts.hosts {
            let name = format!("{}-{i}", opts.prefix);
            if !state.hosts.iter().any(|h| h.name == name) {
                let record = host::new_record(&state, &name, &opts.prefix, &base, recipe.suite)?;
                state.hosts.push(record);
                // Recorded before anything exists, so `down` can clean up after a crash.
                self.layout.save(&state)?;
            }
            // No host key means an earlier `up` stopped before the host was finished.
            if state.host(&name)?.host_key.is_empty() {
                let created = host::create(&self.layout, &state, &name, &key)?;
                *state.host_mut(&name)? = created;
                self.layout.save(&state)?;
                progress(&format!(
                    "{name}: created at {}",
                    state.host(&name)?.address
                ));
            }
            if host::running(state.host(&name)?) {
                let h = state.host(&name)?;
                ready.push(ready::already_running(h));
                continue;
            }
            booted.push((name.clone(), Instant::now()));
            host::boot(&self.layout, &mut state, &name)?;
            self.layout.save(&state)?;
        }
        self.write_outputs(&state)?;
        ready.extend(ready::wait_all(
            &self.layout,
            &state,
            &booted,
            opts.timeout,
            progress,
        )?);
        Ok(ready)
    }

    fn load_or_new(&self, subnet: Option<Ipv4Net>) -> Result<LabState> {
        let default: Ipv4Net = DEFAULT_SUBNET
            .parse()
            .map_err(|_| Error::InvalidArgument("bad default subnet".into()))?;
        match self.layout.load()? {
            Some(state) => match subnet {
                Some(s) if s != state.subnet => Err(Error::InvalidArgument(format!(
                    "this lab already uses subnet {}; run `kubegrid lab down --all` first, or use another --state-dir",
                    state.subnet
                ))),
                _ => Ok(state),
            },
            None => {
                let subnet = subnet.unwrap_or(default);
                if subnet.prefix_len() > 29 {
                    return Err(Error::InvalidArgument(format!(
                        "subnet {subnet} is too small; use a /29 or larger"
                    )));
                }
                Ok(LabState::new(random_id(), subnet.trunc()))
            }
        }
    }

    /// Writes the cluster spec of every group and the lab's known_hosts file.
    fn write_outputs(&self, state: &LabState) -> Result<()> {
        let specs = self.layout.dir.join("specs");
        std::fs::create_dir_all(&specs).map_err(Error::io("create directory", &specs))?;
        let mut groups: Vec<&str> = state.hosts.iter().map(|h| h.group.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in &groups {
            let hosts: Vec<&HostRecord> =
                state.hosts.iter().filter(|h| h.group == *group).collect();
            let text = spec::render(group, &hosts, &self.layout.ssh_key())?;
            identity::write_file(&self.layout.spec(group), text.as_bytes(), 0o644)?;
        }
        // Specs of groups whose hosts are all gone would point at nothing.
        for entry in std::fs::read_dir(&specs)
            .map_err(Error::io("read directory", &specs))?
            .flatten()
        {
            let path = entry.path();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if !groups.contains(&stem.as_str()) {
                std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
            }
        }
        let known: String = state
            .hosts
            .iter()
            .filter(|h| !h.host_key.is_empty())
            .map(|h| format!("{},{} {}\n", h.name, h.address, h.host_key))
            .collect();
        identity::write_file(&self.layout.known_hosts(), known.as_bytes(), 0o644)
    }

    /// What the lab holds now.
    pub fn list(&self) -> Result<Listing> {
        let state = self.layout.load()?;
        Ok(Listing::new(&self.layout, state.as_ref()))
    }

    /// Boots a stopped host and waits until it is ready.
    pub fn start(
        &self,
        name: &str,
        timeout: Duration,
        progress: &dyn Fn(&str),
    ) -> Result<HostReady> {
        preflight()?;
        let (_lock, mut state) = self.locked_state()?;
        if host::running(state.host(name)?) {
            return Ok(ready::already_running(state.host(name)?));
        }
        let started = Instant::now();
        {
            let _net = net::machine_lock()?;
            net::ensure_bridge(&state)?;
        }
        if state.link_rate.is_some() {
            shape::sync_bridge(&state)?;
        }
        host::boot(&self.layout, &mut state, name)?;
        self.layout.save(&state)?;
        let mut ready = ready::wait_all(
            &self.layout,
            &state,
            &[(name.to_string(), started)],
            timeout,
            progress,
        )?;
        Ok(ready.remove(0))
    }

    /// Powers a host off cleanly (`graceful`) or pulls its plug; its disk and identity stay.
    pub fn halt(&self, name: &str, graceful: bool) -> Result<()> {
        exec_root()?;
        let (_lock, mut state) = self.locked_state()?;
        host::halt(&state, state.host(name)?, graceful)?;
        let h = state.host_mut(name)?;
        h.pid = None;
        h.pid_start = None;
        self.layout.save(&state)
    }

    /// Takes a host's network link down (`cut`) or up again.
    pub fn set_cut(&self, name: &str, cut: bool) -> Result<()> {
        exec_root()?;
        let (_lock, mut state) = self.locked_state()?;
        state.host_mut(name)?.cut = cut;
        let h = state.host(name)?;
        // A stopped host keeps its link down like a powered-off machine; heal only records intent.
        net::set_link(&state, h, !cut && host::running(h))?;
        self.layout.save(&state)
    }

    /// Removes hosts; with [`Selection::All`], also the bridge, keys and state.
    /// Returns the names removed.
    pub fn down(&self, which: &Selection, progress: &dyn Fn(&str)) -> Result<Vec<String>> {
        exec_root()?;
        if matches!(which, Selection::All) && !self.layout.state_file().exists() {
            // Nothing to remove; and taking the lock would create the state directory.
            return Ok(Vec::new());
        }
        let (lock, mut state) = self.locked_state()?;
        let names: Vec<String> = match which {
            Selection::All => state.hosts.iter().map(|h| h.name.clone()).collect(),
            Selection::Names(names) => {
                for n in names {
                    state.host(n)?;
                }
                names.clone()
            }
        };
        for name in &names {
            host::destroy(&self.layout, &state, state.host(name)?)?;
            state.hosts.retain(|h| &h.name != name);
            self.layout.save(&state)?;
            progress(&format!("{name}: removed"));
        }
        if matches!(which, Selection::All) || state.hosts.is_empty() {
            {
                let _net = net::machine_lock()?;
                net::remove_bridge(&state)?;
            }
            base::remove_tree(&self.layout.dir)?;
            drop(lock);
        } else {
            self.write_outputs(&state)?;
        }
        Ok(names)
    }

    /// Takes the lab lock and loads the state; refuses before creating anything when there
    /// is no lab.
    pub(crate) fn locked_state(&self) -> Result<(std::fs::File, LabState)> {
        if !self.layout.state_file().exists() {
            return Err(self.no_lab());
        }
        let lock = self.layout.lock()?;
        let state = self.layout.load()?.ok_or_else(|| self.no_lab())?;
        Ok((lock, state))
    }

    fn no_lab(&self) -> Error {
        Error::InvalidArgument(format!(
            "there is no lab in {}; run `kubegrid lab up` first (or pass the right --state-dir)",
            self.layout.dir.display()
        ))
    }
}

/// Refuses `--release` when one of the hosts `up` would keep runs another release: a host's
/// base never changes under it, so the user must pick another name prefix (or remove it).
fn check_release(
    state: &LabState,
    prefix: &str,
    hosts: usize,
    suite: &str,
    given: &str,
) -> Result<()> {
    for i in 1..=hosts {
        let name = format!("{prefix}-{i}");
        if let Some(h) = state.hosts.iter().find(|h| h.name == name)
            && h.release != suite
        {
            return Err(Error::InvalidArgument(format!(
                "--release {given}: host {name} exists and runs {}, not {suite}; a host keeps the release it was created with\n  hint: use another --name for {suite} hosts, or remove it first with `kubegrid lab down {name}`",
                h.release
            )));
        }
    }
    Ok(())
}

fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 40
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !prefix.starts_with('-')
        && !prefix.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "--name `{prefix}` is not a valid host name prefix: use 1-40 lowercase letters, digits and inner dashes"
        )))
    }
}

fn random_id() -> String {
    use ssh_key::rand_core::{OsRng, RngCore};
    format!("{:04x}", OsRng.next_u32() & 0xffff)
}

/// Checks the machine can run lab hosts at all.
fn preflight() -> Result<()> {
    exec_root()?;
    for (program, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("setsid", "util-linux"),
        ("timeout", "coreutils"),
    ] {
        exec::require(program, package)?;
    }
    Ok(())
}

/// Every host's systemd takes several inotify instances, and the kernel's default of 128 per
/// user runs out at a few dozen hosts: systemd then dies at boot with "Too many open files".
/// Raising a limit the machine had set higher is never done; lowering never happens.
fn raise_inotify_limits(progress: &dyn Fn(&str)) {
    for (key, want) in [
        ("max_user_instances", 8192u64),
        ("max_user_watches", 524_288),
    ] {
        let path = format!("/proc/sys/fs/inotify/{key}");
        let have: u64 = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX);
        if have < want && std::fs::write(&path, want.to_string()).is_ok() {
            progress(&format!(
                "raised fs.inotify.{key} from {have} to {want} for the lab's systemd instances"
            ));
        }
    }
}

/// Fails with [`Error::NotRoot`] unless running as root.
pub(crate) fn exec_root() -> Result<()> {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        Ok(())
    } else {
        Err(Error::NotRoot { uid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_be_host_name_labels() {
        for good in ["lab", "gpu-a", "n1"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "x-", "Lab", "a_b", "a.b", &"x".repeat(41)] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_release_other_than_an_existing_hosts_is_refused() {
        let mut state = LabState::new("abcd".into(), DEFAULT_SUBNET.parse().unwrap());
        state.hosts.push(HostRecord::new(
            "lab-1",
            "lab",
            "10.213.0.2".parse().unwrap(),
            std::path::Path::new("/base"),
        ));
        let err = check_release(&state, "lab", 2, "bullseye", "bullseye")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lab-1 exists and runs bookworm, not bullseye") && err.contains("--name"),
            "{err}"
        );
        assert!(check_release(&state, "lab", 2, "bookworm", "bookworm").is_ok());
        assert!(check_release(&state, "old", 1, "bullseye", "bullseye").is_ok());
    }

    #[test]
    fn lab_ids_are_four_hex_digits() {
        let id = random_id();
        assert_eq!(id.len(), 4);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
