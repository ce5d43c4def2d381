//! Driving a CA rotation through its phases (see `rotation.rs`), one Node at a time in each,
//! with the progress in the journal after every Node: a run killed anywhere resumes where it
//! stopped, and every reader trusts whatever CA signs what it is shown at every moment.

use std::time::Duration;

use kubegrid_agent::protocol::{Action, CertificatesArgs, FileArgs, Task};
use kubegrid_journal::StoredCert;
use kubegrid_pki::{Ca, issued_by, read_expiry};

use super::{
    CaKind, CertsReport, RotationReport,
    api::{ReadyCheck, publish_ca},
    catalog::{self, readers, trusts},
    inventory::{Held, Inventory},
    renew::key_task,
    roll::{self, NodeWork},
    rotation::{Phase, Rotation, trust},
};
use crate::{error::Error, operation::Run};

/// The journal state key of a rotation in progress.
pub const STATE_KEY: &str = "rotation";

/// The service-account keys: the public key PEM is kept as the entry's certificate.
const SA_PUB: &str = kubegrid_pki::layout::kubeadm::SERVICE_ACCOUNT_PUB;
const SA_KEY: &str = kubegrid_pki::layout::kubeadm::SERVICE_ACCOUNT_KEY;

/// The rotation the journal records for this cluster, if one is in progress.
pub async fn in_progress(run: &Run) -> Result<Option<Rotation>, Error> {
    Ok(run
        .journal
        .state(&run.req.cluster, STATE_KEY)
        .await?
        .and_then(|t| Rotation::from_json(&t)))
}

/// The old CA (or service-account key) as the journal or, for a CA kubeadm made, the hosts
/// hold it: (certificate or public key PEM, key PEM when known).
fn old_ca(run: &Run, ca: CaKind, held: &Held, inventory: &Inventory) -> Result<StoredCert, Error> {
    if let Some(c) = held.by_name.get(ca.journal_name()) {
        return Ok(c.clone());
    }
    let external = run.req.hosts.iter().any(|h| h.has_role("etcd"));
    let host_file = match ca {
        CaKind::FrontProxy => Some(kubegrid_pki::layout::kubeadm::FRONT_PROXY_CA_CERT),
        CaKind::Etcd if !external => Some(kubegrid_pki::layout::kubeadm::ETCD_CA_CERT),
        _ => None,
    };
    let found = host_file.and_then(|file| {
        inventory
            .values()
            .flatten()
            .find(|f| f.file == file && f.info.is_ca)
    });
    match found {
        Some(f) => Ok(StoredCert {
            cert_pem: f.pem.clone(),
            key_pem: String::new(),
        }),
        None => Err(Error::Rotation {
            cluster: run.req.cluster.clone(),
            message: format!(
                "cannot rotate: kubegrid's journal holds no {} and no Node has one to start from\n  hint: {}",
                ca.journal_name(),
                if ca == CaKind::ServiceAccount {
                    "clusters installed before kubegrid kept the service-account key have kubeadm's; kubegrid cannot keep tokens signed with a key it never saw valid during the overlap"
                } else {
                    "run `kubegrid apply` first so the journal holds the cluster's CAs"
                }
            ),
        }),
    }
}

/// A new CA like `old` (same subject CN), or a new service-account key.
fn generate(ca: CaKind, old: &StoredCert, validity: Duration) -> Result<StoredCert, Error> {
    let name = ca.journal_name();
    if ca == CaKind::ServiceAccount {
        let (key_pem, pub_pem) = kubegrid_pki::generate_service_account_key()
            .map_err(|e| crate::kubernetes::pki::pki_error(name, e))?;
        return Ok(StoredCert {
            cert_pem: pub_pem,
            key_pem,
        });
    }
    let cn = read_expiry(&old.cert_pem)
        .map(|i| i.common_name)
        .map_err(|e| crate::kubernetes::pki::pki_error(name, e))?;
    let ca = Ca::generate(&cn, validity).map_err(|e| crate::kubernetes::pki::pki_error(name, e))?;
    Ok(StoredCert {
        cert_pem: ca.cert_pem().to_string(),
        key_pem: ca.key_pem().to_string(),
    })
}

/// What one phase of a rotation works from.
struct Step<'a> {
    inventory: &'a Inventory,
    held: &'a Held,
    rot: &'a Rotation,
    old: &'a StoredCert,
    new: &'a StoredCert,
    leaf_validity: Duration,
}

/// Host `i`'s share of the phase: its trust files, and in `reissue` its leaves and CA key.
fn node_work(run: &Run, i: usize, step: &Step<'_>) -> Result<NodeWork, Error> {
    let Step {
        inventory,
        held,
        rot,
        old,
        new,
        leaf_validity,
    } = *step;
    let host = &run.req.hosts[i];
    let control_plane = host.has_role("control-plane");
    let external = run.req.hosts.iter().any(|h| h.has_role("etcd"));
    let mut work = NodeWork {
        index: i,
        ..NodeWork::default()
    };
    let phase = rot.phase;
    if rot.ca == CaKind::ServiceAccount {
        if !control_plane {
            return Ok(work);
        }
        let content = match phase {
            Phase::TrustBoth => Some(kubegrid_pki::trust_bundle(
                &old.cert_pem,
                Some(&new.cert_pem),
            )),
            Phase::DropOld => Some(kubegrid_pki::trust_bundle(&new.cert_pem, None)),
            _ => None,
        };
        if let Some(content) = content {
            work.tasks.push(public_file(SA_PUB, &content));
        }
        if phase.replaces_key() {
            work.tasks.push(key_task(SA_KEY, &new.key_pem));
        }
        work.readers.insert(catalog::Reader::ControlPlane);
        return Ok(work);
    }
    let Some(content) = trust(phase, &old.cert_pem, &new.cert_pem) else {
        return Ok(work);
    };
    let found = inventory.get(&i).map(Vec::as_slice).unwrap_or_default();
    let mut trust_files: Vec<(&str, bool)> = Vec::new();
    for f in found {
        let is_trust = trusts(rot.ca, &f.file, f.field.as_deref(), f.kubeconfig)
            && (f.kubeconfig || f.info.is_ca);
        if is_trust && !trust_files.iter().any(|(p, _)| *p == f.file) {
            trust_files.push((&f.file, f.kubeconfig));
        }
    }
    for (file, kubeconfig) in trust_files {
        work.tasks.push(Task {
            name: format!("{} trust {} ({file})", rot.ca, phase.as_str()),
            action: Action::Certificates(CertificatesArgs {
                path: file.into(),
                certificate: (!kubeconfig).then(|| content.clone()),
                ca: kubeconfig.then(|| content.clone()),
            }),
            always: false,
        });
        work.readers.extend(readers(file, control_plane));
    }
    if phase.reissues() {
        let new_ca = Ca::from_pem(&new.cert_pem, &new.key_pem)
            .map_err(|e| crate::kubernetes::pki::pki_error(rot.ca.journal_name(), e))?;
        for f in found.iter().filter(|f| !f.info.is_ca) {
            if !issued_by(&f.pem, &old.cert_pem).unwrap_or(false) {
                continue;
            }
            let fixed = f
                .field
                .is_none()
                .then(|| catalog::journal_name(&host.target.host, &f.file, external))
                .flatten();
            let pem = match fixed {
                // The journal's leaf was re-signed once for every Node (see `move_journal`).
                Some(name) => match held.by_name.get(&name) {
                    Some(c) => c.cert_pem.clone(),
                    None => continue,
                },
                None => new_ca
                    .resign(&f.pem, leaf_validity)
                    .map_err(|e| crate::kubernetes::pki::pki_error(&f.name(), e))?,
            };
            work.tasks.push(Task {
                name: format!("{} reissue {} ({})", rot.ca, f.name(), f.file),
                action: Action::Certificates(CertificatesArgs {
                    path: f.file.clone().into(),
                    certificate: Some(pem),
                    ca: None,
                }),
                always: false,
            });
            work.readers.extend(readers(&f.file, control_plane));
        }
        if control_plane && let Some(key_file) = catalog::ca_key_file(rot.ca, external) {
            work.tasks.push(key_task(key_file, &new.key_pem));
            work.readers.insert(catalog::Reader::ControlPlane);
        }
    }
    Ok(work)
}

fn public_file(path: &str, content: &str) -> Task {
    Task {
        name: format!("public key {path}"),
        action: Action::File(FileArgs {
            path: path.into(),
            content: content.to_string(),
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
            backup: false,
        }),
        always: false,
    }
}

/// Re-signs the journal's own leaves that `old` signed with `new` (once: a resumed run finds
/// them signed by `new` already).
async fn move_journal(
    run: &Run,
    held: &mut Held,
    old: &StoredCert,
    new: &StoredCert,
    ca: CaKind,
    validity: Duration,
) -> Result<(), Error> {
    let new_ca = Ca::from_pem(&new.cert_pem, &new.key_pem)
        .map_err(|e| crate::kubernetes::pki::pki_error(ca.journal_name(), e))?;
    let names: Vec<String> = held
        .by_name
        .iter()
        .filter(|(_, c)| {
            !c.key_pem.is_empty()
                && read_expiry(&c.cert_pem).is_ok_and(|i| !i.is_ca)
                && issued_by(&c.cert_pem, &old.cert_pem).unwrap_or(false)
        })
        .map(|(n, _)| n.clone())
        .collect();
    for name in names {
        let c = held.by_name[&name].clone();
        let cert_pem = new_ca
            .resign(&c.cert_pem, validity)
            .map_err(|e| crate::kubernetes::pki::pki_error(&name, e))?;
        let moved = StoredCert {
            cert_pem,
            key_pem: c.key_pem,
        };
        run.journal
            .put_cert(&run.req.cluster, &name, &moved)
            .await?;
        held.by_name.insert(name, moved);
    }
    Ok(())
}

/// What a rotation works with.
pub struct Inputs<'a> {
    /// The certificates on the hosts when the run began.
    pub inventory: &'a Inventory,
    /// The journal's, updated as the rotation goes.
    pub held: &'a mut Held,
    /// The CA.
    pub ca: CaKind,
    /// How a control-plane Node's readiness is asked (its CA and admin certificate follow the
    /// rotation).
    pub ready: &'a mut ReadyCheck,
}

/// Runs (or resumes) the rotation of `ca`. Returns whether it finished.
pub async fn run_rotation(
    run: &mut Run,
    report: &mut CertsReport,
    inputs: Inputs<'_>,
) -> Result<bool, Error> {
    let Inputs {
        inventory,
        held,
        ca,
        ready,
    } = inputs;
    let cluster = run.req.cluster.clone();
    let (mut rot, resumed) = match in_progress(run).await? {
        Some(r) if r.ca != ca => {
            return Err(Error::Rotation {
                cluster,
                message: format!(
                    "cannot rotate: a rotation of the {} CA is in progress (phase {}); it must finish before another begins\n  hint: run `kubegrid certs rotate-ca --ca {}` to resume it",
                    r.ca,
                    r.phase.as_str(),
                    r.ca
                ),
            });
        }
        Some(r) => (r, true),
        None => (Rotation::begin(ca), false),
    };
    let name = ca.journal_name();
    let next_name = format!("{name}-next");
    let old = old_ca(run, ca, held, inventory)?;
    let (leaf_validity, ca_validity) = (super::validity(run), super::ca_validity(run));
    let new = match held.by_name.get(&next_name) {
        Some(n) => n.clone(),
        None => {
            let n = generate(ca, &old, ca_validity)?;
            run.journal.put_cert(&cluster, &next_name, &n).await?;
            held.by_name.insert(next_name.clone(), n.clone());
            n
        }
    };
    if rot.phase == Phase::NewCa {
        rot.finish_phase();
        save(run, &rot).await?;
    }
    let sync = |report: &mut CertsReport, rot: &Rotation| {
        report.rotation = Some(RotationReport {
            ca,
            phase: rot.phase.as_str().into(),
            completed: rot
                .completed
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            resumed,
        });
    };
    while rot.phase.rolls() {
        sync(report, &rot);
        if rot.phase.reissues() && ca != CaKind::ServiceAccount {
            move_journal(run, held, &old, &new, ca, leaf_validity).await?;
            if let Some(admin) = held.by_name.get("admin") {
                ready.admin = kubegrid_pki::IssuedCert {
                    cert_pem: admin.cert_pem.clone(),
                    key_pem: admin.key_pem.clone(),
                };
            }
        }
        if ca == CaKind::Kubernetes {
            ready.ca_pem = kubegrid_pki::trust_bundle(&old.cert_pem, Some(&new.cert_pem));
        }
        for i in roll::order(run) {
            let node = run.req.hosts[i].target.host.clone();
            if rot.done.contains(&node) {
                continue;
            }
            let step = Step {
                inventory,
                held,
                rot: &rot,
                old: &old,
                new: &new,
                leaf_validity,
            };
            let work = node_work(run, i, &step)?;
            if !roll::node(run, report, work, ready).await? {
                save(run, &rot).await?;
                return Ok(false);
            }
            rot.node_done(&node);
            save(run, &rot).await?;
        }
        if ca == CaKind::Kubernetes
            && let Some(content) = trust(rot.phase, &old.cert_pem, &new.cert_pem)
        {
            // A client for this phase: the admin certificate and the CAs the API server's
            // certificate may be signed by change as the rotation goes.
            let published = match super::drive::api_client(run, held).await {
                Ok(client) => publish_ca(&client, &content).await,
                Err(e) => Err(e),
            };
            if let Err(message) = published {
                save(run, &rot).await?;
                return Err(Error::Rotation {
                    cluster: cluster.clone(),
                    message: format!(
                        "the rotation stopped in phase {}: {message}\n  hint: check that the cluster's API answers, then run the rotation again; it resumes here",
                        rot.phase.as_str()
                    ),
                });
            }
        }
        rot.finish_phase();
        save(run, &rot).await?;
    }
    // Done: the new CA is the CA; the old one is kept for the record (unless a run killed
    // after the swap already moved it).
    if old.cert_pem != new.cert_pem {
        run.journal
            .put_cert(&cluster, &format!("{name}-previous"), &old)
            .await?;
    }
    run.journal.put_cert(&cluster, name, &new).await?;
    run.journal.delete_cert(&cluster, &next_name).await?;
    held.by_name.insert(name.to_string(), new);
    held.by_name.remove(&next_name);
    run.journal.delete_state(&cluster, STATE_KEY).await?;
    sync(report, &rot);
    Ok(true)
}

async fn save(run: &Run, rot: &Rotation) -> Result<(), Error> {
    Ok(run
        .journal
        .put_state(&run.req.cluster, STATE_KEY, &rot.to_json())
        .await?)
}
