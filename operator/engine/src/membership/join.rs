//! Members joining a running external etcd, one at a time: `etcdctl member add` on a running
//! member, then the new member's `etcd` phase alone, started with the running cluster's member
//! list and `existing` state (only its own `initial-cluster.env` says so: the running members'
//! copies keep `new`, which they never read again, so an unchanged spec rewrites nothing), and
//! healthy before the next one is added.

use std::collections::BTreeMap;

use super::etcdctl::{self, Member};
use crate::{
    error::Error,
    operation::{Mode, Run},
    phases::{Phase, PlaybookPhase},
};

/// The install playbook phase that sets up external etcd members.
pub const ETCD_PHASE: &str = "etcd";

/// Hosts of this operation that join a running external etcd: the etcd role and no kubegrid
/// etcd unit yet, in an installed cluster where another member runs one. Before the install,
/// members without a unit start together as a new cluster instead.
pub async fn joining(run: &Run) -> Result<Vec<usize>, Error> {
    let external = run
        .req
        .context
        .kubernetes
        .as_ref()
        .is_some_and(|k| k.etcd.is_external());
    if !external
        || running_members(run).is_empty()
        || run
            .journal
            .installed_version(&run.req.cluster)
            .await?
            .is_none()
    {
        return Ok(Vec::new());
    }
    Ok(run
        .live()
        .into_iter()
        .filter(|&i| run.req.hosts[i].has_role("etcd") && !has_unit(run, i))
        .collect())
}

/// Whether host `i` has kubegrid's etcd unit (it was set up as a member before).
pub fn has_unit(run: &Run, i: usize) -> bool {
    run.facts[i].as_ref().is_some_and(|f| {
        f.paths
            .get(kubegrid_plan::ETCD_UNIT)
            .copied()
            .unwrap_or(false)
    })
}

/// Running members of this operation that can answer etcdctl, in spec order.
pub fn running_members(run: &Run) -> Vec<usize> {
    run.live()
        .into_iter()
        .filter(|&i| run.req.hosts[i].has_role("etcd") && has_unit(run, i))
        .collect()
}

/// The member list as the first running member that answers sees it, with that member.
pub async fn member_list(run: &mut Run, skip: &[usize]) -> Result<(usize, Vec<Member>), String> {
    let mut why = Vec::new();
    for r in running_members(run)
        .into_iter()
        .filter(|r| !skip.contains(r))
    {
        let name = run.reports[r].name.clone();
        match etcdctl::on_host(run, r, "etcd member list", etcdctl::list_command()).await {
            Ok(out) => return Ok((r, etcdctl::parse_members(&out))),
            Err(e) => why.push(format!("{name}: {e}")),
        }
    }
    Err(if why.is_empty() {
        "no running etcd member is reachable in this operation".into()
    } else {
        format!("no running etcd member answered: {}", why.join("; "))
    })
}

/// Adds and starts every joining member, one at a time, and returns the hosts it handled (the
/// playbook's `etcd` phase skips them). A member that was added before but never started is
/// found by its peer URL and started, not added twice. A plan only says what would happen.
pub async fn join(run: &mut Run) -> Result<Vec<usize>, Error> {
    if run.req.mode == Mode::Plan {
        return Ok(Vec::new());
    }
    let joining = joining(run).await?;
    let mut stop: Option<String> = None;
    for &i in &joining {
        if let Some(why) = &stop {
            run.fail_host(i, ETCD_PHASE, why.clone()).await;
            continue;
        }
        let name = run.reports[i].name.clone();
        match add_one(run, i, &joining).await? {
            Ok(()) if run.reports[i].ok => {}
            Ok(()) => {
                stop = Some(format!(
                    "not added to etcd: {name}, added before it, did not become healthy; one member is added at a time"
                ));
            }
            Err(why) => {
                run.fail_host(i, ETCD_PHASE, why).await;
                stop = Some(format!(
                    "not added to etcd: adding {name}, before it, failed; one member is added at a time"
                ));
            }
        }
    }
    Ok(joining)
}

/// `member add` (unless already added) for host `i`, then its etcd phase alone. `Err` inside
/// says why the member could not be added; a failed phase fails the host itself.
async fn add_one(run: &mut Run, i: usize, joining: &[usize]) -> Result<Result<(), String>, Error> {
    let name = run.reports[i].name.clone();
    let peer = kubegrid_plan::etcd_peer_url(&run.req.hosts[i].target.address);
    let (r, list) = match member_list(run, joining).await {
        Ok(found) => found,
        Err(why) => return Ok(Err(format!("cannot add {name} to etcd: {why}"))),
    };
    let runner = run.reports[r].name.clone();
    let mut added = false;
    match etcdctl::find(&list, &name, &peer) {
        // Added by an earlier apply that stopped before it started: start it now.
        Some(m) if !m.started => {}
        // A started member of that name or address whose host has no etcd of kubegrid's any
        // more (reset, or rebuilt): its data is gone, so it cannot come back as that member.
        Some(m) => {
            let id = m.id.clone();
            if let Err(e) = etcdctl::on_host(
                run,
                r,
                "etcd member remove (stale)",
                etcdctl::remove_command(&id),
            )
            .await
            {
                return Ok(Err(format!(
                    "{name} is listed as etcd member {id} but has no etcd data; removing that member on {runner} failed: {e}"
                )));
            }
            added = true;
        }
        None => added = true,
    }
    if added
        && let Err(e) = etcdctl::on_host(
            run,
            r,
            "etcd member add",
            etcdctl::add_command(&name, &peer),
        )
        .await
    {
        return Ok(Err(format!(
            "etcdctl member add {name} on {runner} failed: {e}"
        )));
    }
    let list = match etcdctl::on_host(run, r, "etcd member list", etcdctl::list_command()).await {
        Ok(out) => etcdctl::parse_members(&out),
        Err(e) => {
            return Ok(Err(format!(
                "etcdctl member list on {runner} failed after adding {name}: {e}"
            )));
        }
    };
    if etcdctl::find(&list, &name, &peer).is_none() {
        return Ok(Err(format!(
            "{name} is not in etcd's member list on {runner} after member add"
        )));
    }
    let mut context = run.req.context.clone();
    if let Some(k) = context.kubernetes.as_mut() {
        k.etcd.initial_cluster = etcdctl::initial_cluster(&list, &name, &peer);
        k.etcd.initial_cluster_state = "existing".into();
    }
    let h = &run.req.hosts[i];
    let Some(facts) = run.facts[i].clone() else {
        return Ok(Err(format!("{name} has no facts")));
    };
    let host = h.context(facts, run.pki[i].clone());
    let plans = kubegrid_plan::compile(&run.req.playbook, &context, &host, &run.req.bundle)
        .map_err(|source| Error::Compile {
            host: name.clone(),
            source: Box::new(source),
        })?;
    let Some(plan) = plans.into_iter().find(|p| p.name == ETCD_PHASE) else {
        return Ok(Err(format!(
            "the playbook has no {ETCD_PHASE} phase for {name}"
        )));
    };
    PlaybookPhase {
        name: ETCD_PHASE.into(),
        batch: None,
        plans: BTreeMap::from([(i, plan)]),
    }
    .run(run)
    .await?;
    Ok(Ok(()))
}
