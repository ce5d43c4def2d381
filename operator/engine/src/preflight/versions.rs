//! The version-change check: on a host that is already part of the cluster, `apply` keeps the
//! containerd and etcd lines it runs. Moving them is an upgrade: `kubegrid upgrade` drains
//! each Node before its containerd restarts and takes one etcd member down at a time, where
//! `apply` would replace containerd on every Node at once. The Kubernetes version has its own
//! guard before any host is contacted (the journal's installed version).

use super::{Check, Finding, Subject, host::each};

/// The binaries whose versions the facts phase reads for this check, first the one that runs
/// when both are there (kubegrid's archive install before a package's).
pub const VERSION_PATHS: &[&str] = &[
    "/usr/local/bin/containerd",
    "/usr/bin/containerd",
    "/usr/local/bin/etcd",
];

/// The check's name, which an upgrade skips.
pub const VERSION_CHANGE: &str = "version-change";

pub(super) struct VersionChange;
impl Check for VersionChange {
    fn name(&self) -> &'static str {
        VERSION_CHANGE
    }
    fn describe(&self) -> &'static str {
        "a host already in the cluster runs the spec's containerd and etcd lines (kubegrid upgrade moves them)"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let member =
                h.has_path(kubegrid_plan::JOIN_DONE) || h.has_path(kubegrid_plan::INIT_DONE);
            let mut seen = Vec::new();
            let mut want = Vec::new();
            let containerd = ["/usr/local/bin/containerd", "/usr/bin/containerd"]
                .iter()
                .find_map(|p| h.facts.versions.get(*p))
                .and_then(|v| line(v));
            if member
                && let Some(running) = containerd
                && running != h.containerd_line
            {
                seen.push(format!("containerd {}.{} running", running.0, running.1));
                want.push(format!(
                    "containerd {}.{} (spec.containerRuntime.containerd.version)",
                    h.containerd_line.0, h.containerd_line.1
                ));
            }
            let etcd = h
                .facts
                .versions
                .get("/usr/local/bin/etcd")
                .and_then(|v| line(v));
            if h.has_role("etcd")
                && let (Some(running), Some(target)) = (etcd, h.etcd_version)
                && running != (target.major, target.minor)
            {
                seen.push(format!("etcd {}.{} running", running.0, running.1));
                want.push(format!(
                    "etcd {}.{} (spec.etcd.version)",
                    target.major, target.minor
                ));
            }
            (!seen.is_empty()).then(|| {
                (
                    seen.join(", "),
                    want.join(", "),
                    "apply does not move the containerd or etcd line of a running cluster; see the steps with `kubegrid upgrade plan -f SPEC` and run them with `kubegrid upgrade apply -f SPEC`, or set the spec back to the running line".to_string(),
                )
            })
        })
    }
}

/// (major, minor) of a version the agent read (`v1.6.20`, `v3.4.23`).
fn line(version: &str) -> Option<(u64, u64)> {
    let bare = version.trim_start_matches('v');
    let mut parts = bare.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
