//! `kubegrid upgrade plan|apply`: plan an upgrade from the live state of the hosts and the
//! cluster, and run it node by node (docs/upgrades.md). `plan` changes nothing: exit 0 when
//! the plan can run, 5 when something blocks it. `apply` plans the same way, refuses the same
//! blockers before any change, then rolls; re-running it resumes where a failed or paused
//! roll stopped.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use kubegrid_engine::{
    operation::{self, Mode, Options, Outcome, Report, Request},
    ssh::SshOptions,
    upgrade::{UpgradeOptions, UpgradeReport},
};
use kubegrid_plan::Playbook;
use sha2::{Digest, Sha256};

use super::{
    Output, UsageError,
    apply::{BundleArgs, exit_code, failed_hosts},
    journal::JournalArg,
    progress,
};

/// `kubegrid upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: UpgradeCommand,
}

/// The upgrade subcommands.
#[derive(Debug, Subcommand)]
pub enum UpgradeCommand {
    /// Print the upgrade's steps per Node and what blocks it; changes nothing (exit 0 when
    /// it can run, 5 when blocked).
    Plan(UpgradeRunArgs),
    /// Plan, then upgrade node by node: external etcd, the control plane, then the workers.
    Apply(UpgradeRunArgs),
}

/// Arguments of `upgrade plan` and `upgrade apply`.
#[derive(Debug, Args)]
pub struct UpgradeRunArgs {
    /// The spec with the target versions (`spec.kubernetesVersion`, `spec.etcd.version`,
    /// `spec.containerRuntime.containerd.version`).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// The bundle with every version the steps need, and how its signature is checked.
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Upgrade a Node even when draining it fails (a PodDisruptionBudget, the drain
    /// timeout): the pods still on it stay and restart with its kubelet. Without it a failed
    /// drain uncordons the Node and stops the upgrade.
    #[arg(long)]
    pub force: bool,
    /// Seconds a drain may take, retries on PodDisruptionBudgets included.
    #[arg(long, value_name = "SECS", default_value_t = 360, value_parser = clap::value_parser!(u64).range(1..))]
    pub drain_timeout: u64,
    /// Seconds a Node may take to be Ready again after its upgrade.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub ready_timeout: u64,
    /// Skip one preflight check, knowingly (repeatable); `kubegrid apply --skip-check help`
    /// lists them.
    #[arg(long = "skip-check", value_name = "NAME")]
    pub skip_checks: Vec<String>,
    /// Seconds allowed for each host's TCP connect plus SSH handshake.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// How bundle files reach hosts (as for `apply`).
    #[command(flatten)]
    pub distribution: super::apply::DistributionArgs,
    /// Journal location.
    #[command(flatten)]
    pub journal: JournalArg,
}

/// Runs `upgrade plan` or `upgrade apply`; returns the exit code.
pub async fn run(args: &UpgradeArgs, output: Output) -> anyhow::Result<u8> {
    let (args, mode) = match &args.command {
        UpgradeCommand::Plan(a) => (a, Mode::Plan),
        UpgradeCommand::Apply(a) => (a, Mode::Apply),
    };
    if let Some(bad) = args
        .skip_checks
        .iter()
        .find(|s| !kubegrid_engine::preflight::names().contains(&s.as_str()))
    {
        return Err(UsageError(format!(
            "--skip-check {bad}: no such preflight check; known: {}",
            kubegrid_engine::preflight::names().join(", ")
        ))
        .into());
    }
    // Up to `execute` only local files are read: a bad spec or bundle stops here.
    let manifest = kubegrid_api::load(&args.file)?;
    let (bundle, agents) = super::spec_bundle::open(
        &args.file,
        &manifest,
        &args.bundle,
        "a bundle that carries every version the upgrade goes through",
    )?;
    let context = kubegrid_engine::spec::cluster_context_for_bundle(&manifest, &bundle)?;
    let hosts = kubegrid_engine::spec::hosts(&manifest);
    kubegrid_engine::ssh::check_key_files(hosts.iter().map(|h| &h.target))?;
    let text =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let journal = args.journal.open().await?;
    let names: Vec<String> = hosts.iter().map(|h| h.target.host.clone()).collect();
    let observer = progress::observer(&names, output == Output::Json);
    let spec_upgrade = manifest.cluster().spec.upgrade.clone().unwrap_or_default();
    let upgrade = UpgradeOptions {
        max_unavailable: spec_upgrade.max_unavailable() as usize,
        force_drain: args.force,
        ready_timeout: Duration::from_secs(args.ready_timeout),
        ..UpgradeOptions::default()
    };
    upgrade.paused.store(spec_upgrade.paused, Ordering::SeqCst);
    // `spec.upgrade.paused` set in the file while the roll runs stops it between Nodes.
    let watcher = (mode == Mode::Apply).then(|| watch_paused(&args.file, &upgrade));
    let (distribution, p2p) = args.distribution.options()?;
    let mut options = Options {
        skip_checks: args.skip_checks.clone(),
        ssh: SshOptions {
            connect_timeout: Duration::from_secs(args.connect_timeout),
            ..SshOptions::default()
        },
        cluster_checks: false,
        distribution,
        p2p,
        upgrade,
        ..Options::default()
    };
    options.drain.timeout = Duration::from_secs(args.drain_timeout);
    options.drain.force = args.force;
    let req = Request {
        mode,
        cluster: manifest.name().to_string(),
        spec_digest: hex::encode(Sha256::digest(&text)),
        context,
        hosts,
        bundle: Arc::new(bundle),
        playbook: Arc::new(Playbook::builtin(kubegrid_engine::upgrade::PLAYBOOK)?),
        agents: Arc::new(agents),
        options,
    };
    let report = operation::execute(req, journal, observer.clone()).await;
    if let Some(w) = watcher {
        w.abort();
    }
    let report = report?;
    drop(observer);
    let doc = UpgradeDoc {
        kind: "upgrade",
        report: &report,
    };
    super::emit(output, &doc, || render(&report))?;
    Ok(exit_code(report.outcome))
}

/// Re-reads the spec file every two seconds and mirrors its `spec.upgrade.paused`; a file
/// that does not parse (an edit in progress) changes nothing.
fn watch_paused(file: &Path, upgrade: &UpgradeOptions) -> tokio::task::JoinHandle<()> {
    let file = file.to_path_buf();
    let paused = Arc::clone(&upgrade.paused);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Ok(m) = kubegrid_api::load(&file) {
                let now = m.cluster().spec.upgrade.as_ref().is_some_and(|u| u.paused);
                paused.store(now, Ordering::SeqCst);
            }
        }
    })
}

/// The JSON form: the operation's report, marked as an upgrade.
#[derive(serde::Serialize)]
struct UpgradeDoc<'a> {
    /// Always "upgrade".
    kind: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

/// The text form: the plan, then what ran and how it ended.
fn render(r: &Report) -> String {
    let mut s = String::new();
    if let Some(u) = &r.upgrade {
        s.push_str(&kubegrid_upgrade::render_text(&u.plan));
        for b in &u.blockers {
            s.push_str(&format!("  BLOCKED {}: {}\n", b.rule, b.message));
        }
        render_steps(&mut s, u);
    }
    match r.outcome {
        Outcome::PreflightFailed if r.preflight.is_empty() => {
            s.push_str("the upgrade is blocked; nothing was changed\n");
        }
        Outcome::PreflightFailed => {
            s.push_str("preflight failed; nothing was changed:\n");
            for f in &r.preflight {
                s.push_str(&format!("  {f}\n"));
            }
        }
        Outcome::Unreachable => {
            s.push_str("not every host could be reached; nothing was changed:\n");
        }
        _ => {}
    }
    s.push_str(&failed_hosts(r));
    let verb = match r.mode {
        Mode::Plan => "upgrade plan",
        Mode::Apply => "upgrade apply",
    };
    let ran = r.upgrade.as_ref().map_or(0, |u| u.steps.len());
    s.push_str(&format!(
        "{verb} {}: {} host(s), {ran} step(s) run, in {:.1}s (operation {})\n",
        r.cluster,
        r.hosts.len(),
        r.duration_ms as f64 / 1000.0,
        r.operation,
    ));
    s
}

fn render_steps(s: &mut String, u: &UpgradeReport) {
    if let Some(r) = &u.resumed {
        s.push_str(&format!(
            "resuming after upgrade operation {} ({}), which finished {} step(s) the journal records: {}\n",
            r.operation,
            r.status,
            r.finished_steps.len(),
            r.finished_steps.join(", ")
        ));
        if !r.replanned.is_empty() {
            s.push_str(&format!(
                "  planned again because the hosts still need them: {}\n",
                r.replanned.join(", ")
            ));
        }
    }
    for n in &u.uncordoned {
        s.push_str(&format!(
            "  uncordoned {n} (left cordoned by an earlier upgrade)\n"
        ));
    }
    for step in &u.steps {
        let mark = if step.ok { "done" } else { "FAILED" };
        s.push_str(&format!(
            "  step {:<40} {mark} in {:.1}s\n",
            step.id,
            step.duration_ms as f64 / 1000.0
        ));
        if let Some(e) = &step.error {
            s.push_str(&format!("    {e}\n"));
        }
        for (node, left) in &step.left {
            s.push_str(&format!("    {node}: {left}\n"));
        }
    }
    if u.paused {
        s.push_str(
            "paused by spec.upgrade.paused; set it to false and run upgrade apply again to go on\n",
        );
    }
    if let Some(why) = &u.stopped {
        s.push_str(&format!("stopped: {why}\n  hint: fix the cause and run upgrade apply again; finished Nodes are not redone\n"));
    }
}
