//! Upgrades through the operator: an installed Cluster whose spec asks for another
//! Kubernetes version than the one it runs, or another containerd or etcd line than the one
//! last applied, runs an `upgrade` operation (the engine's, as `kubegrid upgrade apply` runs
//! it) instead of an install. The engine plans from the live versions and refuses what the
//! planner blocks (a downgrade, a skipped step missing from the bundle, a NotReady Node)
//! before any change; the roll stops at the first failed Node and between Nodes when
//! `spec.upgrade.paused` is set. A version change and Node changes in the same generation:
//! the upgrade runs first, on the Nodes already in the cluster, then an install converges
//! at the new version (joins new Nodes, removes deleted ones). docs/operator.md describes the
//! status it writes.

mod run;
mod status;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::{Api, ResourceExt};
use kubegrid_api::{Cluster, ClusterSpec};

pub use run::run;
pub use status::{Rolling, UPGRADING, settle};

use crate::{context::Context, error::Result, immutable::APPLIED_SPEC, operation::key};

/// What an upgrade is to change, for status messages and Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// One line per component: `Kubernetes v1.31.4 → v1.32.4`, `containerd 1.7 → 2.1`.
    pub what: Vec<String>,
}

impl Change {
    /// The changes on one line.
    pub fn summary(&self) -> String {
        self.what.join(", ")
    }
}

/// The version the Cluster runs: the journal's (recorded after `kubeadm init` and after each
/// `kubeadm upgrade apply`), or `status.kubernetesVersion` for a journal rebuilt from an
/// empty volume; `None` before the first install.
pub async fn installed(ctx: &Context, cluster: &Cluster) -> Result<Option<String>> {
    Ok(match ctx.journal.installed_version(&key(cluster)).await? {
        Some(v) => Some(v),
        None => cluster
            .status
            .as_ref()
            .and_then(|s| s.kubernetes_version.clone()),
    })
}

/// What `cluster`'s spec asks to change on an installed cluster; `None` when it is not
/// installed yet or runs what the spec asks for.
pub async fn change(ctx: &Context, cluster: &Cluster) -> Result<Option<Change>> {
    let Some(installed) = installed(ctx, cluster).await? else {
        return Ok(None);
    };
    let applied = cluster
        .annotations()
        .get(APPLIED_SPEC)
        .and_then(|text| serde_json::from_str::<ClusterSpec>(text).ok());
    Ok(changes(&installed, applied.as_ref(), &cluster.spec))
}

/// The changes from what runs (`installed`, and the spec last applied) to `spec`.
fn changes(installed: &str, applied: Option<&ClusterSpec>, spec: &ClusterSpec) -> Option<Change> {
    use kubegrid_engine::upgrade::{display, same};
    let mut what = Vec::new();
    // The control plane may run the version already while Nodes do not: an upgrade that
    // failed or paused after its `kubeadm upgrade apply` left the spec unapplied.
    let from = match applied {
        _ if !same(installed, &spec.kubernetes_version) => Some(installed),
        Some(old) if !same(&old.kubernetes_version, &spec.kubernetes_version) => {
            Some(old.kubernetes_version.as_str())
        }
        _ => None,
    };
    if let Some(from) = from {
        what.push(format!(
            "Kubernetes {} → {}",
            display(from),
            display(&spec.kubernetes_version)
        ));
    }
    if let Some(old) = applied {
        let line = |s: &ClusterSpec| s.container_runtime.containerd.version.clone();
        let (from, to) = (line(old), line(spec));
        if from != to {
            what.push(format!("containerd {from} → {to}"));
        }
        let etcd = |s: &ClusterSpec| s.etcd.as_ref().map(|e| e.version.clone());
        if etcd(old) != etcd(spec) {
            let name = |v: Option<String>| v.unwrap_or_else(|| "the bundle's newest".into());
            what.push(format!("etcd {} → {}", name(etcd(old)), name(etcd(spec))));
        }
    }
    (!what.is_empty()).then_some(Change { what })
}

/// The id of the upgrade step an engine progress phase starts (`upgrade step <id>`).
pub fn step_id(phase: &str) -> Option<&str> {
    phase.strip_prefix("upgrade step ")
}

/// The Nodes an upgrade step id names: `etcd/NODE/..`, `kubeadm-apply/NODE/..`,
/// `kubeadm-node/NODE/..`, `roll/NODE,NODE/..` (Node names hold neither `/` nor `,`).
pub fn step_nodes(id: &str) -> Vec<String> {
    id.split('/')
        .nth(1)
        .map(|nodes| {
            nodes
                .split(',')
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Mirrors the live Cluster's `spec.upgrade.paused` into `paused` every `every` until
/// aborted: the reconcile of this Cluster waits for the operation, so the running roll
/// learns of a pause from here. A failed read changes nothing.
pub fn watch_paused(
    api: Api<Cluster>,
    name: String,
    paused: Arc<AtomicBool>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match api.get_opt(&name).await {
                Ok(Some(c)) => {
                    let now = c.spec.upgrade.as_ref().is_some_and(|u| u.paused);
                    if paused.swap(now, Ordering::SeqCst) != now {
                        tracing::info!(cluster = %name, paused = now, "spec.upgrade.paused changed");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(cluster = %name, "reading spec.upgrade.paused: {e}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ClusterSpec {
        let base = serde_json::json!({
            "kubernetesVersion": "v1.31.4",
            "controlPlaneEndpoint": {"address": "10.0.0.1"},
            "network": {"podCIDR": "10.244.0.0/16", "serviceCIDR": "10.96.0.0/12"},
            "containerRuntime": {"containerd": {"version": "1.7"}},
        });
        let mut v = base;
        let patch: serde_json::Value = serde_json::from_str(yaml).unwrap();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_installed_version_and_the_applied_lines_decide() {
        let same = spec("{}");
        assert_eq!(changes("1.31.4", Some(&same), &same), None);
        assert_eq!(changes("v1.31.4", None, &same), None);
        let newer = spec(r#"{"kubernetesVersion": "v1.32.4"}"#);
        assert_eq!(
            changes("1.31.4", Some(&same), &newer).unwrap().what,
            ["Kubernetes v1.31.4 → v1.32.4"]
        );
        let lines = spec(
            r#"{"containerRuntime": {"containerd": {"version": "2.1"}}, "etcd": {"version": "3.5"}}"#,
        );
        assert_eq!(
            changes("1.31.4", Some(&same), &lines).unwrap().what,
            ["containerd 1.7 → 2.1", "etcd the bundle's newest → 3.5"]
        );
        // Nothing applied yet: only the installed version can tell.
        assert_eq!(changes("1.31.4", None, &lines), None);
        // The control plane moved, the Nodes not yet (a failed or paused roll).
        assert_eq!(
            changes("1.32.4", Some(&same), &newer).unwrap().what,
            ["Kubernetes v1.31.4 → v1.32.4"]
        );
        assert_eq!(changes("1.32.4", Some(&newer), &newer), None);
    }

    #[test]
    fn step_ids_name_their_nodes() {
        assert_eq!(
            step_id("upgrade step roll/w-1,w-2/1.33.4"),
            Some("roll/w-1,w-2/1.33.4")
        );
        assert_eq!(step_id("node-kubelet"), None);
        assert_eq!(
            step_nodes("roll/w-1,w-2/1.33.4+containerd-2.1.9"),
            ["w-1", "w-2"]
        );
        assert_eq!(step_nodes("kubeadm-apply/cp-1/1.32.4"), ["cp-1"]);
        assert_eq!(step_nodes("etcd/e-1/3.5.30"), ["e-1"]);
        assert!(step_nodes("nonsense").is_empty());
    }
}
