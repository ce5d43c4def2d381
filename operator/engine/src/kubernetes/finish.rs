//! After the playbook: the admin kubeconfig, the member list, removals, and the cluster checks
//! through the Kubernetes API.

use std::{io::Write, path::Path};

use kubegrid_cluster::{CheckOptions, CheckResult, ExpectedNode};
use kubegrid_journal::{TaskRecord, TaskState};
use serde::Serialize;

use super::remove::{self, Leaving, RemovedNode};
use crate::{
    error::Error,
    operation::{Mode, Run},
    progress::Progress,
};

/// The result name of labelling the Nodes, reported only when it fails.
pub const NODE_LABELS: &str = "node-labels";

/// The phase name cluster checks are journaled and reported under.
pub const CLUSTER_CHECKS: &str = "cluster-checks";

/// The labels a Node gets: the spec's, then what detection found: the GPU labels on GPU
/// Nodes (so the `nvidia` RuntimeClass and the device plugin select them), Kata's on
/// Nodes that can create a VM when a `kata-*` runtime is listed, and gVisor's and crun's where
/// their handler was configured (their RuntimeClasses select Nodes by them). The spec's win
/// where they name the same key.
fn node_labels(
    h: &crate::operation::HostSpec,
    facts: Option<&kubegrid_agent::facts::Facts>,
    cluster: &kubegrid_plan::ClusterContext,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = std::collections::BTreeMap::new();
    if let Some(f) = facts {
        if cluster.gpu.is_some() && h.gpu_node(f) {
            labels.extend(kubegrid_plan::gpu_node_labels(&f.gpu));
        }
        if cluster.runtimes.iter().any(|r| r.starts_with("kata-")) {
            labels.extend(kubegrid_plan::kata_node_labels(&f.gpu));
        }
        labels.extend(kubegrid_plan::runtime_node_labels(&configured_runtimes(
            h, f, cluster,
        )));
    }
    labels.extend(h.labels.clone());
    labels
}

/// How many GPUs the checks expect a Node to advertise: those detected on a GPU Node whose
/// GPUs kubegrid's device plugin advertises, with `spec.gpu.validation` on. None elsewhere:
/// with `gpu-operator` the user installs the plugin after the apply, with `none` nothing does.
fn expected_gpus(
    h: &crate::operation::HostSpec,
    facts: Option<&kubegrid_agent::facts::Facts>,
    cluster: &kubegrid_plan::ClusterContext,
) -> Option<usize> {
    let gpu = cluster.gpu.as_ref()?;
    let f = facts?;
    (gpu.validation && gpu.device_plugin == "nvidia-device-plugin" && h.gpu_node(f))
        .then_some(f.gpu.devices.len())
}

/// The device plugin image the `gpu-pod` check runs `nvidia-smi` in, as the cluster pulls it.
fn gpu_image(run: &Run) -> Option<String> {
    let gpu = run.req.context.gpu.as_ref()?;
    if !gpu.validation || gpu.device_plugin != "nvidia-device-plugin" {
        return None;
    }
    kubegrid_plan::GpuImages::from_bundle(
        run.req.bundle.manifest(),
        run.req.context.bundle_registry.is_some(),
    )
    .ok()
    .map(|images| images.device_plugin.reference())
}

/// The handlers `h`'s containerd was configured with (see `kubegrid_plan::host_runtimes`).
fn configured_runtimes(
    h: &crate::operation::HostSpec,
    facts: &kubegrid_agent::facts::Facts,
    cluster: &kubegrid_plan::ClusterContext,
) -> Vec<String> {
    let host = h.context(facts.clone(), Default::default());
    kubegrid_plan::host_runtimes(cluster, &host).0
}

/// What the cluster-level steps found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterChecks {
    /// Where the admin kubeconfig was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// The checks through the API, in order; empty when skipped.
    pub checks: Vec<CheckResult>,
    /// Why the checks did not run, when they did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Nodes that left the spec and what became of them.
    pub removed: Vec<RemovedNode>,
    /// Cluster-level steps that failed outside the checks (writing the kubeconfig).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl ClusterChecks {
    /// Every check passed and every removal completed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
            && self.removed.iter().all(|r| r.ok)
            && self.errors.is_empty()
    }
}

/// The API server URL of the control-plane endpoint.
pub(crate) fn server_url(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// Runs the cluster-level steps of an apply whose init node finished. Plans and operations
/// without Kubernetes do nothing.
pub async fn finish(run: &mut Run) -> Result<ClusterChecks, Error> {
    // Control-plane and etcd members that left were handled before the playbook.
    let mut out = ClusterChecks {
        removed: std::mem::take(&mut run.kubernetes.removed),
        ..ClusterChecks::default()
    };
    let Some(k) = run.req.context.kubernetes.clone() else {
        return Ok(out);
    };
    if run.req.mode == Mode::Plan {
        let absent = remove::absent(run).await?;
        let workers = remove::remove_absent(run, None, absent, Leaving::Workers).await?;
        out.removed.extend(workers);
        out.skipped = Some("a plan changes nothing".into());
        return Ok(out);
    }
    let init_ok = run.reports.iter().any(|r| r.name == k.init_node && r.ok);
    let (Some(admin), Some(ca_pem), true) = (&run.admin_client, &run.kubernetes_ca_pem, init_ok)
    else {
        out.skipped = Some(format!("{} did not finish kubeadm init", k.init_node));
        return Ok(out);
    };
    let server = server_url(&k.endpoint_host, k.endpoint_port);
    let kubeconfig = kubegrid_pki::kubeconfig(
        &run.req.cluster,
        &server,
        ca_pem,
        kubegrid_pki::ADMIN_USER,
        admin,
    )
    .map_err(|e| Error::Pki {
        what: "admin kubeconfig".into(),
        source: Box::new(e),
    })?;
    run.journal
        .put_kubeconfig(&run.req.cluster, &server, &kubeconfig)
        .await?;
    // The init host finished every phase at this version: the cluster runs it. Status and
    // the upgrade guard read this record, never the spec.
    run.journal
        .put_installed_version(&run.req.cluster, &k.version.to_string())
        .await?;
    // Every host is already changed by now: a kubeconfig that cannot be written is reported
    // (it is in the journal either way), not allowed to swallow the report.
    if let Some(path) = &run.req.options.kubeconfig_out {
        match write_private(path, &kubeconfig) {
            Ok(()) => out.kubeconfig = Some(path.display().to_string()),
            Err(source) => out.errors.push(
                Error::WriteKubeconfig {
                    path: path.clone(),
                    source,
                }
                .to_string(),
            ),
        }
    }
    let absent = remove::absent(run).await?;
    // A partial apply (`--until`) leaves the serving layer alone, as it leaves membership.
    let serving = run
        .req
        .context
        .serving
        .clone()
        .filter(|_| run.req.options.until.is_none());
    let client = if run.req.options.cluster_checks || !absent.is_empty() || serving.is_some() {
        Some(kubegrid_cluster::connect(&kubeconfig).await)
    } else {
        None
    };
    let api = client.as_ref().and_then(|c| c.as_ref().ok());
    let workers = remove::remove_absent(run, api, absent, Leaving::Workers).await?;
    out.removed.extend(workers);
    // From the facts alone, so it runs also where the API checks are skipped.
    let runtime_classes = super::runtime_classes::check(run);
    // Deployed whether or not the checks run: it is part of what the spec asks for.
    let deployed = match (&serving, &client) {
        (Some(s), Some(Ok(c))) => Some(super::serving::deploy(c, s).await),
        (Some(_), Some(Err(e))) => Some(CheckResult {
            name: super::serving::SERVING_LAYER.into(),
            ok: false,
            detail: format!("cannot build a client for {server}: {e}"),
            duration_ms: 0,
        }),
        _ => None,
    };
    if !run.req.options.cluster_checks {
        out.skipped = Some("--skip-check cluster-api".into());
        out.checks.extend(runtime_classes);
        out.checks.extend(deployed);
        record_checks(run, &out.checks).await?;
        return Ok(out);
    }
    run.observer.event(&Progress::PhaseStarted {
        phase: CLUSTER_CHECKS.into(),
        hosts: 1,
    });
    let expected: Vec<ExpectedNode> = run
        .req
        .hosts
        .iter()
        .zip(&run.facts)
        .map(|(h, facts)| ExpectedNode {
            name: h.target.host.clone(),
            roles: h.roles.clone(),
            labels: node_labels(h, facts.as_ref(), &run.req.context),
            taints: h
                .taints
                .iter()
                .map(|t| (t.key.clone(), t.value.clone(), t.effect.clone()))
                .collect(),
            gpus: expected_gpus(h, facts.as_ref(), &run.req.context),
            gvisor: facts.as_ref().is_some_and(|f| {
                configured_runtimes(h, f, &run.req.context)
                    .iter()
                    .any(|r| r == "gvisor")
            }),
        })
        .collect();
    let options = CheckOptions {
        dns_domain: k.dns_domain.clone(),
        gpu_image: gpu_image(run),
        ..run.req.options.check_options.clone()
    };
    out.checks = match &client {
        Some(Ok(client)) => {
            // The checks still run: nodes-ready then shows which labels are missing.
            let labelled = kubegrid_cluster::label_nodes(client, &expected).await;
            let mut results = kubegrid_cluster::run_checks(client, &options, &expected).await;
            if let Err(e) = labelled {
                results.insert(
                    0,
                    CheckResult {
                        name: NODE_LABELS.into(),
                        ok: false,
                        detail: format!("cannot set the spec's labels on the Nodes: {e}"),
                        duration_ms: 0,
                    },
                );
            }
            results
        }
        Some(Err(e)) => vec![CheckResult {
            name: kubegrid_cluster::API_READYZ.into(),
            ok: false,
            detail: format!("cannot build a client for {server}: {e}"),
            duration_ms: 0,
        }],
        None => Vec::new(),
    };
    out.checks.extend(runtime_classes);
    // The layer's health is waited for only once it was applied.
    let applied = deployed.as_ref().is_some_and(|d| d.ok);
    out.checks.extend(deployed);
    if let (true, Some(s), Some(Ok(c))) = (applied, &serving, &client) {
        out.checks.push(
            super::serving::ready(c, s, options.system_pods_timeout, options.poll_interval).await,
        );
    }
    record_checks(run, &out.checks).await?;
    run.observer.event(&Progress::PhaseFinished {
        phase: CLUSTER_CHECKS.into(),
    });
    Ok(out)
}

/// Journals each check result under the `cluster-checks` phase.
async fn record_checks(run: &mut Run, checks: &[CheckResult]) -> Result<(), Error> {
    for c in checks {
        let rec = TaskRecord {
            host: run.req.cluster.clone(),
            phase: CLUSTER_CHECKS.into(),
            task: c.name.clone(),
            status: if c.ok {
                TaskState::Unchanged
            } else {
                TaskState::Failed
            },
            duration_ms: c.duration_ms,
            message: c.detail.clone(),
            output: String::new(),
        };
        run.journal.record(run.op, &rec).await?;
    }
    Ok(())
}

/// Removes the control-plane and etcd members that left the spec, before the playbook runs
/// (see [`Leaving::Members`]); the results go into the report with the other removals.
pub async fn remove_members(run: &mut Run) -> Result<Vec<RemovedNode>, Error> {
    // A partial apply (`--until`) leaves membership alone, as it leaves the other
    // cluster-level steps.
    if run.req.options.until.is_some() {
        return Ok(Vec::new());
    }
    let absent: Vec<_> = remove::absent(run)
        .await?
        .into_iter()
        .filter(|(_, r)| {
            r.roles
                .iter()
                .any(|role| role == "control-plane" || role == "etcd")
        })
        .collect();
    let Some(k) = run.req.context.kubernetes.clone() else {
        return Ok(Vec::new());
    };
    if absent.is_empty() || run.req.mode == Mode::Plan {
        return remove::remove_absent(run, None, absent, Leaving::Members).await;
    }
    let client = match (&run.admin_client, &run.kubernetes_ca_pem) {
        (Some(admin), Some(ca_pem)) => {
            let server = server_url(&k.endpoint_host, k.endpoint_port);
            match kubegrid_pki::kubeconfig(
                &run.req.cluster,
                &server,
                ca_pem,
                kubegrid_pki::ADMIN_USER,
                admin,
            ) {
                Ok(kubeconfig) => kubegrid_cluster::connect(&kubeconfig).await.ok(),
                Err(_) => None,
            }
        }
        _ => None,
    };
    remove::remove_absent(run, client.as_ref(), absent, Leaving::Members).await
}

/// Writes `text` to `path` with mode 0600 from the first byte: a temporary file in the same
/// directory, fsynced, then renamed over `path`, so a crash never leaves half a kubeconfig.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn kubeconfig_is_written_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin.conf");
        write_private(&path, "one").unwrap();
        write_private(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn server_urls_bracket_ipv6() {
        assert_eq!(server_url("10.0.0.1", 6443), "https://10.0.0.1:6443");
        assert_eq!(server_url("fd00::1", 6443), "https://[fd00::1]:6443");
    }
}
