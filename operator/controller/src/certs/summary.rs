//! What a certificates report means for status: the earliest expiry, per-Node summaries,
//! the `CertificatesExpiring` condition, which leaves are due for renewal, the metric's
//! series, and when the next check is due. Pure functions of the report, the policy and
//! the time, so each is tested on its own.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kubegrid_api::{
    CERTIFICATES_EXPIRING, CertificateExpiry, CertificatePolicy, CertificatesStatus, Condition,
    FlaggedCertificate, NodeCertificates,
};
use kubegrid_engine::certs::{CertRow, CertsReport, JournalMatch};

use crate::status::condition;

/// `CertificatesExpiring` is True: a certificate expires within `warnBefore`.
pub const WITHIN_WARN_BEFORE: &str = "WithinWarnBefore";
/// `CertificatesExpiring` is False: none expires within `warnBefore`.
pub const NONE_WITHIN_WARN_BEFORE: &str = "NoneWithinWarnBefore";
/// `CertificatesExpiring` is True while the operator renews.
pub const RENEWING: &str = "Renewing";
/// The most flagged certificates status lists.
const MAX_FLAGGED: usize = 50;

/// A report read against the policy at one moment.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `status.certificates` as the report shows it (no served, rotation or lastRenewed).
    pub status: CertificatesStatus,
    /// The certificate that expires first and when.
    pub earliest: Option<(CertificateExpiry, Timestamp)>,
    /// The earliest expires within `warnBefore`.
    pub expiring: bool,
    /// Leaves the journal's CAs signed that expire within `renewBefore`, earliest first.
    pub due: Vec<CertificateExpiry>,
}

/// Reads `report` against `policy` at `now`.
pub fn summarize(report: &CertsReport, policy: &CertificatePolicy, now: Timestamp) -> Summary {
    let within = |at: Timestamp, span: Duration| {
        at.as_millisecond() - now.as_millisecond()
            < i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
    };
    let mut earliest: Option<(CertificateExpiry, Timestamp)> = None;
    let mut due: Vec<(Timestamp, CertificateExpiry)> = Vec::new();
    let mut nodes = Vec::new();
    for node in &report.nodes {
        let mut summary = NodeCertificates {
            node: node.node.clone(),
            reachable: node.reachable,
            certificates: u32::try_from(node.certificates.len()).unwrap_or(u32::MAX),
            ..NodeCertificates::default()
        };
        let mut node_earliest: Option<Timestamp> = None;
        for row in &node.certificates {
            if row.journal.flagged() {
                summary.flagged += 1;
            }
            let Some(at) = not_after(row) else { continue };
            if within(at, policy.warn_before) {
                summary.expiring += 1;
            }
            if node_earliest.is_none_or(|e| at < e) {
                node_earliest = Some(at);
            }
            let expiry = CertificateExpiry {
                node: node.node.clone(),
                name: row.name.clone(),
                file: row.file.clone(),
                not_after: row.not_after.clone(),
            };
            if renewable(row) && within(at, policy.renew_before) {
                due.push((at, expiry.clone()));
            }
            if earliest.as_ref().is_none_or(|(_, e)| at < *e) {
                earliest = Some((expiry, at));
            }
        }
        summary.earliest_not_after = node_earliest.map(|t| t.to_string());
        nodes.push(summary);
    }
    due.sort_by_key(|(at, _)| *at);
    let flagged = report
        .flagged
        .iter()
        .take(MAX_FLAGGED)
        .map(|f| FlaggedCertificate {
            node: f.node.clone(),
            name: f.name.clone(),
            file: f.file.clone(),
            reason: crate::status::truncate(&scrub(&f.reason), 512),
        })
        .collect();
    let expiring = earliest
        .as_ref()
        .is_some_and(|(_, at)| within(*at, policy.warn_before));
    Summary {
        status: CertificatesStatus {
            earliest_expiry: earliest.as_ref().map(|(e, _)| e.clone()),
            last_checked: Some(crate::status::now()),
            nodes,
            flagged,
            ..CertificatesStatus::default()
        },
        earliest,
        expiring,
        due: due.into_iter().map(|(_, e)| e).collect(),
    }
}

/// A leaf that a renewal re-signs: not a CA, signed by a CA the journal holds. The kubelet's
/// self-signed serving certificate renews itself; a flagged one is a person's to look at.
fn renewable(row: &CertRow) -> bool {
    !row.ca && matches!(row.journal, JournalMatch::Matches | JournalMatch::Signed)
}

fn not_after(row: &CertRow) -> Option<Timestamp> {
    row.not_after.parse().ok()
}

/// The `CertificatesExpiring` condition for `summary`; `renewing` while a renewal runs.
pub fn expiring_condition(
    summary: &Summary,
    policy: &CertificatePolicy,
    renewing: bool,
    generation: Option<i64>,
) -> Condition {
    let first = |e: &CertificateExpiry| {
        format!(
            "{} ({}) on {} expires at {}",
            e.file, e.name, e.node, e.not_after
        )
    };
    if renewing {
        let message = format!(
            "renewing {} certificate(s) that expire within renewBefore {}; the first: {}",
            summary.due.len(),
            show(policy.renew_before),
            summary.due.first().map(first).unwrap_or_default()
        );
        return condition(CERTIFICATES_EXPIRING, true, RENEWING, &message, generation);
    }
    match &summary.earliest {
        Some((e, _)) if summary.expiring => {
            let then = if policy.auto_renew {
                format!(
                    "the operator renews leaves {} before they expire",
                    show(policy.renew_before)
                )
            } else {
                "autoRenew is false: renew with `kubegrid certs renew`".to_string()
            };
            let message = format!(
                "{}, within warnBefore {}; {then}",
                first(e),
                show(policy.warn_before)
            );
            condition(
                CERTIFICATES_EXPIRING,
                true,
                WITHIN_WARN_BEFORE,
                &message,
                generation,
            )
        }
        Some((e, _)) => condition(
            CERTIFICATES_EXPIRING,
            false,
            NONE_WITHIN_WARN_BEFORE,
            &format!("the earliest: {}", first(e)),
            generation,
        ),
        None => condition(
            CERTIFICATES_EXPIRING,
            false,
            NONE_WITHIN_WARN_BEFORE,
            "no certificates were found on the Nodes",
            generation,
        ),
    }
}

/// The metric's series: per Node and catalog name, the earliest end of validity (a
/// kubeconfig holds its CA and its client certificate under one name; the one that expires
/// first is the one that matters), in unix seconds.
pub fn expiry_series(report: &CertsReport) -> Vec<(String, String, i64)> {
    let mut series: BTreeMap<(String, String), i64> = BTreeMap::new();
    for node in &report.nodes {
        for row in &node.certificates {
            let Some(at) = not_after(row) else { continue };
            let entry = series
                .entry((node.node.clone(), row.name.clone()))
                .or_insert(i64::MAX);
            *entry = (*entry).min(at.as_second());
        }
    }
    series
        .into_iter()
        .map(|((node, name), at)| (node, name, at))
        .collect()
}

/// How long until the next check is due; `None` when it is due now: never checked, the last
/// check older than `interval`, or an install or upgrade finished after it (`last_operation_ms`,
/// unix ms), which may have written new certificates.
pub fn next_check(
    last_checked: Option<&str>,
    last_operation_ms: Option<i64>,
    interval: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let checked: Timestamp = last_checked?.parse().ok()?;
    // Status times are rounded to the second: an operation counts as after the check only
    // when it finished more than a second after the time written.
    if last_operation_ms.is_some_and(|ms| ms > checked.as_millisecond() + 1000) {
        return None;
    }
    let age = u64::try_from(now.as_millisecond() - checked.as_millisecond()).unwrap_or(0);
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    (age < interval_ms).then(|| Duration::from_millis(interval_ms - age))
}

/// `text` with every PEM block (`-----BEGIN ...` to its `-----END ...-----`, or to the end
/// when unterminated) left out: status and Events quote engine messages, and nothing that
/// reaches them may carry certificate or key material.
pub fn scrub(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        out.push_str(&rest[..start]);
        out.push_str("[PEM block left out]");
        let after = &rest[start + BEGIN.len()..];
        rest = match after.find(END) {
            Some(end) => {
                let tail = &after[end + END.len()..];
                // Past the closing line's trailing dashes.
                tail.find("-----").map_or("", |d| &tail[d + 5..])
            }
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// A duration as a spec writes it: `720h`, `4m`, `10s`.
pub fn show(d: Duration) -> String {
    let s = d.as_secs();
    if s != 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s != 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
