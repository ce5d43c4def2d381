//! Running the planned steps: each compiled from one phase of `playbooks/upgrade.yaml` with
//! the step's versions and run on its Nodes, with the Nodes of a roll cordoned, drained,
//! upgraded, waited on until Ready and uncordoned through the Kubernetes API.

use std::{collections::BTreeMap, time::Instant};

use kube::Client;
use kubegrid_plan::ClusterContext;
use kubegrid_upgrade::{Available, ClusterState, Step, Targets};
use semver::Version;

use super::{StepPart, StepResult, UpgradeReport, paused, state};
use crate::{
    error::Error,
    operation::{Outcome, PhaseTime, Run},
    phases::{Phase, PlaybookPhase},
    progress::Progress,
};

/// The versions the spec asks for, as the bundle pins them.
pub fn targets(run: &Run, cluster: &ClusterState) -> Result<Targets, Error> {
    let k = super::kubernetes(run)?;
    let external = cluster.nodes.iter().any(|n| n.roles.etcd);
    let etcd = match (&run.req.context.etcd_version, external) {
        (_, false) => None,
        (Some(v), true) => Some(v.clone()),
        (None, true) => available(run).etcd.into_iter().max(),
    };
    let containerd = kubegrid_plan::containerd_file(
        &run.req.context,
        run.req.bundle.manifest(),
        &host_arch(run),
    )
    .and_then(|f| f.version.as_deref().and_then(state::parse));
    Ok(Targets {
        kubernetes: k.version.clone(),
        etcd,
        containerd,
    })
}

/// The versions the bundle carries for the hosts' architecture.
pub fn available(run: &Run) -> Available {
    let arch = host_arch(run);
    let versions = |name: &str| -> Vec<Version> {
        let mut v: Vec<Version> = run
            .req
            .bundle
            .binary_versions(name, &arch)
            .iter()
            .filter_map(|v| state::parse(v))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut containerd: Vec<Version> =
        kubegrid_plan::containerd_versions(&run.req.context, run.req.bundle.manifest(), &arch)
            .iter()
            .filter_map(|v| state::parse(v))
            .collect();
    containerd.sort();
    containerd.dedup();
    Available {
        kubernetes: versions("kubeadm"),
        etcd: versions("etcd"),
        containerd,
    }
}

/// The architecture the versions are looked up for: the first host's that answered (the
/// bundle check before the operation already made sure every arch the spec has is served).
fn host_arch(run: &Run) -> String {
    run.facts
        .iter()
        .flatten()
        .map(|f| f.arch.clone())
        .next()
        .unwrap_or_else(|| "amd64".into())
}

/// Runs every step of the plan in order, stopping at the first failure, at a Node found out
/// of skew, or when the spec pauses the upgrade.
pub async fn roll(
    run: &mut Run,
    client: &Client,
    report: &mut UpgradeReport,
) -> Result<Outcome, Error> {
    for node in report.plan.uncordon.clone() {
        let waited = kubegrid_cluster::wait_ready(
            client,
            &node,
            run.req.options.upgrade.ready_timeout,
            run.req.options.drain.poll_interval,
        )
        .await;
        if waited.is_ok() && super::roll::uncordon(client, &node).await.is_ok() {
            report.uncordoned.push(node);
        }
    }
    for step in report.plan.steps.clone() {
        if paused(run) {
            report.paused = true;
            return Ok(Outcome::Succeeded);
        }
        run.observer.event(&Progress::PhaseStarted {
            phase: format!("upgrade step {}", step.id()),
            hosts: step.nodes().len(),
        });
        let versions = state::read_versions(run).await;
        let silent: Vec<String> = run
            .live()
            .into_iter()
            .filter(|i| !versions.contains_key(i))
            .map(|i| run.reports[i].name.clone())
            .collect();
        if !silent.is_empty() {
            // A Node that stopped answering cannot be checked for skew, nor upgraded later:
            // stop before anything else changes.
            for i in run.live() {
                if !versions.contains_key(&i) {
                    let why =
                        "did not answer the version check before the next upgrade step".to_string();
                    run.fail_host(i, state::PHASE, why).await;
                }
            }
            report.stopped = Some(format!(
                "before step {}: {} did not answer the version check (unreachable?); nothing after it was started\n  hint: bring it back and run the upgrade again; finished steps are not redone",
                step.id(),
                silent.join(", ")
            ));
            return Ok(Outcome::HostsFailed);
        }
        let live = state::cluster_state(run, &versions, &BTreeMap::new(), None);
        let skew = kubegrid_upgrade::skew(&live);
        if !skew.is_empty() {
            let named: Vec<String> = skew.iter().map(|b| b.message.clone()).collect();
            report.stopped = Some(format!(
                "before step {}: out of skew: {}",
                step.id(),
                named.join("; ")
            ));
            return Ok(Outcome::HostsFailed);
        }
        let started = Instant::now();
        let result = run_step(run, client, &step).await?;
        run.phase_times.push(PhaseTime {
            phase: format!("upgrade {}", step.id()),
            wall_ms: started.elapsed().as_millis() as u64,
        });
        let ok = result.ok;
        let error = result.error.clone();
        super::journal::record(run, &result).await;
        report.steps.push(result);
        if !ok {
            report.stopped = Some(format!(
                "step {} failed: {}",
                step.id(),
                error.unwrap_or_default()
            ));
            return Ok(Outcome::HostsFailed);
        }
        if let Step::KubeadmApply { version, .. } = &step {
            // The control plane now runs this version: `apply`'s version guard and the
            // operator's status read this record.
            run.journal
                .put_installed_version(&run.req.cluster, &version.to_string())
                .await?;
        }
    }
    Ok(Outcome::Succeeded)
}

/// One step on its Nodes.
async fn run_step(run: &mut Run, client: &Client, step: &Step) -> Result<StepResult, Error> {
    let started = Instant::now();
    let mut out = StepResult {
        id: step.id(),
        step: step.clone(),
        ok: true,
        error: None,
        duration_ms: 0,
        parts: Vec::new(),
        left: BTreeMap::new(),
    };
    let spec_version = run
        .req
        .context
        .kubernetes
        .as_ref()
        .map(|k| k.version.clone());
    match step {
        Step::EtcdMember { node, to, .. } => {
            let k8s = spec_version.unwrap_or_else(|| Version::new(0, 0, 0));
            let ctx = context_at(&run.req.context, &k8s, None, Some(to))?;
            phase(
                run,
                &mut out,
                &ctx,
                "etcd-member",
                std::slice::from_ref(node),
            )
            .await?;
        }
        Step::KubeadmApply { node, version } => {
            let ctx = context_at(&run.req.context, version, None, None)?;
            phase(
                run,
                &mut out,
                &ctx,
                "kubeadm-apply",
                std::slice::from_ref(node),
            )
            .await?;
        }
        Step::KubeadmNode { node, version } => {
            let ctx = context_at(&run.req.context, version, None, None)?;
            phase(
                run,
                &mut out,
                &ctx,
                "kubeadm-node",
                std::slice::from_ref(node),
            )
            .await?;
        }
        Step::Roll {
            nodes,
            kubelet,
            containerd,
            worker,
        } => {
            let ctx = context_at(&run.req.context, kubelet, containerd.as_ref(), None)?;
            super::roll::roll_nodes(
                run,
                client,
                &mut out,
                &ctx,
                nodes,
                containerd.is_some(),
                *worker,
            )
            .await?;
        }
    }
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// Runs one phase of the upgrade playbook on `nodes` (together), compiled with `ctx`.
/// Returns whether every Node finished it; a failed Node is failed in the run and named in
/// the step.
pub(super) async fn phase(
    run: &mut Run,
    out: &mut StepResult,
    ctx: &ClusterContext,
    name: &str,
    nodes: &[String],
) -> Result<bool, Error> {
    let mut plans = BTreeMap::new();
    for node in nodes {
        let Some(i) = run.reports.iter().position(|r| &r.name == node) else {
            fail(out, format!("{node} is not a Node of this spec"));
            return Ok(false);
        };
        if run.facts[i].is_none() {
            fail(out, format!("{node}: no facts were read from it"));
            return Ok(false);
        }
        if let Some(p) = crate::phases::compile_phase(run, name, i, ctx)? {
            plans.insert(i, p);
        }
    }
    let started = Instant::now();
    PlaybookPhase {
        name: name.to_string(),
        batch: None,
        plans: plans.clone(),
    }
    .run(run)
    .await?;
    let mut ok = true;
    for &i in plans.keys() {
        let report = &run.reports[i];
        part(out, &report.name, name, started, report.ok);
        if !report.ok {
            ok = false;
            let why = report.error.clone().unwrap_or_default();
            fail(out, format!("{} failed in {name}: {why}", report.name));
        }
    }
    Ok(ok)
}

/// The compile context for a step: the spec's, at `kubernetes` (kubeadm's config API and
/// the pause image follow), with containerd on `containerd`'s line and etcd at `etcd` when
/// given.
fn context_at(
    base: &ClusterContext,
    kubernetes: &Version,
    containerd: Option<&Version>,
    etcd: Option<&Version>,
) -> Result<ClusterContext, Error> {
    let mut ctx = base.clone();
    if let Some(k) = ctx.kubernetes.as_mut() {
        k.version = kubernetes.clone();
        k.kubeadm_api = kubegrid_plan::KubernetesContext::kubeadm_api_for(kubernetes);
    }
    // The pause image follows the version unless the spec names its own.
    let base_version = base.kubernetes.as_ref().map(|k| &k.version);
    let default_image = base_version.and_then(|v| ClusterContext::sandbox_image_for(v).ok());
    if default_image.as_deref() == Some(base.sandbox_image.as_str()) {
        ctx.sandbox_image =
            ClusterContext::sandbox_image_for(kubernetes).map_err(|e| Error::Compile {
                host: base.name.clone(),
                source: Box::new(e),
            })?;
    }
    if let Some(c) = containerd {
        ctx.containerd = Version::new(c.major, c.minor, 0);
    }
    if let Some(e) = etcd {
        ctx.etcd_version = Some(e.clone());
    }
    Ok(ctx)
}

pub(super) fn part(out: &mut StepResult, node: &str, part: &str, started: Instant, ok: bool) {
    out.parts.push(StepPart {
        node: node.to_string(),
        part: part.to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
        ok,
    });
}

pub(super) fn fail(out: &mut StepResult, why: String) {
    out.ok = false;
    out.error.get_or_insert(why);
}
