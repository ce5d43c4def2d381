//! `kubegrid reset`: the reset playbook on every host of a spec, after the user confirms by
//! typing the cluster's name (or `--yes`, for scripts). It runs as the operator runs a Cluster
//! deleted with `deletionPolicy: Reset`: no preflight checks, no Kubernetes bootstrap, no
//! checks through the API, and journaled as a `reset` operation.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use kubegrid_engine::{
    operation::{self, Mode, Options, Outcome, Report, Request},
    preflight,
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

/// Arguments of `reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The spec: Cluster and Node resources, multi-document YAML. Every Node in it is reset.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Reset without asking (for scripts). Without it, kubegrid asks on the terminal for the
    /// cluster's name, and refuses when there is no terminal to ask on.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The bundle (reset pushes its agent) and how its signature is checked.
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Seconds allowed for each host's TCP connect plus SSH handshake.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Journal location.
    #[command(flatten)]
    pub journal: JournalArg,
}

/// What a reset removes, for the confirmation prompt.
const WHAT_GOES: &str = "kubeadm reset, the kubelet, kubegrid's kubeadm files and CNI config, \
the bundle registry, and kubegrid's external etcd with its data (/var/lib/etcd, which holds \
the cluster's Secrets) and certificates (/etc/etcd/pki)";

/// Runs `reset`; returns the exit code.
pub async fn run(args: &ResetArgs, output: Output) -> anyhow::Result<u8> {
    // Everything up to `execute` reads only local files and the terminal: bad input, or no
    // confirmation, stops here before any host is contacted.
    let manifest = kubegrid_api::load(&args.file)?;
    let cluster = manifest.name().to_string();
    let hosts = kubegrid_engine::spec::hosts(&manifest);
    let names: Vec<String> = hosts.iter().map(|h| h.target.host.clone()).collect();
    if !args.yes && !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{}: kubegrid reset wipes cluster {cluster} on {} host(s), and there is no terminal to confirm on\n  hint: run it on a terminal and type the cluster's name when asked, or pass --yes in scripts",
            args.file.display(),
            names.len()
        ))
        .into());
    }
    let (bundle, agents) = super::spec_bundle::open(
        &args.file,
        &manifest,
        &args.bundle,
        "the bundle the cluster was installed from (reset needs its agent)",
    )?;
    kubegrid_engine::ssh::check_key_files(hosts.iter().map(|h| &h.target))?;
    let mut context = kubegrid_engine::spec::cluster_context(&manifest)?;
    // As the operator's reset: the reset playbook bootstraps nothing.
    context.kubernetes = None;
    let text =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    if !args.yes {
        confirm(&cluster, &names)?;
    }
    let journal = args.journal.open().await?;
    let observer = progress::observer(&names, output == Output::Json);
    let options = Options {
        parallel: usize::from(args.parallel),
        // A reset takes down what is there; checks meant for building it up get in the way.
        skip_checks: preflight::names().into_iter().map(String::from).collect(),
        ssh: SshOptions {
            connect_timeout: Duration::from_secs(args.connect_timeout),
            ..SshOptions::default()
        },
        cluster_checks: false,
        ..Options::default()
    };
    let req = Request {
        mode: Mode::Apply,
        cluster,
        spec_digest: hex::encode(Sha256::digest(&text)),
        context,
        hosts,
        bundle: Arc::new(bundle),
        playbook: Arc::new(Playbook::builtin("reset")?),
        agents: Arc::new(agents),
        options,
    };
    let report = operation::execute(req, journal, observer.clone()).await?;
    drop(observer);
    let doc = ResetReport {
        kind: "reset",
        report: &report,
    };
    super::emit(output, &doc, || render(&report))?;
    Ok(exit_code(report.outcome))
}

/// The JSON form: the operation's report, marked as a reset.
#[derive(serde::Serialize)]
struct ResetReport<'a> {
    /// Always "reset".
    kind: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

/// Asks on the terminal for the cluster's name; anything else refuses (exit 2).
fn confirm(cluster: &str, names: &[String]) -> anyhow::Result<()> {
    let mut err = std::io::stderr();
    write!(
        err,
        "kubegrid reset removes from {} host(s) ({}): {WHAT_GOES}.\nThis cannot be undone. Type the cluster's name ({cluster}) to go on: ",
        names.len(),
        names.join(", ")
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim();
    if answer != cluster {
        let seen: String = answer.chars().take(40).collect();
        return Err(UsageError(format!(
            "reset not confirmed: typed {seen:?}, the cluster is {cluster:?}; nothing was changed"
        ))
        .into());
    }
    Ok(())
}

/// The text form of a reset's report.
fn render(r: &Report) -> String {
    let mut s = String::new();
    if r.outcome == Outcome::Unreachable {
        s.push_str("not every host could be reached; nothing was changed:\n");
    }
    s.push_str(&failed_hosts(r));
    let failed = r.hosts.iter().filter(|h| !h.ok).count();
    let unchanged: usize = r.hosts.iter().map(|h| h.unchanged).sum();
    s.push_str(&format!(
        "reset {}: {} host(s), {} task(s) changed, {unchanged} unchanged, {failed} host(s) failed, in {:.1}s (operation {})\n",
        r.cluster,
        r.hosts.len(),
        r.changed(),
        r.duration_ms as f64 / 1000.0,
        r.operation,
    ));
    s
}
