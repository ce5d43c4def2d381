//! Preparing and running one operation for a Cluster: validation, Secrets, resume, live
//! progress.

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::AtomicBool},
};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::{Api, Resource, ResourceExt};
use kubegrid_api::{Cluster, Manifest, Node, ValidateFor};
use kubegrid_engine::progress::Observer;
use kubegrid_journal::OperationStatus;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::{
    context::Context,
    error::{Error, Result},
    inputs,
    runner::{Job, JobKind, RunResult, UpgradeJob},
    secrets, tracker,
};

/// The journal's and metrics' name for a Cluster: `namespace/name`, so equally named Clusters
/// in two namespaces never share host keys or certificates.
pub fn key(cluster: &Cluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_else(|| "default".into()),
        cluster.name_any()
    )
}

/// sha256 of what an operation carries out: the Cluster's spec and each Node's name and spec
/// in name order, the built-in playbook and this build's version, and the bundle's manifest.
/// Status and metadata do not count, so writing status never looks like new intent; a new
/// operator build or a new bundle at the same path does, so a resumed operation never skips
/// a phase that a different playbook or bundle finished.
pub fn spec_digest(ctx: &Context, kind: JobKind, cluster: &Cluster, nodes: &[Node]) -> String {
    let mut nodes: Vec<(&str, &kubegrid_api::NodeSpec)> = nodes
        .iter()
        .map(|n| (n.metadata.name.as_deref().unwrap_or_default(), &n.spec))
        .collect();
    nodes.sort_by_key(|(name, _)| *name);
    let playbook = playbook_digest(kind);
    let bundle = bundle_dir(ctx, cluster)
        .and_then(|dir| std::fs::read(dir.join("manifest.yaml")).ok())
        .map(|bytes| hex::encode(Sha256::digest(bytes)))
        .unwrap_or_default();
    let doc = serde_json::json!({
        "kind": kind.as_str(),
        "cluster": cluster.spec,
        "nodes": nodes,
        "operator": env!("CARGO_PKG_VERSION"),
        "playbook": playbook,
        "bundle": bundle,
    });
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

/// sha256 of the built-in playbook of `kind`, parsed and hashed once per process: it is
/// compiled in, and every reconcile of every Cluster needs it.
fn playbook_digest(kind: JobKind) -> &'static str {
    static INSTALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static RESET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static UPGRADE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static CERTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let cell = match kind {
        JobKind::Apply => &INSTALL,
        JobKind::Reset => &RESET,
        JobKind::Upgrade => &UPGRADE,
        JobKind::Certs(_) => &CERTS,
    };
    cell.get_or_init(|| {
        let text = kubegrid_plan::Playbook::builtin(kind.playbook())
            .map(|p| format!("{p:?}"))
            .unwrap_or_default();
        hex::encode(Sha256::digest(text.as_bytes()))
    })
}

/// Where the Cluster's bundle is in the operator's filesystem, canonical; `None` when the
/// spec names none or names one outside the bundle roots ([`manifest`] refuses those), so
/// nothing outside the roots is ever read, not even for the intent digest.
fn bundle_dir(ctx: &Context, cluster: &Cluster) -> Option<std::path::PathBuf> {
    Manifest::from_resources(cluster.clone(), Vec::new(), &ctx.settings.spec_dir)
        .ok()?
        .confined_bundle_dir(&ctx.settings.bundle_roots)
        .ok()
        .flatten()
}

/// Refuses a bundle the operator cannot open: missing, or a packed file (the operator takes
/// unpacked bundle directories; its root filesystem is read-only).
fn check_bundle_dir(ctx: &Context, cluster: &Cluster) -> Result<()> {
    let Some(dir) = bundle_dir(ctx, cluster) else {
        return Err(Error::Bundle {
            cluster: key(cluster),
            reason: "spec.bundle.source is not set".into(),
        });
    };
    let reason = if dir.is_file() {
        format!(
            "{} is a packed bundle; the operator takes unpacked bundle directories\n  hint: unpack it onto the bundles volume: mkdir DIR && tar --zstd -xf {} -C DIR, and name DIR in spec.bundle.source",
            dir.display(),
            dir.display()
        )
    } else if !dir.join("manifest.yaml").is_file() {
        format!(
            "{} is not a bundle directory (no manifest.yaml) in the operator's pod\n  hint: put the bundle on the volume mounted at {} (chart value bundles.existingClaim or bundles.hostPath)",
            dir.display(),
            ctx.settings.spec_dir.display()
        )
    } else {
        return Ok(());
    };
    Err(Error::Bundle {
        cluster: key(cluster),
        reason,
    })
}

/// The bundle at `dir` (the confined one, from [`bundle_dir`]) against the spec (versions,
/// artifacts for each Node's arch and roles), as the CLI checks it: refused with
/// `BundleInvalid` before any host is contacted.
fn check_bundle_fits(
    cluster: &Cluster,
    manifest: &Manifest,
    dir: Option<&std::path::Path>,
) -> Result<()> {
    let Some(dir) = dir else {
        return Ok(());
    };
    kubegrid_engine::bundle_check::check_dir(manifest, dir).map_err(|e| Error::Bundle {
        cluster: key(cluster),
        reason: e.to_string(),
    })
}

/// The manifest of `cluster` and its `nodes` for a job of `kind`. An install's is validated
/// (the error lists every problem); a reset's is not: topology rules (odd etcd counts, a
/// control plane) are about building a cluster and must not keep a deleted one's hosts from
/// a reset. Both are confined first: no field may name a file or variable of the operator's
/// pod, and the bundle must lie inside the bundle roots. Nothing is read before that.
pub fn manifest(
    ctx: &Context,
    kind: JobKind,
    cluster: &Cluster,
    nodes: &[Node],
) -> Result<Manifest> {
    let invalid = |problems: String| Error::InvalidSpec {
        cluster: key(cluster),
        problems,
    };
    let manifest =
        Manifest::from_resources(cluster.clone(), nodes.to_vec(), &ctx.settings.spec_dir)
            .map_err(|e| invalid(e.to_string()))?;
    let checked = match kind {
        // An installed cluster's etcd member count is checked by the engine's membership
        // rules against its running members, not by the odd-count rule.
        JobKind::Apply | JobKind::Upgrade | JobKind::Certs(_) if installed(cluster) => {
            manifest.validate_installed(ValidateFor::Operator)
        }
        JobKind::Apply | JobKind::Upgrade | JobKind::Certs(_) => {
            manifest.validate(ValidateFor::Operator)
        }
        JobKind::Reset => manifest.check_confined(),
    };
    let mut problems = match checked {
        Ok(()) => Vec::new(),
        Err(kubegrid_api::Error::Invalid { problems }) => problems,
        Err(other) => return Err(invalid(other.to_string())),
    };
    // A `..` is already reported; the roots are checked for every other source.
    if !problems.iter().any(|p| p.field == "spec.bundle.source") {
        match manifest.confined_bundle_dir(&ctx.settings.bundle_roots) {
            Ok(_) => {}
            Err(kubegrid_api::Error::Invalid { problems: more }) => problems.extend(more),
            Err(other) => return Err(invalid(other.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(invalid(
            kubegrid_api::Error::Invalid { problems }.to_string(),
        ))
    }
}

/// Whether the Cluster's status records an installed Kubernetes version.
fn installed(cluster: &Cluster) -> bool {
    cluster
        .status
        .as_ref()
        .is_some_and(|s| s.kubernetes_version.is_some())
}

/// Everything a job needs from the API and the journal, read before any host is touched: a
/// missing Secret stops here. `manifest` and `spec_digest` come from [`manifest`] and
/// [`spec_digest`], which the caller has already needed; `leaving` are deleted Nodes the
/// operation removes (their passwords are read too, where they can be).
pub async fn prepare(
    ctx: &Context,
    kind: JobKind,
    cluster: &Cluster,
    manifest: Manifest,
    spec_digest: String,
    leaving: &[Node],
) -> Result<Job> {
    check_bundle_dir(ctx, cluster)?;
    let bundle = bundle_dir(ctx, cluster);
    if kind != JobKind::Reset {
        check_bundle_fits(cluster, &manifest, bundle.as_deref())?;
    }
    let cluster_key = key(cluster);
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let dir = ctx.settings.work_dir.join(&ns).join(cluster.name_any());
    let ssh_key_file = match &cluster.spec.ssh.private_key_secret_ref {
        Some(r) => {
            let bytes = secrets::read(
                &secrets_api,
                &cluster_key,
                &r.name,
                Some(r.key()),
                "SSH private key (spec.ssh.privateKeySecretRef)",
            )
            .await?;
            // Its passphrase could only come from the operator's own environment, shared by
            // every tenant: an encrypted key is refused instead of opened with it.
            if kubegrid_engine::ssh::key_is_encrypted(&String::from_utf8_lossy(&bytes)) {
                return Err(Error::InvalidSpec {
                    cluster: cluster_key,
                    problems: format!(
                        "spec.ssh.privateKeySecretRef: Secret {} key `{}` holds an encrypted \
                         private key, and the operator opens no encrypted keys (a passphrase \
                         would have to come from its own environment, which every Cluster \
                         shares)\n  hint: store the key without a passphrase (ssh-keygen -p \
                         -N '' -f KEY on a copy) and recreate the Secret: the Secret is what \
                         protects it",
                        r.name,
                        r.key()
                    ),
                });
            }
            Some(secrets::write_private(&dir, "ssh-key", &bytes)?)
        }
        None => None,
    };
    let bundle_public_key = match cluster
        .spec
        .bundle
        .as_ref()
        .and_then(|b| b.public_key_ref.as_ref())
    {
        Some(r) => {
            let bytes = secrets::read(
                &secrets_api,
                &cluster_key,
                &r.name,
                None,
                "bundle public key (spec.bundle.publicKeyRef)",
            )
            .await?;
            Some(secrets::write_private(&dir, "bundle.pub", &bytes)?)
        }
        None => None,
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let cni_manifest = inputs::cni_manifest(&config_maps, &cluster_key, &manifest).await?;
    let passwords = inputs::passwords(&secrets_api, &cluster_key, &manifest, leaving).await?;
    // This replica leads and reconciles this Cluster alone, so an operation still marked
    // running belongs to a replica or process that stopped: it was interrupted.
    ctx.journal
        .interrupt_running(
            &cluster_key,
            "the operator replica running it stopped (leader change or restart)",
        )
        .await?;
    // An upgrade plans again from the live versions, which is how it resumes; a
    // certificates operation reads the hosts again, and a rotation resumes from the state
    // the engine keeps in the journal.
    let resume_from = ctx
        .journal
        .latest_operation(&cluster_key)
        .await?
        .filter(|op| op.status == OperationStatus::Interrupted && op.spec_digest == spec_digest)
        .filter(|_| matches!(kind, JobKind::Apply | JobKind::Reset))
        .map(|op| op.id.0);
    let upgrade = (kind == JobKind::Upgrade).then(|| {
        let spec = cluster.spec.upgrade.clone().unwrap_or_default();
        UpgradeJob {
            max_unavailable: spec.max_unavailable() as usize,
            paused: Arc::new(AtomicBool::new(spec.paused)),
            change: String::new(),
        }
    });
    Ok(Job {
        kind,
        cluster: cluster_key,
        manifest,
        spec_digest,
        bundle_dir: bundle,
        ssh_key_file,
        bundle_public_key,
        cni_manifest,
        passwords,
        resume_from,
        upgrade,
    })
}

/// An object reference for events about `obj`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}

/// Pins in the journal the host keys that Node statuses carry and the journal lacks (a
/// journal rebuilt from an empty volume still refuses a changed host).
pub(crate) async fn seed_host_keys(ctx: &Context, job: &Job, nodes: &[Node]) -> Result<()> {
    for node in nodes {
        let name = node.name_any();
        let Some((algorithm, fingerprint)) = node
            .status
            .as_ref()
            .and_then(|s| s.host_key.as_deref())
            .and_then(|k| k.split_once(' '))
        else {
            continue;
        };
        if ctx.journal.pinned_key(&job.cluster, &name).await?.is_none() {
            ctx.journal
                .pin_key(
                    &job.cluster,
                    &name,
                    &node.spec.address,
                    algorithm,
                    fingerprint,
                )
                .await?;
        }
    }
    Ok(())
}

/// Runs `job`, reflecting progress into the Nodes' status and Events as it goes.
pub async fn run(
    ctx: &Context,
    cluster: &Cluster,
    nodes: &[Node],
    job: Job,
) -> Result<(RunResult, BTreeMap<String, tracker::HostState>)> {
    seed_host_keys(ctx, &job, nodes).await?;
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let sink = tracker::Sink {
        nodes: Api::namespaced(ctx.client.clone(), &ns),
        recorder: ctx.recorder.clone(),
        cluster_ref: reference(cluster),
        node_refs: nodes.iter().map(|n| (n.name_any(), reference(n))).collect(),
        roles: nodes
            .iter()
            .map(|n| (n.name_any(), n.spec.roles_column()))
            .collect(),
        metrics: Arc::clone(&ctx.metrics),
        cluster: job.cluster.clone(),
        kind: job.kind.as_str(),
        upgrading: job.upgrade.as_ref().map(|u| crate::upgrade::Rolling {
            clusters: Api::namespaced(ctx.client.clone(), &ns),
            name: cluster.name_any(),
            generation: cluster.metadata.generation,
            change: u.change.clone(),
            journal: ctx.journal.clone(),
            key: job.cluster.clone(),
        }),
    };
    let (tracker, writer) = tracker::start(sink);
    let span = tracing::info_span!(
        "operation",
        cluster = %job.cluster,
        kind = job.kind.as_str(),
        resume_from = job.resume_from,
    );
    span.in_scope(|| tracing::info!(hosts = nodes.len(), "operation starting"));
    let observer: Arc<dyn Observer> = tracker;
    let keys: Vec<std::path::PathBuf> = [&job.ssh_key_file, &job.bundle_public_key]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let result = ctx
        .runner
        .run(job, ctx.journal.clone(), observer)
        .instrument(span)
        .await;
    // Keys read from Secrets exist only while an operation runs.
    for key in keys {
        let _ = std::fs::remove_file(key);
    }
    let hosts = writer.finish().await;
    let result = result?;
    tracing::info!(
        cluster = %key(cluster),
        operation = result.operation,
        outcome = ?result.outcome,
        "operation finished"
    );
    Ok((result, hosts))
}
