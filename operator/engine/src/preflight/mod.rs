//! Preflight: checks over every host's facts that must all pass before anything changes.
//!
//! Checks run on the engine side from facts gathered in one round trip, so a failing
//! preflight has cost each host exactly one read-only agent run.

mod cluster;
mod endpoint;
mod gpu;
mod host;
mod kata;
mod runtime;
mod versions;

pub use versions::{VERSION_CHANGE, VERSION_PATHS};

use kubegrid_agent::facts::Facts;
use serde::Serialize;

/// A host as preflight sees it.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// Node name.
    pub name: &'a str,
    /// Roles ("control-plane", "etcd", "worker").
    pub roles: &'a [String],
    /// Architecture declared in the spec, if any.
    pub declared_arch: Option<&'a str>,
    /// Gathered facts.
    pub facts: &'a Facts,
    /// How far the host's clock reading fell outside the engine's send..receive window (0
    /// when inside it); negative when the host is behind.
    pub clock_offset_ms: i64,
    /// The address kubegrid reaches the host at.
    pub address: &'a str,
    /// The operation's Kubernetes settings, when it bootstraps Kubernetes.
    pub kubernetes: Option<&'a kubegrid_plan::KubernetesContext>,
    /// Where the spec's containerd comes from.
    pub containerd_source: kubegrid_plan::ContainerdSource,
    /// The spec's containerd line (major, minor).
    pub containerd_line: (u64, u64),
    /// The etcd version the operation installs, when the spec or the bundle pins one.
    pub etcd_version: Option<&'a semver::Version>,
    /// The Cluster's GPU stack, when its spec has one.
    pub gpu: Option<&'a kubegrid_plan::GpuContext>,
    /// Whether this host is a GPU Node (its spec says `nvidia`, or `auto` and NVIDIA GPUs
    /// were found, with the Cluster's GPU stack set).
    pub gpu_node: bool,
    /// Whether its spec says `gpu: nvidia`, so finding no GPU is a failure.
    pub gpu_required: bool,
    /// The runtime handlers the spec enables ("runc", "gvisor", "kata-qemu", ...).
    pub runtimes: &'a [String],
}

impl Subject<'_> {
    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether a path the facts phase probed exists on the host.
    fn has_path(&self, path: &str) -> bool {
        self.facts.paths.get(path).copied().unwrap_or(false)
    }
}

/// One failed check on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Node name.
    pub host: String,
    /// Check name (what `--skip-check` takes).
    pub check: &'static str,
    /// What was seen.
    pub seen: String,
    /// What was expected.
    pub expected: String,
    /// How to fix it.
    pub hint: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: check {}: saw {}; expected {}\n    hint: {}",
            self.host, self.check, self.seen, self.expected, self.hint
        )
    }
}

/// A preflight check.
pub trait Check: Send + Sync {
    /// Name, as `--skip-check` takes it.
    fn name(&self) -> &'static str;
    /// One line on what it checks.
    fn describe(&self) -> &'static str;
    /// Findings over all hosts (empty when it passes).
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding>;
}

/// Every check, in report order.
pub fn checks() -> Vec<Box<dyn Check>> {
    let mut all = host::checks();
    all.extend(cluster::checks());
    all.extend(endpoint::checks());
    all.extend(gpu::checks());
    all.push(Box::new(versions::VersionChange));
    all.push(Box::new(kata::KataVm));
    all
}

/// Names of every check.
pub fn names() -> Vec<&'static str> {
    checks().iter().map(|c| c.name()).collect()
}

/// Runs every check not in `skip`; returns the findings.
pub fn run(hosts: &[Subject<'_>], skip: &[String]) -> Vec<Finding> {
    checks()
        .into_iter()
        .filter(|c| !skip.iter().any(|s| s == c.name()))
        .flat_map(|c| c.run(hosts))
        .collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod versions_tests;
