//! The automatic renewal: a `renew` operation when a leaf is within `renewBefore`, the read
//! of what the servers then present, and the kubeconfig Secret rewritten when the journal's
//! admin kubeconfig changed.

use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt, runtime::controller::Action, runtime::events::EventType};
use kubegrid_api::{CertificatePolicy, Cluster, Node};
use kubegrid_engine::certs::CertsReport;
use serde_json::json;

use super::{
    Summary, Writer, certificates_patch, describe, failed, publish, retry_key, run, served,
    summary, summary_condition,
};
use crate::{
    context::Context,
    error::Result,
    operation::key,
    runner::{CertsJob, RunOutcome},
    secrets, status,
};

/// Runs a renewal of every leaf (the check found `summary.due`), then reads what the servers
/// present, rewrites the kubeconfig Secret when the renewal changed it, and writes status.
#[expect(
    clippy::too_many_arguments,
    reason = "one renewal's inputs, each used once"
)]
pub(super) async fn renew(
    ctx: &Context,
    writer: &mut Writer<'_>,
    cluster: &Cluster,
    nodes: &[Node],
    policy: &CertificatePolicy,
    checked: &CertsReport,
    summary: &Summary,
    note: Option<String>,
) -> Result<Action> {
    let cluster_key = key(cluster);
    let renewing = summary::expiring_condition(summary, policy, true, writer.generation);
    writer.write(ctx, json!({}), Some(renewing.clone())).await?;
    publish(
        ctx,
        cluster,
        EventType::Normal,
        "RenewalStarted",
        renewing.message,
    )
    .await;
    let kubeconfig_before = ctx.journal.kubeconfig(&cluster_key).await?;
    let ran = run(ctx, cluster, nodes, CertsJob::Renew).await;
    let result = match ran {
        Ok(result) => result,
        Err(e) => {
            let why = format!("renewing certificates failed: {e}");
            return failed(
                ctx,
                writer,
                "RenewalFailed",
                &why,
                Some(summary_condition(summary, policy, writer)),
            )
            .await;
        }
    };
    let report = match (&result.outcome, &result.certs) {
        (RunOutcome::Succeeded, Some(report)) if report.blockers.is_empty() => report.clone(),
        _ => {
            let why = format!(
                "renewing certificates failed (operation {}): {}",
                result.operation,
                describe(&result)
            );
            return failed(
                ctx,
                writer,
                "RenewalFailed",
                &why,
                Some(summary_condition(summary, policy, writer)),
            )
            .await;
        }
    };
    let served = served::verify(nodes, checked, &report, served::HANDSHAKE_TIMEOUT).await;
    update_kubeconfig(
        ctx,
        cluster,
        kubeconfig_before.as_deref(),
        result.kubeconfig.as_deref(),
    )
    .await?;
    let after = summary::summarize(&report, policy, Timestamp::now());
    ctx.metrics
        .certificate_expiry(&cluster_key, &summary::expiry_series(&report));
    let renewed_nodes: std::collections::BTreeSet<&str> =
        report.renewed.iter().map(|r| r.node.as_str()).collect();
    let restarts: Vec<String> = report
        .restarts
        .iter()
        .map(|r| {
            format!(
                "{} on {}{}",
                r.what,
                r.node,
                if r.ok { "" } else { " (not healthy)" }
            )
        })
        .collect();
    let answered: Vec<_> = served.iter().filter(|s| s.answered).collect();
    let confirmed = answered.iter().filter(|s| s.matches == Some(true)).count();
    let silent = served.len() - answered.len();
    let message = format!(
        "renewed {} certificate(s) on {} Node(s) (operation {}); restarted: {}; over TLS {confirmed} of {} port(s) serve the new certificates{}",
        report.renewed.len(),
        renewed_nodes.len(),
        result.operation,
        if restarts.is_empty() {
            "nothing".to_string()
        } else {
            restarts.join(", ")
        },
        served.len(),
        if silent == 0 {
            String::new()
        } else {
            format!(", {silent} did not answer")
        }
    );
    publish(ctx, cluster, EventType::Normal, "RenewalFinished", message).await;
    let stale: Vec<String> = served
        .iter()
        .filter(|s| s.answered && s.matches == Some(false))
        .map(|s| format!("{}:{} {}", s.node, s.port, s.message))
        .collect();
    if !stale.is_empty() {
        let note = format!("after the renewal, {}", stale.join("; "));
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "ServedCertificateNotRenewed",
            note,
        )
        .await;
    }
    if let Some(first) = after.due.first() {
        let note = format!(
            "{} certificate(s) still expire within renewBefore after the renewal, the first {} ({}) on {} at {}",
            after.due.len(),
            first.file,
            first.name,
            first.node,
            first.not_after
        );
        publish(ctx, cluster, EventType::Warning, "RenewalIncomplete", note).await;
    }
    let mut patch = certificates_patch(&after.status, note.as_deref());
    patch["lastRenewed"] = json!(status::now());
    patch["served"] = json!(served);
    let condition = summary::expiring_condition(&after, policy, false, writer.generation);
    writer.write(ctx, patch, Some(condition)).await?;
    ctx.succeeded(&retry_key(&cluster_key));
    ctx.certs.update(&cluster_key, |m| m.recheck = false);
    Ok(Action::requeue(policy.check_interval))
}

/// The Secret `<cluster>-kubeconfig` rewritten from the journal when an operation changed
/// the admin kubeconfig there.
pub(super) async fn update_kubeconfig(
    ctx: &Context,
    cluster: &Cluster,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<()> {
    let Some(text) = after.filter(|after| Some(*after) != before) else {
        return Ok(());
    };
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let secrets_api = Api::namespaced(ctx.client.clone(), &ns);
    secrets::put_kubeconfig(&secrets_api, cluster, text).await?;
    let note = format!(
        "Secret {} holds the admin kubeconfig with the new certificates",
        secrets::kubeconfig_secret_name(&cluster.name_any())
    );
    publish(ctx, cluster, EventType::Normal, "KubeconfigUpdated", note).await;
    Ok(())
}
