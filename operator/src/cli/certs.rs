//! `kubegrid certs check|renew|rotate-ca` (docs/certificates.md): every certificate on every
//! Node against the journal; leaves re-signed under their CA one Node at a time; a CA replaced
//! with every reader trusting old and new while the leaves move.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use kubegrid_engine::{
    certs::{CaKind, CertsAction, CertsOptions, CertsReport},
    operation::{self, Mode, Options, Outcome, Report, Request},
    ssh::SshOptions,
};
use kubegrid_plan::Playbook;
use sha2::{Digest, Sha256};

use super::{
    Output, UsageError,
    apply::{BundleArgs, exit_code, failed_hosts},
    journal::JournalArg,
    progress,
};
use crate::exit;

/// `kubegrid certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// The certs subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List every certificate on every Node with its expiry and how it compares with what
    /// kubegrid issued; changes nothing (exit 1 when one expires within --warn-days or is
    /// flagged).
    Check(CheckArgs),
    /// Re-sign leaf certificates under their CA (same names, same keys) and restart what reads
    /// them, one Node at a time.
    Renew(RenewArgs),
    /// Replace a CA: readers trust old and new, leaves move to the new CA, the old is dropped;
    /// each phase journaled, a re-run resumes.
    RotateCa(RotateArgs),
}

/// What every certs subcommand takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The cluster's spec.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// The bundle the agent comes from, and how its signature is checked.
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Seconds allowed for each host's TCP connect plus SSH handshake.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Where to write the admin kubeconfig when a renewal or rotation changes it (mode 0600);
    /// default ~/.kube/<cluster>.conf, where `apply` writes it. The journal keeps it either way.
    #[arg(long = "kubeconfig-out", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Journal location.
    #[command(flatten)]
    pub journal: JournalArg,
}

/// `certs check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    common: Common,
    /// Certificates expiring within this many days make the exit code 1.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    warn_days: u32,
}

/// `certs renew`.
#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    common: Common,
    /// Renew only these (repeatable): catalog names such as etcd-server, apiserver,
    /// admin.conf, kubelet-client, kubegrid-admin. Default: every leaf kubegrid holds the CA of.
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
}

/// `certs rotate-ca`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    common: Common,
    /// The CA: etcd, kubernetes, front-proxy or service-account.
    #[arg(long, value_name = "CA")]
    ca: String,
}

/// The names `--only` accepts.
const NAMES: &[&str] = &[
    "apiserver",
    "apiserver-kubelet-client",
    "apiserver-etcd-client",
    "front-proxy-client",
    "etcd-server",
    "etcd-peer",
    "etcd-healthcheck-client",
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
    "kubelet-client",
    "registry",
    "kubegrid-admin",
];

/// Runs a certs subcommand; returns the exit code.
pub async fn run(args: &CertsArgs, output: Output) -> anyhow::Result<u8> {
    let (common, action) = match &args.command {
        CertsCommand::Check(a) => (
            &a.common,
            CertsAction::Check {
                warn_days: a.warn_days,
            },
        ),
        CertsCommand::Renew(a) => {
            if let Some(bad) = a.only.iter().find(|n| !NAMES.contains(&n.as_str())) {
                return Err(UsageError(format!(
                    "--only {bad}: no such certificate; known: {}",
                    NAMES.join(", ")
                ))
                .into());
            }
            (
                &a.common,
                CertsAction::Renew {
                    only: a.only.clone(),
                },
            )
        }
        CertsCommand::RotateCa(a) => {
            let ca: CaKind =
                a.ca.parse()
                    .map_err(|e: String| UsageError(format!("--ca: {e}")))?;
            (&a.common, CertsAction::RotateCa { ca })
        }
    };
    let check = matches!(action, CertsAction::Check { .. });
    let manifest = kubegrid_api::load(&common.file)?;
    let (bundle, agents) = super::spec_bundle::open(
        &common.file,
        &manifest,
        &common.bundle,
        "the bundle the cluster was installed from: kubegrid pushes its agent from it",
    )?;
    let context = kubegrid_engine::spec::cluster_context_for_bundle(&manifest, &bundle)?;
    let hosts = kubegrid_engine::spec::hosts(&manifest);
    kubegrid_engine::ssh::check_key_files(hosts.iter().map(|h| &h.target))?;
    let text = std::fs::read(&common.file)
        .with_context(|| format!("reading {}", common.file.display()))?;
    // As `apply`: the kubeconfig a renewal or rotation rewrites goes where apply put it, and
    // its directory is checked before any host is touched.
    let kubeconfig_out = match (&common.kubeconfig, check) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .ok_or_else(|| UsageError("HOME is not set; pass --kubeconfig-out FILE".into()))?;
            Some(home.join(".kube").join(format!("{}.conf", manifest.name())))
        }
    };
    if let Some(path) = &kubeconfig_out {
        super::apply::check_writable(path)?;
    }
    let journal = common.journal.open().await?;
    let names: Vec<String> = hosts.iter().map(|h| h.target.host.clone()).collect();
    let observer = progress::observer(&names, output == Output::Json);
    let options = Options {
        ssh: SshOptions {
            connect_timeout: Duration::from_secs(common.connect_timeout),
            ..SshOptions::default()
        },
        cluster_checks: false,
        kubeconfig_out,
        certs: CertsOptions { action },
        ..Options::default()
    };
    let req = Request {
        mode: if check { Mode::Plan } else { Mode::Apply },
        cluster: manifest.name().to_string(),
        spec_digest: hex::encode(Sha256::digest(&text)),
        context,
        hosts,
        bundle: Arc::new(bundle),
        playbook: Arc::new(Playbook::builtin(kubegrid_engine::certs::PLAYBOOK)?),
        agents: Arc::new(agents),
        options,
    };
    let report = match operation::execute(req, journal, observer.clone()).await {
        Ok(r) => r,
        Err(e @ kubegrid_engine::Error::Rotation { .. }) => {
            return Err(UsageError(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    drop(observer);
    let doc = CertsDoc {
        kind: "certs",
        report: &report,
    };
    super::emit(output, &doc, || super::certs_text::render(&report))?;
    let certs = report.certs.as_ref();
    Ok(match report.outcome {
        Outcome::Succeeded if check && certs.is_some_and(attention) => exit::FAILED,
        other => exit_code(other),
    })
}

/// Whether `certs check` asks for attention: something expires within --warn-days or is
/// flagged.
fn attention(r: &CertsReport) -> bool {
    !r.expiring.is_empty() || !r.flagged.is_empty()
}

/// The JSON form: the operation's report, marked as certs.
#[derive(serde::Serialize)]
struct CertsDoc<'a> {
    /// Always "certs".
    kind: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

/// One line per failed host, for the text form.
pub(super) fn failed(r: &Report) -> String {
    failed_hosts(r)
}
