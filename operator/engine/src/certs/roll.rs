//! Rolling a certificate change over the Nodes one at a time: write the Node's files, restart
//! what reads them (playbooks/certs.yaml), and wait until the Node is healthy again before the
//! next one: etcd healthy and caught up, the API server ready on that Node, the kubelet
//! answering its health endpoint.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use kubegrid_agent::protocol::Task;
use kubegrid_plan::PhasePlan;

use super::{CertsReport, Restart, api, catalog::Reader};
use crate::{
    error::Error,
    operation::Run,
    phases::{self, Phase, PlaybookPhase},
};

/// The phase name of a Node's file writes.
pub const WRITE_PHASE: &str = "certs-write";

/// One Node's part of a renewal or rotation step.
#[derive(Debug, Clone, Default)]
pub struct NodeWork {
    /// Host index.
    pub index: usize,
    /// The writes, in order.
    pub tasks: Vec<Task>,
    /// What must restart afterwards.
    pub readers: BTreeSet<Reader>,
}

/// The order Nodes roll in: etcd members first (each restart costs the quorum a member), then
/// control-plane Nodes, then the rest, each group in spec order.
pub fn order(run: &Run) -> Vec<usize> {
    let hosts = &run.req.hosts;
    let rank = |i: usize| {
        if hosts[i].has_role("etcd") {
            0
        } else if hosts[i].has_role("control-plane") {
            1
        } else {
            2
        }
    };
    let mut all: Vec<usize> = (0..hosts.len()).collect();
    all.sort_by_key(|&i| (rank(i), i));
    all
}

/// The playbook phase that restarts `reader`.
fn restart_phase(reader: Reader) -> &'static str {
    match reader {
        Reader::Etcd => "etcd-restart",
        Reader::ControlPlane => "control-plane-restart",
        Reader::Kubelet => "kubelet-restart",
        Reader::Registry => "registry-restart",
    }
}

/// Runs `work` on its Node: the writes, then each restart with its health wait. Returns
/// whether the Node is healthy again; a failure is recorded in the run and the report.
pub async fn node(
    run: &mut Run,
    report: &mut CertsReport,
    work: NodeWork,
    ready: &api::ReadyCheck,
) -> Result<bool, Error> {
    let i = work.index;
    let name = run.reports[i].name.clone();
    if !work.tasks.is_empty() {
        let plan = PhasePlan {
            name: WRITE_PHASE.into(),
            tasks: work.tasks,
            blobs: Vec::new(),
            reboot: None,
        };
        if !run_one(run, WRITE_PHASE, i, plan).await? {
            return Ok(false);
        }
    }
    for reader in work.readers {
        let started = Instant::now();
        let phase = restart_phase(reader);
        let mut ok = match phases::compile_phase(run, phase, i, &run.req.context)? {
            Some(plan) if !plan.tasks.is_empty() => run_one(run, phase, i, plan).await?,
            _ => true,
        };
        if ok && reader == Reader::ControlPlane {
            let address = run.req.hosts[i].target.address.clone();
            if let Err(why) = ready.wait(&address).await {
                let error = format!(
                    "the API server on {name} did not become ready after its restart: {why}\n  hint: check its static pod (crictl ps -a --name kube-apiserver; journalctl -u kubelet)"
                );
                run.fail_host(i, phase, error).await;
                ok = false;
            }
        }
        report.restarts.push(Restart {
            node: name.clone(),
            what: reader.as_str().to_string(),
            duration_ms: started.elapsed().as_millis() as u64,
            ok,
        });
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs `plan` on host `i` alone; whether it finished.
async fn run_one(run: &mut Run, name: &str, i: usize, plan: PhasePlan) -> Result<bool, Error> {
    PlaybookPhase {
        name: name.to_string(),
        batch: None,
        plans: BTreeMap::from([(i, plan)]),
    }
    .run(run)
    .await?;
    Ok(run.reports[i].ok)
}
