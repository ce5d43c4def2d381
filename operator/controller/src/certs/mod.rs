//! Certificates through the operator: a periodic check of every certificate on every Node
//! of an installed Cluster (`spec.certificates.checkInterval`, and right after an install
//! or upgrade), `status.certificates`, the `CertificatesExpiring` condition and its Warning
//! Event, the `kubegrid_certificate_expiry_timestamp_seconds` metric, an automatic renewal
//! of leaves within `renewBefore` (unless `autoRenew: false`) confirmed by reading what the
//! servers present over TLS, and a CA rotation asked for with the `kubegrid.io/rotate-ca`
//! annotation. Each is the engine's `certs` operation, run through the same runner as an
//! install from the Cluster's reconcile, which kube-runtime never runs twice at once for
//! one Cluster: a certificates operation never overlaps another operation of its Cluster.
//! docs/operator.md describes what users see.

mod observe;
mod renewal;
mod rotate;
pub mod served;
pub mod summary;

use std::{collections::HashMap, sync::Mutex, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt, runtime::controller::Action, runtime::events::EventType};
use kubegrid_api::{
    CERTIFICATES_EXPIRING, CertificatePolicy, CertificatesStatus, Cluster, Condition, Node,
    ROTATE_CA_ANNOTATION,
};
use kubegrid_engine::certs::{CaKind, CertsReport};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::{
    context::Context,
    error::Result,
    operation::{self, key},
    runner::{CertsJob, JobKind, RunOutcome, RunResult},
    status, tracker,
};
use summary::{Summary, scrub, show};

/// The journal's kind of a certificates operation.
pub const JOURNAL_KIND: &str = "certs";

/// What the operator remembers about each Cluster's certificates between reconciles (lost
/// on restart, which costs at most one repeated Event or one check that waits for its
/// interval).
#[derive(Debug, Default)]
pub struct Memory(Mutex<HashMap<String, Remembered>>);

#[derive(Debug, Default, Clone)]
struct Remembered {
    /// Check again at the next reconcile: a renewal or rotation failed or just finished.
    recheck: bool,
    /// The Warning that renewal is due but `autoRenew` is off was published.
    renewal_warned: bool,
    /// The `kubegrid.io/rotate-ca` value last refused with a Warning.
    refused: Option<String>,
}

impl Memory {
    fn get(&self, cluster: &str) -> Remembered {
        let map = self.0.lock().expect("certificates memory lock poisoned");
        map.get(cluster).cloned().unwrap_or_default()
    }

    fn update(&self, cluster: &str, f: impl FnOnce(&mut Remembered)) {
        let mut map = self.0.lock().expect("certificates memory lock poisoned");
        f(map.entry(cluster.to_string()).or_default());
    }

    /// Forgets a deleted Cluster.
    pub fn forget(&self, cluster: &str) {
        self.0
            .lock()
            .expect("certificates memory lock poisoned")
            .remove(cluster);
    }
}

/// The backoff key of a Cluster's certificates operations, apart from its installs'.
fn retry_key(cluster: &str) -> String {
    format!("{cluster} certificates")
}

/// The intent a certificates failure is counted under (see [`Context::failed`]).
const RETRY_INTENT: &str = "certificates";

/// One reconcile of an installed, Ready Cluster with nothing else to do: a requested CA
/// rotation, else the check when it is due and a renewal when one is. Returns when to come
/// back: at the next check.
pub async fn maintain(
    ctx: &Context,
    clusters: &Api<Cluster>,
    cluster: &Cluster,
    live: &[Node],
) -> Result<Action> {
    let cluster_key = key(cluster);
    // Manifest validation refused a bad policy before any operation; the spec changed
    // since, and the reconcile it triggers reports it.
    let Ok(policy) = cluster.spec.certificate_policy() else {
        return Ok(Action::await_change());
    };
    let nodes = members(ctx, &cluster_key, live).await?;
    if nodes.is_empty() {
        return Ok(Action::await_change());
    }
    let mut note = None;
    // The reconcile's copy can predate the removal of the annotation by the rotation that
    // just finished, or the status of the check that just ran: the stored Cluster decides,
    // so a rotation never runs twice and a check is not repeated before its interval.
    let stored = clusters
        .get_opt(&cluster.name_any())
        .await
        .map_err(crate::error::Error::kube(format!(
            "read Cluster {cluster_key}"
        )))?;
    let requested = stored
        .as_ref()
        .and_then(|c| c.annotations().get(ROTATE_CA_ANNOTATION));
    match (requested, &stored) {
        (Some(value), Some(stored)) => match value.parse::<CaKind>() {
            Ok(ca) => return rotate::run_rotation(ctx, clusters, stored, &nodes, ca).await,
            Err(_) => note = Some(refuse_rotation(ctx, stored, value).await),
        },
        _ => ctx.certs.update(&cluster_key, |m| m.refused = None),
    }
    let remembered = ctx.certs.get(&cluster_key);
    let last_operation = ctx
        .journal
        .latest_operation_except(&cluster_key, JOURNAL_KIND)
        .await?
        .and_then(|op| op.finished_ms);
    let checked = stored
        .as_ref()
        .unwrap_or(cluster)
        .status
        .as_ref()
        .and_then(|s| s.certificates.as_ref())
        .and_then(|c| c.last_checked.as_deref());
    let interval = policy.check_interval;
    if !remembered.recheck
        && let Some(wait) = summary::next_check(checked, last_operation, interval, Timestamp::now())
    {
        return Ok(Action::requeue(wait));
    }
    if let Some(wait) = ctx.wait_left(&retry_key(&cluster_key), RETRY_INTENT) {
        return Ok(Action::requeue(wait));
    }
    let mut writer = Writer::fresh(clusters, cluster).await?;
    let warn_days = u32::try_from(policy.warn_before.as_secs().div_ceil(86_400))
        .unwrap_or(u32::MAX)
        .max(1);
    let result = match run(ctx, cluster, &nodes, CertsJob::Check { warn_days }).await {
        Ok(result) => result,
        Err(e) => {
            let why = format!("the certificates check could not run: {e}");
            return failed(ctx, &mut writer, "CheckFailed", &why, None).await;
        }
    };
    let Some(report) = result.certs.clone() else {
        let why = format!(
            "the certificates check (operation {}) returned no report: {}",
            result.operation,
            describe(&result)
        );
        return failed(ctx, &mut writer, "CheckFailed", &why, None).await;
    };
    let summary = summary::summarize(&report, &policy, Timestamp::now());
    ctx.metrics
        .certificate_expiry(&cluster_key, &summary::expiry_series(&report));
    announce_flagged(ctx, cluster, &report).await;
    let condition = summary::expiring_condition(&summary, &policy, false, writer.generation);
    writer
        .write(
            ctx,
            certificates_patch(&summary.status, note.as_deref()),
            Some(condition),
        )
        .await?;
    if result.outcome != RunOutcome::Succeeded {
        let why = format!(
            "the certificates check (operation {}) did not read every Node: {}",
            result.operation,
            describe(&result)
        );
        return failed(ctx, &mut writer, "CheckFailed", &why, None).await;
    }
    if summary.due.is_empty() {
        ctx.certs.update(&cluster_key, |m| {
            m.recheck = false;
            m.renewal_warned = false;
        });
        ctx.succeeded(&retry_key(&cluster_key));
        return Ok(Action::requeue(interval));
    }
    if !policy.auto_renew {
        if !remembered.renewal_warned {
            let first = &summary.due[0];
            let message = format!(
                "{} certificate(s) expire within renewBefore {}, the first {} ({}) on {} at {}; autoRenew is false, so the operator does not renew them\n  hint: run kubegrid certs renew -f SPEC, or set spec.certificates.autoRenew: true",
                summary.due.len(),
                show(policy.renew_before),
                first.file,
                first.name,
                first.node,
                first.not_after
            );
            publish(ctx, cluster, EventType::Warning, "RenewalDue", message).await;
            ctx.certs.update(&cluster_key, |m| m.renewal_warned = true);
        }
        ctx.certs.update(&cluster_key, |m| m.recheck = false);
        return Ok(Action::requeue(interval));
    }
    renewal::renew(
        ctx,
        &mut writer,
        cluster,
        &nodes,
        &policy,
        &report,
        &summary,
        note,
    )
    .await
}

/// The condition as the check left it (after a renewal that did not happen).
fn summary_condition(
    summary: &Summary,
    policy: &CertificatePolicy,
    writer: &Writer<'_>,
) -> Condition {
    summary::expiring_condition(summary, policy, false, writer.generation)
}

/// A check, renewal or rotation that failed: a Warning Event, the message in status, and a
/// retry with backoff that checks again first.
async fn failed(
    ctx: &Context,
    writer: &mut Writer<'_>,
    reason: &str,
    why: &str,
    condition: Option<Condition>,
) -> Result<Action> {
    let why = scrub(why);
    publish(ctx, writer.cluster, EventType::Warning, reason, why.clone()).await;
    writer
        .write(
            ctx,
            json!({"message": status::truncate(&why, 1024)}),
            condition,
        )
        .await?;
    let cluster_key = key(writer.cluster);
    ctx.certs.update(&cluster_key, |m| m.recheck = true);
    Ok(Action::requeue(
        ctx.failed(&retry_key(&cluster_key), Some(RETRY_INTENT)),
    ))
}

/// A Warning for each flagged certificate that the last status did not list yet.
async fn announce_flagged(ctx: &Context, cluster: &Cluster, report: &CertsReport) {
    let known = cluster
        .status
        .as_ref()
        .and_then(|s| s.certificates.as_ref())
        .map(|c| c.flagged.clone())
        .unwrap_or_default();
    for f in &report.flagged {
        if known
            .iter()
            .any(|k| k.node == f.node && k.file == f.file && k.name == f.name)
        {
            continue;
        }
        let note = format!(
            "{}: {} ({}) is flagged: {}",
            f.node,
            f.file,
            f.name,
            scrub(&f.reason)
        );
        publish(ctx, cluster, EventType::Warning, "CertificateFlagged", note).await;
    }
}

/// A `kubegrid.io/rotate-ca` value that names no CA: a Warning once per value, and the
/// status message it returns.
async fn refuse_rotation(ctx: &Context, cluster: &Cluster, value: &str) -> String {
    let shown = status::truncate(&value.escape_default().to_string(), 40);
    let message = format!(
        "annotation {ROTATE_CA_ANNOTATION}: `{shown}` is not a CA kubegrid rotates, so no rotation was started; expected one of {}\n  hint: kubectl annotate cluster {} {ROTATE_CA_ANNOTATION}=etcd --overwrite",
        CaKind::ALL.map(CaKind::as_str).join(", "),
        cluster.name_any()
    );
    let cluster_key = key(cluster);
    if ctx.certs.get(&cluster_key).refused.as_deref() != Some(value) {
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "RotationRefused",
            message.clone(),
        )
        .await;
        ctx.certs
            .update(&cluster_key, |m| m.refused = Some(value.to_string()));
    }
    message
}

/// `status.certificates` as a merge patch: the fields a check decides are always written
/// (an empty list or a null clears them); `lastRenewed`, `served` and `rotation` are left
/// as they are.
fn certificates_patch(read: &CertificatesStatus, note: Option<&str>) -> Value {
    json!({
        "earliestExpiry": read.earliest_expiry,
        "lastChecked": read.last_checked,
        "nodes": read.nodes,
        "flagged": read.flagged,
        "message": note,
    })
}

/// Writes `status.certificates` and the `CertificatesExpiring` condition, keeping the
/// conditions it wrote last so each write merges over the one before.
struct Writer<'a> {
    clusters: &'a Api<Cluster>,
    cluster: &'a Cluster,
    conditions: Vec<Condition>,
    generation: Option<i64>,
}

impl<'a> Writer<'a> {
    /// A writer that starts from the stored conditions: the copy the reconcile got may lack
    /// a condition written since, which a whole-list write would undo.
    async fn fresh(clusters: &'a Api<Cluster>, cluster: &'a Cluster) -> Result<Self> {
        let stored =
            clusters
                .get_status(&cluster.name_any())
                .await
                .map_err(crate::error::Error::kube(format!(
                    "read Cluster {}",
                    key(cluster)
                )))?;
        Ok(Self {
            clusters,
            cluster,
            conditions: stored.status.map(|s| s.conditions).unwrap_or_default(),
            generation: cluster.metadata.generation,
        })
    }

    /// Merge-patches `certificates` into `status.certificates`, and `condition` (Warning
    /// Event when it turns True).
    async fn write(
        &mut self,
        ctx: &Context,
        certificates: Value,
        condition: Option<Condition>,
    ) -> Result<()> {
        let mut patch = json!({ "certificates": certificates });
        if let Some(c) = condition {
            let was = self
                .conditions
                .iter()
                .find(|o| o.type_ == CERTIFICATES_EXPIRING)
                .map(|o| o.status.clone());
            if c.status == "True" && was.as_deref() != Some("True") {
                let note = c.message.clone();
                publish(
                    ctx,
                    self.cluster,
                    EventType::Warning,
                    "CertificatesExpiring",
                    note,
                )
                .await;
            }
            self.conditions = status::merge(&self.conditions, vec![c], &status::now());
            patch["conditions"] = json!(self.conditions);
        }
        status::patch_cluster(self.clusters, &self.cluster.name_any(), patch).await
    }
}

/// The live Nodes that are in the cluster (the journal's members), as an upgrade takes them.
async fn members(ctx: &Context, cluster_key: &str, live: &[Node]) -> Result<Vec<Node>> {
    let members: Vec<String> = ctx
        .journal
        .members(cluster_key)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    Ok(live
        .iter()
        .filter(|n| members.is_empty() || members.contains(&n.name_any()))
        .cloned()
        .collect())
}

/// Runs one certificates operation on `nodes` through the Context's runner, its progress as
/// Events (see [`observe`]).
async fn run(ctx: &Context, cluster: &Cluster, nodes: &[Node], job: CertsJob) -> Result<RunResult> {
    let kind = JobKind::Certs(job);
    let manifest = operation::manifest(ctx, kind, cluster, nodes)?;
    let digest = operation::spec_digest(ctx, kind, cluster, nodes);
    let prepared = operation::prepare(ctx, kind, cluster, manifest, digest, &[]).await?;
    operation::seed_host_keys(ctx, &prepared, nodes).await?;
    let target = observe::Target {
        recorder: ctx.recorder.clone(),
        cluster: operation::reference(cluster),
        nodes: nodes
            .iter()
            .map(|n| (n.name_any(), operation::reference(n)))
            .collect(),
        metrics: std::sync::Arc::clone(&ctx.metrics),
    };
    let (observer, events) = observe::start(target, job);
    let keys: Vec<std::path::PathBuf> = [&prepared.ssh_key_file, &prepared.bundle_public_key]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let span = tracing::info_span!("operation", cluster = %prepared.cluster, kind = kind.as_str());
    let result = ctx
        .runner
        .run(prepared, ctx.journal.clone(), observer)
        .instrument(span)
        .await;
    // Keys read from Secrets exist only while an operation runs.
    for key in keys {
        let _ = std::fs::remove_file(key);
    }
    // Every sender went with the run; a copy the engine kept would hold this forever.
    let _ = tokio::time::timeout(Duration::from_secs(10), events.finish()).await;
    result
}

/// Why an operation did not succeed, on one line.
fn describe(result: &RunResult) -> String {
    let blockers: Vec<String> = result
        .certs
        .iter()
        .flat_map(|r| r.blockers.clone())
        .collect();
    let hosts: Vec<String> = result
        .hosts
        .iter()
        .filter(|h| !h.ok)
        .map(|h| {
            format!(
                "{} in {}: {}",
                h.name,
                h.failed_phase.as_deref().unwrap_or("?"),
                h.error.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    let text = match &result.outcome {
        _ if !blockers.is_empty() => format!("nothing was changed: {}", blockers.join("; ")),
        RunOutcome::Succeeded => "it finished".to_string(),
        RunOutcome::HostsFailed => format!("hosts failed: {}", hosts.join("; ")),
        RunOutcome::PreflightFailed(findings) => {
            format!(
                "preflight failed, nothing was changed: {}",
                findings.join("; ")
            )
        }
        RunOutcome::Unreachable => format!(
            "hosts could not be reached, nothing was changed{}",
            if hosts.is_empty() {
                String::new()
            } else {
                format!(": {}", hosts.join("; "))
            }
        ),
        RunOutcome::ClusterFailed(why) => format!("the cluster's checks failed: {why}"),
    };
    scrub(&text)
}

/// Publishes an Event about `cluster`.
async fn publish(ctx: &Context, cluster: &Cluster, type_: EventType, reason: &str, note: String) {
    let reference = operation::reference(cluster);
    tracker::publish_with(&ctx.recorder, &reference, type_, reason, scrub(&note)).await;
}

#[cfg(test)]
mod tests;
