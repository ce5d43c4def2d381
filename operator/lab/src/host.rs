//! One lab host's life: create its layer and identity, boot, halt, destroy.

use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::{
    Error, HostRecord, LabState, Layout, Result, RootfsMode, base, cgroup, exec, identity, mounts,
    net,
    nspawn::{self, BootSpec, Proc},
    shape,
};

/// How long a graceful stop may take before the host is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A record for a new host of Debian `release` with the lowest free address; nothing exists
/// for it yet.
pub fn new_record(
    state: &LabState,
    name: &str,
    group: &str,
    base: &Path,
    release: &str,
) -> Result<HostRecord> {
    let mut record = HostRecord::new(name, group, state.free_address()?, base);
    record.release = release.to_string();
    Ok(record)
}

/// Makes a recorded host's writable rootfs and writes its identity; returns the updated record.
pub fn create(
    layout: &Layout,
    state: &LabState,
    name: &str,
    authorized_key: &str,
) -> Result<HostRecord> {
    let mut h = state.host(name)?.clone();
    if let Err(e) = ensure_rootfs(layout, &h) {
        // overlayfs is refused on some filesystems (an overlay or NFS state dir); a full copy
        // costs disk and time but behaves the same.
        tracing::warn!(host = name, error = %e, "overlayfs unavailable; copying the base rootfs instead");
        h.rootfs = RootfsMode::Copy;
        ensure_rootfs(layout, &h)?;
    }
    let id = identity::write_host(&layout.rootfs(name), name, h.address, authorized_key)?;
    h.machine_id = id.machine_id;
    h.host_key = id.host_key;
    Ok(h)
}

/// Mounts (or copies) the host's rootfs unless it is already there.
fn ensure_rootfs(layout: &Layout, h: &HostRecord) -> Result<()> {
    let dir = layout.host_dir(&h.name);
    let rootfs = layout.rootfs(&h.name);
    match h.rootfs {
        RootfsMode::Overlay => {
            let (upper, work) = (dir.join("upper"), dir.join("work"));
            for d in [&upper, &work, &rootfs] {
                std::fs::create_dir_all(d).map_err(Error::io("create directory", d))?;
            }
            if !mounts::is_mount_point(&rootfs)? {
                mounts::overlay(&h.base, &upper, &work, &rootfs)?;
            }
        }
        RootfsMode::Copy => {
            if !rootfs.join("etc").exists() {
                mounts::unmount_under(&rootfs)?;
                std::fs::create_dir_all(&rootfs).map_err(Error::io("create directory", &rootfs))?;
                let mut cp = Command::new("cp");
                cp.args(["-a", "--reflink=auto"])
                    .arg(h.base.join("."))
                    .arg(&rootfs);
                exec::output(&mut cp)?;
            }
        }
    }
    Ok(())
}

/// The host's nspawn process as recorded.
pub fn proc_of(h: &HostRecord) -> Option<Proc> {
    Some(Proc {
        pid: h.pid?,
        start: h.pid_start?,
    })
}

/// Whether the host's nspawn process is alive.
pub fn running(h: &HostRecord) -> bool {
    proc_of(h).is_some_and(nspawn::alive)
}

/// Boots a host in the background: network, rootfs, cgroups, then systemd-nspawn. Saves
/// the state once its cgroups exist, so a crash right after still lets `down` find them.
pub fn boot(layout: &Layout, state: &mut LabState, name: &str) -> Result<()> {
    let h = state.host(name)?.clone();
    net::ensure_host(state, &h)?;
    // The namespace (and its qdiscs) outlives stops and reboots, but not the machine's own
    // reboot or a recreated pair: tbf is put back at every boot.
    if state.link_rate.is_some() {
        shape::sync_host(state, &h)?;
    }
    ensure_rootfs(layout, &h)?;
    let tree = layout.cgroup_tree(name);
    let cg = cgroup::prepare(&format!("kubegrid-lab/{}-{}", state.id, h.name), &tree)?;
    state.host_mut(name)?.cgroups = cg.dirs.clone();
    layout.save(state)?;
    let proc = nspawn::spawn(&BootSpec {
        name,
        rootfs: &layout.rootfs(name),
        netns: &state.netns(&h),
        cgroups: &cg.dirs,
        cgroup_tree: cg.tree.as_deref(),
        console_log: &layout.console_log(name),
    })?;
    let rec = state.host_mut(name)?;
    rec.pid = Some(proc.pid);
    rec.pid_start = Some(proc.start);
    // The link comes up with the host, as a NIC does when a machine powers on.
    net::set_link(state, &h, !h.cut)
}

/// Stops a host, gracefully or not, waits until no process of it is left, and takes its
/// link down.
pub fn halt(state: &LabState, h: &HostRecord, graceful: bool) -> Result<()> {
    if let Some(p) = proc_of(h) {
        if graceful {
            nspawn::stop(p, STOP_GRACE)?;
        } else {
            nspawn::kill(p)?;
        }
    }
    wait_cgroups_empty(h)?;
    if net::link_is_up(&state.veth(h)).is_some() {
        net::set_link(state, h, false)?;
    }
    Ok(())
}

/// Kills a host and removes everything it had: cgroups, mounts, layers, links, namespace.
pub fn destroy(layout: &Layout, state: &LabState, h: &HostRecord) -> Result<()> {
    halt(state, h, false)?;
    cgroup::remove(&h.cgroups, &layout.cgroup_tree(&h.name))?;
    base::remove_tree(&layout.host_dir(&h.name))?;
    net::remove_host(state, h)
}

/// Waits until the host's cgroups hold no process: the pid namespace's processes are
/// reaped asynchronously after its init dies.
fn wait_cgroups_empty(h: &HostRecord) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = h.cgroups.iter().flat_map(|d| cgroup::pids(d)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::HostLingers {
                host: h.name.clone(),
                pids: left,
            });
        }
        thread::sleep(Duration::from_millis(25));
    }
}
