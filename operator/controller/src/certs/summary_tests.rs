//! A certificates report read against the policy: status, the condition, renewal due, the
//! metric's series, the check schedule, and no key material passing through.

use kubegrid_engine::certs::{CertRow, Flagged, NodeCerts};

use super::*;

const DAY: u64 = 86_400;

fn policy(auto_renew: bool) -> CertificatePolicy {
    CertificatePolicy {
        validity: Duration::from_secs(365 * DAY),
        ca_validity: Duration::from_secs(3650 * DAY),
        renew_before: Duration::from_secs(30 * DAY),
        warn_before: Duration::from_secs(120 * DAY),
        auto_renew,
        check_interval: Duration::from_secs(DAY),
    }
}

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn row(name: &str, file: &str, days: i64, journal: JournalMatch, ca: bool) -> CertRow {
    let at = now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
            days * DAY as i64,
        ))
        .unwrap();
    CertRow {
        name: name.into(),
        file: file.into(),
        not_after: at.to_string(),
        days_left: days,
        ca,
        journal,
        ..CertRow::default()
    }
}

/// cp-1: a CA (10 years), the API server (200 days), admin.conf (20 days: due); w-1: the
/// kubelet's self-signed serving certificate (10 days: not kubegrid's to renew) and a
/// flagged one (5 days).
pub(super) fn report() -> CertsReport {
    CertsReport {
        action: "check".into(),
        warn_days: 120,
        nodes: vec![
            NodeCerts {
                node: "cp-1".into(),
                reachable: true,
                certificates: vec![
                    row(
                        "ca",
                        "/etc/kubernetes/pki/ca.crt",
                        3650,
                        JournalMatch::Matches,
                        true,
                    ),
                    row(
                        "apiserver",
                        "/etc/kubernetes/pki/apiserver.crt",
                        200,
                        JournalMatch::Signed,
                        false,
                    ),
                    row(
                        "admin.conf",
                        "/etc/kubernetes/admin.conf",
                        20,
                        JournalMatch::Matches,
                        false,
                    ),
                    row(
                        "admin.conf",
                        "/etc/kubernetes/admin.conf",
                        3650,
                        JournalMatch::Matches,
                        true,
                    ),
                ],
            },
            NodeCerts {
                node: "w-1".into(),
                reachable: true,
                certificates: vec![
                    row(
                        "kubelet-serving",
                        "/var/lib/kubelet/pki/kubelet.crt",
                        10,
                        JournalMatch::SelfSigned,
                        false,
                    ),
                    row(
                        "registry",
                        "/etc/kubegrid/registry/tls.crt",
                        5,
                        JournalMatch::Unknown,
                        false,
                    ),
                ],
            },
        ],
        flagged: vec![Flagged {
            node: "w-1".into(),
            name: "registry".into(),
            file: "/etc/kubegrid/registry/tls.crt".into(),
            reason: "signed by no CA the journal holds".into(),
        }],
        ..CertsReport::default()
    }
}

#[test]
fn status_carries_the_earliest_expiry_and_per_node_counts() {
    let s = summarize(&report(), &policy(true), now());
    let earliest = s.status.earliest_expiry.clone().unwrap();
    assert_eq!(
        (earliest.node.as_str(), earliest.name.as_str()),
        ("w-1", "registry")
    );
    assert_eq!(s.status.nodes.len(), 2);
    let cp = &s.status.nodes[0];
    assert_eq!(
        (cp.node.as_str(), cp.certificates, cp.expiring, cp.flagged),
        ("cp-1", 4, 1, 0)
    );
    assert_eq!(
        cp.earliest_not_after.as_deref(),
        Some(
            row("x", "x", 20, JournalMatch::Matches, false)
                .not_after
                .as_str()
        )
    );
    let w = &s.status.nodes[1];
    assert_eq!((w.certificates, w.expiring, w.flagged), (2, 2, 1));
    assert_eq!(s.status.flagged.len(), 1);
    assert!(s.status.last_checked.is_some());
    assert!(s.expiring);
    // Only admin.conf's client certificate: the kubelet renews its own serving
    // certificate, and a flagged one is a person's to look at.
    let due: Vec<&str> = s.due.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(due, ["admin.conf"]);
}

#[test]
fn the_condition_turns_true_within_warn_before_and_false_outside() {
    let p = policy(true);
    let c = expiring_condition(&summarize(&report(), &p, now()), &p, false, Some(3));
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", WITHIN_WARN_BEFORE)
    );
    assert!(
        c.message
            .contains("/etc/kubegrid/registry/tls.crt (registry) on w-1"),
        "{}",
        c.message
    );
    assert!(
        c.message.contains("renews leaves 720h before"),
        "{}",
        c.message
    );
    let off = policy(false);
    let c = expiring_condition(&summarize(&report(), &off, now()), &off, false, None);
    assert!(c.message.contains("autoRenew is false"), "{}", c.message);
    let renewing = expiring_condition(&summarize(&report(), &p, now()), &p, true, None);
    assert_eq!(
        (renewing.status.as_str(), renewing.reason.as_str()),
        ("True", RENEWING)
    );
    // Everything a year away.
    let mut far = report();
    far.nodes.truncate(1);
    far.nodes[0].certificates.retain(|r| r.days_left > 150);
    let s = summarize(&far, &p, now());
    assert!(!s.expiring && s.due.is_empty());
    let c = expiring_condition(&s, &p, false, None);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", NONE_WITHIN_WARN_BEFORE)
    );
}

#[test]
fn the_metric_has_one_series_per_node_and_name_with_the_earliest_expiry() {
    let series = expiry_series(&report());
    let names: Vec<(&str, &str)> = series
        .iter()
        .map(|(n, c, _)| (n.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("cp-1", "admin.conf"),
            ("cp-1", "apiserver"),
            ("cp-1", "ca"),
            ("w-1", "kubelet-serving"),
            ("w-1", "registry"),
        ]
    );
    let admin = series[0].2;
    assert_eq!(
        admin,
        now().as_second() + 20 * DAY as i64,
        "the client certificate, not the CA"
    );
}

#[test]
fn a_check_is_due_when_never_done_after_its_interval_and_after_an_install() {
    let interval = Duration::from_secs(600);
    let now = now();
    assert_eq!(next_check(None, None, interval, now), None);
    let checked = "2025-12-31T23:55:00Z";
    assert_eq!(
        next_check(Some(checked), None, interval, now),
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        next_check(Some("2025-12-31T23:40:00Z"), None, interval, now),
        None
    );
    let before: Timestamp = "2025-12-31T23:50:00Z".parse().unwrap();
    let after: Timestamp = "2025-12-31T23:56:00Z".parse().unwrap();
    assert_eq!(
        next_check(Some(checked), Some(before.as_millisecond()), interval, now),
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        next_check(Some(checked), Some(after.as_millisecond()), interval, now),
        None
    );
}

#[test]
fn pem_blocks_never_pass_through() {
    let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----";
    let text =
        format!("agent said: {key} and more; unterminated -----BEGIN EC PRIVATE KEY-----\nabc");
    let clean = scrub(&text);
    assert_eq!(
        clean,
        "agent said: [PEM block left out] and more; unterminated [PEM block left out]"
    );
    let mut r = report();
    r.flagged[0].reason = format!("differs: {key}");
    let s = summarize(&r, &policy(true), now());
    let json = serde_json::to_string(&s.status).unwrap();
    assert!(!json.contains("PRIVATE KEY"), "{json}");
    assert!(json.contains("differs: [PEM block left out]"), "{json}");
}
