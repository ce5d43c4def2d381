//! Renewal: every leaf re-signed under the CA that signed it, keeping its subject, names and
//! public key, then rolled out one Node at a time. The journal's own leaves (external etcd's,
//! the apiserver's etcd client, the registry's, the admin certificate) are re-signed once and
//! written to every Node that holds them; kubeadm's and the kubelet's are re-signed from what
//! the Node holds and recorded in the journal, so later checks know them.

use std::{collections::BTreeMap, time::Duration};

use kubegrid_agent::protocol::{Action, CertificatesArgs, FileArgs, Task};
use kubegrid_journal::StoredCert;
use kubegrid_pki::{Ca, read_expiry};
use serde::{Deserialize, Serialize};

use super::{
    CertsReport, Flagged, Renewed,
    api::ReadyCheck,
    catalog::{self, host_record, journal_name, key_path, readers},
    inventory::{Held, Inventory, JOURNAL_NODE, rfc3339},
    roll::{self, NodeWork},
};
use crate::{error::Error, operation::Run};

/// The journal state key of a renewal in progress.
pub const STATE_KEY: &str = "renewal";

/// A renewal in progress, as the journal keeps it: a re-run with the same `only` resumes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The catalog names asked for (empty: all).
    pub only: Vec<String>,
    /// The journal's own leaves were re-signed already.
    pub journal_done: bool,
    /// Nodes that finished.
    pub done: Vec<String>,
}

/// The catalog name of a journal leaf.
pub fn journal_catalog_name(name: &str) -> String {
    for (prefix, catalog) in [
        ("etcd-server-", "etcd-server"),
        ("etcd-peer-", "etcd-peer"),
        ("registry-server-", "registry"),
    ] {
        if name.starts_with(prefix) {
            return catalog.to_string();
        }
    }
    if name == "admin" {
        return "kubegrid-admin".into();
    }
    name.to_string()
}

/// Whether `name` is asked for.
fn wanted(only: &[String], name: &str) -> bool {
    only.is_empty() || only.iter().any(|o| o == name)
}

/// The journal's leaves with their keys: kubegrid's own.
fn journal_leaves(held: &Held) -> Vec<String> {
    held.by_name
        .iter()
        .filter(|(name, c)| {
            !name.starts_with("host:")
                && !c.key_pem.is_empty()
                && read_expiry(&c.cert_pem).is_ok_and(|i| !i.is_ca)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Re-signs `pem` with the journal CA that signed it.
fn resign(held: &Held, pem: &str, validity: Duration) -> Result<Option<String>, Error> {
    let Some(ca_name) = held.issuer_of(pem) else {
        return Ok(None);
    };
    let stored = &held.by_name[ca_name];
    let ca = Ca::from_pem(&stored.cert_pem, &stored.key_pem)
        .map_err(|e| crate::kubernetes::pki::pki_error(ca_name, e))?;
    ca.resign(pem, validity)
        .map(Some)
        .map_err(|e| crate::kubernetes::pki::pki_error(ca_name, e))
}

/// Re-signs the journal's own leaves named by `only`, stores them, and reports the ones not
/// held by any Node (the admin certificate).
pub async fn renew_journal(
    run: &Run,
    report: &mut CertsReport,
    held: &mut Held,
    only: &[String],
    validity: Duration,
) -> Result<(), Error> {
    for name in journal_leaves(held) {
        if !wanted(only, &journal_catalog_name(&name)) {
            continue;
        }
        let old = held.by_name[&name].clone();
        let Some(new_pem) = resign(held, &old.cert_pem, validity)? else {
            continue;
        };
        let new = StoredCert {
            cert_pem: new_pem,
            key_pem: old.key_pem.clone(),
        };
        run.journal.put_cert(&run.req.cluster, &name, &new).await?;
        if name == "admin" {
            report.renewed.push(Renewed {
                node: JOURNAL_NODE.into(),
                name: "kubegrid-admin".into(),
                file: "journal:admin".into(),
                old_not_after: not_after(&old.cert_pem),
                new_not_after: not_after(&new.cert_pem),
            });
        }
        held.by_name.insert(name, new);
    }
    Ok(())
}

fn not_after(pem: &str) -> String {
    read_expiry(pem)
        .map(|i| rfc3339(i.not_after))
        .unwrap_or_default()
}

/// What a renewal works from.
pub struct Inputs<'a> {
    /// The certificates on the hosts.
    pub inventory: &'a Inventory,
    /// The journal's, with its own leaves already re-signed.
    pub held: &'a Held,
    /// The catalog names asked for (empty: all).
    pub only: &'a [String],
    /// The new certificates' validity.
    pub validity: Duration,
}

/// Host `i`'s share of the renewal: the new certificate of every leaf it holds that `only`
/// names, and what must restart. Leaves no journal CA signed are listed in `skipped`.
pub async fn node_work(
    run: &Run,
    i: usize,
    inputs: &Inputs<'_>,
    report: &mut CertsReport,
    skipped: &mut Vec<Flagged>,
) -> Result<NodeWork, Error> {
    let Inputs {
        inventory,
        held,
        only,
        validity,
    } = *inputs;
    let host = &run.req.hosts[i];
    let node = host.target.host.clone();
    let control_plane = host.has_role("control-plane");
    let external = run.req.hosts.iter().any(|h| h.has_role("etcd"));
    let mut work = NodeWork {
        index: i,
        ..NodeWork::default()
    };
    let found = inventory.get(&i).map(Vec::as_slice).unwrap_or_default();
    let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
    for f in found {
        *per_file.entry(f.file.as_str()).or_default() += 1;
    }
    for f in found.iter().filter(|f| !f.info.is_ca) {
        let name = f.name();
        if !wanted(only, &name) {
            continue;
        }
        let skip = |reason: String| Flagged {
            node: node.clone(),
            name: name.clone(),
            file: f.file.clone(),
            reason,
        };
        if f.field.is_none() && per_file.get(f.file.as_str()).copied().unwrap_or(0) > 1 {
            skipped.push(skip(
                "the file holds a certificate chain; kubegrid renews files holding one certificate"
                    .into(),
            ));
            continue;
        }
        if f.info.self_signed && f.file == catalog::KUBELET_SERVING {
            skipped.push(skip(
                "the kubelet's own self-signed serving certificate: the kubelet makes it, not a CA"
                    .into(),
            ));
            continue;
        }
        let fixed = f
            .field
            .is_none()
            .then(|| journal_name(&node, &f.file, external))
            .flatten()
            .filter(|n| held.by_name.get(n).is_some_and(|c| !c.key_pem.is_empty()));
        let (new_pem, repair_key) = if let Some(jname) = &fixed {
            let new = &held.by_name[jname];
            if kubegrid_pki::fingerprint(&new.cert_pem).ok().as_ref() == Some(&f.info.fingerprint) {
                continue;
            }
            // A host whose certificate is not the journal's key's (replaced by hand) gets the
            // journal's key with it, or the pair would not match.
            let repair = (!kubegrid_pki::same_public_key(&f.pem, &new.cert_pem).unwrap_or(false))
                .then(|| new.key_pem.clone());
            (new.cert_pem.clone(), repair)
        } else {
            match resign(held, &f.pem, validity)? {
                Some(pem) => (pem, None),
                None => {
                    skipped.push(skip(format!(
                        "issued by \"{}\", which is no CA kubegrid's journal holds",
                        f.info.issuer
                    )));
                    continue;
                }
            }
        };
        work.tasks.push(Task {
            name: format!("renew {name} ({})", f.file),
            action: Action::Certificates(CertificatesArgs {
                path: f.file.clone().into(),
                certificate: Some(new_pem.clone()),
                ca: None,
            }),
            always: false,
        });
        if let (Some(key), Some(path)) = (repair_key, key_path(&f.file)) {
            work.tasks.push(key_task(&path, &key));
        }
        if fixed.is_none() {
            let record = host_record(&node, &f.file, f.field.as_deref());
            run.journal
                .put_cert(
                    &run.req.cluster,
                    &record,
                    &StoredCert {
                        cert_pem: new_pem.clone(),
                        key_pem: String::new(),
                    },
                )
                .await?;
        }
        work.readers.extend(readers(&f.file, control_plane));
        report.renewed.push(Renewed {
            node: node.clone(),
            name,
            file: f.file.clone(),
            old_not_after: rfc3339(f.info.not_after),
            new_not_after: not_after(&new_pem),
        });
    }
    Ok(work)
}

/// A private key file written whole (mode 0600).
pub fn key_task(path: &str, key_pem: &str) -> Task {
    Task {
        name: format!("key {path}"),
        action: Action::File(FileArgs {
            path: path.into(),
            content: key_pem.to_string(),
            mode: 0o600,
            owner: "root".into(),
            group: "root".into(),
            // A backup would leave the replaced key on the host.
            backup: false,
        }),
        always: false,
    }
}

/// Runs a renewal over every Node, resuming one the journal says did not finish. Returns
/// whether every Node finished.
pub async fn run_renewal(
    run: &mut Run,
    report: &mut CertsReport,
    inventory: &Inventory,
    held: &mut Held,
    only: &[String],
    ready: &ReadyCheck,
) -> Result<bool, Error> {
    let validity = super::validity(run);
    let cluster = run.req.cluster.clone();
    let mut progress = match run.journal.state(&cluster, STATE_KEY).await? {
        Some(text) => serde_json::from_str::<Progress>(&text)
            .ok()
            .filter(|p| p.only == only)
            .unwrap_or_default(),
        None => Progress::default(),
    };
    progress.only = only.to_vec();
    if !progress.journal_done {
        renew_journal(run, report, held, only, validity).await?;
        progress.journal_done = true;
        save(run, &progress).await?;
    }
    let mut skipped = Vec::new();
    for i in roll::order(run) {
        let node = run.req.hosts[i].target.host.clone();
        if progress.done.contains(&node) || run.sessions[i].is_none() {
            continue;
        }
        let inputs = Inputs {
            inventory,
            held,
            only,
            validity,
        };
        let work = node_work(run, i, &inputs, report, &mut skipped).await?;
        if !roll::node(run, report, work, ready).await? {
            report.skipped = skipped;
            return Ok(false);
        }
        progress.done.push(node);
        save(run, &progress).await?;
    }
    report.skipped = skipped;
    run.journal.delete_state(&cluster, STATE_KEY).await?;
    Ok(true)
}

async fn save(run: &Run, progress: &Progress) -> Result<(), Error> {
    let text = serde_json::to_string(progress).unwrap_or_default();
    Ok(run
        .journal
        .put_state(&run.req.cluster, STATE_KEY, &text)
        .await?)
}
