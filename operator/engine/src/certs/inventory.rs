//! Reading every certificate from every Node (public parts only: the agent never returns a
//! key) and comparing each with what the journal holds.

use std::collections::BTreeMap;

use kubegrid_agent::protocol::{Action, FactsArgs, PROTOCOL_VERSION, Plan, Task};
use kubegrid_journal::{StoredCert, format_time};
use kubegrid_pki::{CertInfo, issued_by, read_expiry, time::OffsetDateTime};

use super::{
    CertRef, CertRow, CertsReport, Flagged, JournalMatch, NodeCerts,
    catalog::{self, host_record, journal_name},
};
use crate::{
    error::Error,
    operation::Run,
    phases::fan_out::{Job, fan_out},
};

/// The progress phase of reading certificates.
pub const PHASE: &str = "certs-read";

/// One certificate found on a Node.
#[derive(Debug, Clone)]
pub struct Found {
    /// Absolute path.
    pub file: String,
    /// Kubeconfig field, for certificates embedded in a kubeconfig.
    pub field: Option<String>,
    /// The file is a kubeconfig.
    pub kubeconfig: bool,
    /// The certificate, PEM.
    pub pem: String,
    /// What it says.
    pub info: CertInfo,
}

impl Found {
    /// The catalog name.
    pub fn name(&self) -> String {
        catalog::name_of(&self.file)
    }
}

/// Every certificate found, by host index; hosts that did not answer are absent.
pub type Inventory = BTreeMap<usize, Vec<Found>>;

/// Reads every live host's certificates in one round trip each. A file that cannot be parsed
/// is left out with a warning in the log (the agent already names the file).
pub async fn read(run: &mut Run) -> Inventory {
    let jobs = run
        .live()
        .into_iter()
        .map(|index| Job {
            index,
            plan: Plan {
                protocol: PROTOCOL_VERSION,
                phase: PHASE.to_string(),
                check_mode: false,
                store_dir: None,
                state_dir: None,
                blobs: Vec::new(),
                tasks: vec![Task {
                    name: "read certificates".into(),
                    action: Action::Facts(FactsArgs {
                        certificates: catalog::read_paths(),
                        ..FactsArgs::default()
                    }),
                    always: false,
                }],
            },
            blobs: Vec::new(),
            persist: false,
        })
        .collect();
    let mut out = Inventory::new();
    for d in fan_out(run, PHASE, jobs).await {
        let host = run.reports[d.index].name.clone();
        let files = match d.result {
            Ok(o) => o.facts.map(|f| f.certificates).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(%host, "reading certificates: {e}");
                continue;
            }
        };
        let mut found = Vec::new();
        for (file, cf) in files {
            if let Some(e) = &cf.error {
                tracing::warn!(%host, %file, "certificate file: {e}");
            }
            for c in cf.certificates {
                match read_expiry(&c.pem) {
                    Ok(info) => found.push(Found {
                        file: file.clone(),
                        field: c.field,
                        kubeconfig: cf.kubeconfig,
                        pem: c.pem,
                        info,
                    }),
                    Err(e) => tracing::warn!(%host, %file, "unreadable certificate: {e}"),
                }
            }
        }
        out.insert(d.index, found);
    }
    out
}

/// The journal's certificates of one cluster, by name.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Every entry, by journal name.
    pub by_name: BTreeMap<String, StoredCert>,
}

impl Held {
    /// Loads them.
    pub async fn load(run: &Run) -> Result<Held, Error> {
        let by_name = run
            .journal
            .certs(&run.req.cluster)
            .await?
            .into_iter()
            .collect();
        Ok(Held { by_name })
    }

    /// The CAs it holds (current, next and previous), as (journal name, certificate PEM).
    pub fn cas(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_name
            .iter()
            .filter(|(_, c)| read_expiry(&c.cert_pem).is_ok_and(|i| i.is_ca))
            .map(|(n, c)| (n.as_str(), c.cert_pem.as_str()))
    }

    /// The journal CA whose key signed `pem`, if any.
    pub fn issuer_of(&self, pem: &str) -> Option<&str> {
        self.cas()
            .find(|(_, ca)| issued_by(pem, ca).unwrap_or(false))
            .map(|(n, _)| n)
    }
}

/// How `found` on `node` compares with the journal, and why it is flagged when it is.
pub fn classify(
    node: &str,
    found: &Found,
    held: &Held,
    external_etcd: bool,
) -> (JournalMatch, Option<String>) {
    let fingerprint = &found.info.fingerprint;
    let same =
        |c: &StoredCert| kubegrid_pki::fingerprint(&c.cert_pem).is_ok_and(|f| &f == fingerprint);
    let fixed = (found.field.is_none())
        .then(|| journal_name(node, &found.file, external_etcd))
        .flatten();
    // A CA file may hold the CA being rotated in as well (a trust bundle).
    let mut names: Vec<String> = Vec::new();
    if let Some(name) = &fixed {
        names.push(name.clone());
        if name.ends_with("-ca") {
            names.push(format!("{name}-next"));
            names.push(format!("{name}-previous"));
        }
    }
    names.push(host_record(node, &found.file, found.field.as_deref()));
    let entries: Vec<&StoredCert> = names.iter().filter_map(|n| held.by_name.get(n)).collect();
    if entries.iter().any(|c| same(c)) {
        return (JournalMatch::Matches, None);
    }
    if let Some(expected) = entries.first() {
        let want = read_expiry(&expected.cert_pem).ok();
        return (
            JournalMatch::Differs,
            Some(format!(
                "the journal issued another certificate for this file ({}, valid until {}); the host has {} issued by \"{}\", valid until {}\n  hint: if it was replaced by hand, `kubegrid certs renew` writes kubegrid's back",
                want.as_ref()
                    .map_or("unreadable", |w| w.fingerprint.as_str()),
                want.as_ref()
                    .map_or_else(String::new, |w| rfc3339(w.not_after)),
                fingerprint,
                found.info.issuer,
                rfc3339(found.info.not_after),
            )),
        );
    }
    // A CA certificate the journal holds, wherever it sits (a kubeconfig's CA data).
    if found.info.is_ca
        && held
            .cas()
            .any(|(_, pem)| kubegrid_pki::fingerprint(pem).is_ok_and(|f| &f == fingerprint))
    {
        return (JournalMatch::Matches, None);
    }
    if found.info.self_signed && found.file == catalog::KUBELET_SERVING {
        return (JournalMatch::SelfSigned, None);
    }
    if held.issuer_of(&found.pem).is_some() {
        return (JournalMatch::Signed, None);
    }
    (
        JournalMatch::Unknown,
        Some(format!(
            "issued by \"{}\", which is no CA kubegrid's journal holds for this cluster\n  hint: a certificate replaced by hand, or a CA kubeadm made before kubegrid managed it; `kubegrid certs rotate-ca` replaces a CA with one kubegrid holds",
            found.info.issuer
        )),
    )
}

/// An RFC 3339 UTC time, to the second.
pub fn rfc3339(t: OffsetDateTime) -> String {
    format_time(t.unix_timestamp().saturating_mul(1000))
}

/// Whole days from `now` until `t` (negative once past).
pub fn days_left(t: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (t - now).whole_days()
}

/// The report's row for `found`.
pub fn row(
    node: &str,
    found: &Found,
    held: &Held,
    external_etcd: bool,
    now: OffsetDateTime,
) -> CertRow {
    let (journal, flag) = classify(node, found, held, external_etcd);
    let i = &found.info;
    CertRow {
        name: found.name(),
        file: found.file.clone(),
        field: found.field.clone(),
        subject: i.subject.clone(),
        issuer: i.issuer.clone(),
        sans: i
            .dns_names
            .iter()
            .cloned()
            .chain(i.ip_addresses.iter().map(ToString::to_string))
            .collect(),
        not_before: rfc3339(i.not_before),
        not_after: rfc3339(i.not_after),
        days_left: days_left(i.not_after, now),
        ca: i.is_ca,
        fingerprint: i.fingerprint.clone(),
        journal,
        flag,
    }
}

/// Fills `report.nodes` from `inventory`, then its earliest, expiring and flagged lists.
pub fn fill(run: &Run, report: &mut CertsReport, inventory: &Inventory, held: &Held) {
    let now = OffsetDateTime::now_utc();
    let external = run.req.hosts.iter().any(|h| h.has_role("etcd"));
    report.nodes = run
        .req
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let node = &h.target.host;
            NodeCerts {
                node: node.clone(),
                reachable: inventory.contains_key(&i),
                certificates: inventory
                    .get(&i)
                    .map(|found| {
                        found
                            .iter()
                            .map(|f| row(node, f, held, external, now))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    // The engine's own client certificate: the admin kubeconfig kubegrid keeps and hands out.
    if let Some(admin) = held.by_name.get("admin")
        && let Ok(info) = read_expiry(&admin.cert_pem)
    {
        let found = Found {
            file: "journal:admin".into(),
            field: None,
            kubeconfig: false,
            pem: admin.cert_pem.clone(),
            info,
        };
        let mut r = row(JOURNAL_NODE, &found, held, external, now);
        r.name = "admin".into();
        r.journal = JournalMatch::Matches;
        r.flag = None;
        report.nodes.push(NodeCerts {
            node: JOURNAL_NODE.into(),
            reachable: true,
            certificates: vec![r],
        });
    }
    summarize(report);
}

/// The pseudo-Node the journal's own certificates (the admin kubeconfig's) are listed under.
pub const JOURNAL_NODE: &str = "kubegrid";

/// Earliest, expiring and flagged from the rows.
pub fn summarize(report: &mut CertsReport) {
    let mut all: Vec<CertRef> = Vec::new();
    report.flagged.clear();
    for n in &report.nodes {
        for c in &n.certificates {
            let r = CertRef {
                node: n.node.clone(),
                name: c.name.clone(),
                file: c.file.clone(),
                not_after: c.not_after.clone(),
                days_left: c.days_left,
            };
            if let Some(reason) = &c.flag {
                report.flagged.push(Flagged {
                    node: n.node.clone(),
                    name: c.name.clone(),
                    file: c.file.clone(),
                    reason: reason.clone(),
                });
            }
            all.push(r);
        }
    }
    // RFC 3339 UTC strings of one format sort as times.
    all.sort_by(|a, b| a.not_after.cmp(&b.not_after));
    report.earliest = all.first().cloned();
    let warn = i64::from(report.warn_days);
    report.expiring = all.into_iter().filter(|r| r.days_left < warn).collect();
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
