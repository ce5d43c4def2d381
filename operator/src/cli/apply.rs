//! `kubegrid apply` and `kubegrid plan`: validate, connect, preflight, then run (or dry-run)
//! the install playbook.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use kubegrid_engine::{
    agent::Agents,
    kubernetes::ClusterChecks,
    operation::{self, Mode, Options, Outcome, Report, Request},
    preflight,
    ssh::{PASSPHRASE_ENV, SshOptions},
};
use kubegrid_journal::Redactor;
use kubegrid_plan::{Bundle, Playbook};
use sha2::{Digest, Sha256};

use super::{Output, UsageError, journal::JournalArg, progress};
use crate::exit;

/// Arguments of `apply` and `plan`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The spec: Cluster and Node resources, multi-document YAML.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// The bundle and how its signature is checked.
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Hosts worked on at once within a phase.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Skip one preflight check, knowingly (repeatable). `--skip-check help` lists them.
    #[arg(long = "skip-check", value_name = "NAME")]
    pub skip_checks: Vec<String>,
    /// Where to write the cluster's admin kubeconfig (mode 0600); default
    /// ~/.kube/<cluster>.conf. It is also kept in the journal.
    #[arg(long = "kubeconfig-out", value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Stop after this phase of the install playbook, e.g. `container-runtime` to prepare
    /// hosts without bootstrapping Kubernetes.
    #[arg(long, value_name = "PHASE")]
    pub until: Option<String>,
    /// Remove Nodes that left the spec even when draining them fails.
    #[arg(long)]
    pub force_remove: bool,
    /// Accept an etcd membership change of an installed cluster that leaves an even member
    /// count (e.g. 3 -> 4 as one step of replacing a member). Never permits a change that
    /// would lose quorum.
    #[arg(long)]
    pub force: bool,
    /// Longest wait, in seconds, for each cluster check through the API (readyz, nodes Ready,
    /// system pods, each probe pod); shorter built-in deadlines stay as they are.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_timeout: u64,
    /// Seconds allowed for each host's TCP connect plus SSH handshake.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// How bundle files reach hosts.
    #[command(flatten)]
    pub distribution: DistributionArgs,
    /// Journal location.
    #[command(flatten)]
    pub journal: JournalArg,
}

/// How bundle files reach hosts; `apply` and `upgrade` share these flags.
#[derive(Debug, Args)]
pub struct DistributionArgs {
    /// How bundle files reach hosts: `http`, fetched by each host from a blob server this
    /// command runs on its own address towards the hosts, resuming after a cut; `ssh`,
    /// pushed over each host's SSH connection; `p2p`, seeded by this command and fetched
    /// by the hosts piece by piece from each other, so this machine's uplink carries about
    /// one copy (what a swarm misses goes over http); or `auto`, p2p where 3 or more hosts
    /// need files at once and http otherwise. Hosts behind a bastion always use ssh.
    #[arg(long, value_name = "HOW", default_value = "auto", value_parser = ["auto", "http", "ssh", "p2p"])]
    pub distribution: String,
    /// With `p2p`: the TCP port each host serves pieces on, on its own address.
    #[arg(long, value_name = "PORT", default_value_t = kubegrid_engine::distribute::swarm::DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub p2p_port: u16,
    /// With `p2p`: each host's upload and download limit, in bits per second as tc writes
    /// rates (`800mbit`, `2gbit`); unlimited by default.
    #[arg(long, value_name = "RATE", value_parser = |s: &str| s.parse::<kubegrid_lab::LinkRate>().map_err(|e| e.to_string()))]
    pub p2p_rate_limit: Option<kubegrid_lab::LinkRate>,
}

impl DistributionArgs {
    /// The engine's distribution options.
    pub fn options(
        &self,
    ) -> Result<
        (
            kubegrid_engine::distribute::Distribution,
            kubegrid_engine::distribute::swarm::P2pOptions,
        ),
        UsageError,
    > {
        let mode = self.distribution.parse().map_err(UsageError)?;
        let p2p = kubegrid_engine::distribute::swarm::P2pOptions {
            port: self.p2p_port,
            rate_limit: self.p2p_rate_limit.map(|r| r.bits_per_second() / 8),
            ..kubegrid_engine::distribute::swarm::P2pOptions::default()
        };
        Ok((mode, p2p))
    }
}

/// The bundle flags that `apply`, `plan` and `reset` share.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Offline bundle: a directory, or a packed .tar.zst from `bundle build` (unpacked once
    /// into a cache); overrides the Cluster's spec.bundle.source.
    #[arg(long, value_name = "DIR|FILE")]
    pub bundle: Option<PathBuf>,
    /// Public key (`kubegrid bundle keygen --public`) that the bundle's signature must verify
    /// under; overrides the Cluster's spec.bundle.publicKeyFile.
    #[arg(long = "bundle-public-key", value_name = "FILE")]
    pub bundle_public_key: Option<PathBuf>,
    /// Use a bundle without checking its signature (every artifact's sha256 is still
    /// checked against its manifest). Only for bundles you built yourself.
    #[arg(long)]
    pub insecure_bundle: bool,
}

impl BundleArgs {
    /// How the bundle's signature is checked, with `spec_file` (from `-f`) for hints.
    pub(super) fn key<'a>(&'a self, spec_file: &'a std::path::Path) -> BundleKey<'a> {
        BundleKey {
            insecure: self.insecure_bundle,
            public_key: self.bundle_public_key.as_deref(),
            spec_file,
        }
    }
}

/// Runs `apply` (mode Apply) or `plan` (mode Plan); returns the exit code.
pub async fn run(args: &ApplyArgs, mode: Mode, output: Output) -> anyhow::Result<u8> {
    let mut names = preflight::names();
    names.push(CLUSTER_API_CHECKS);
    if args.skip_checks.iter().any(|s| s == "help") {
        for c in preflight::checks() {
            println!("{:<18} {}", c.name(), c.describe());
        }
        println!(
            "{CLUSTER_API_CHECKS:<18} after the install: readyz, nodes Ready, system pods, DNS and pod-to-pod traffic through the Kubernetes API"
        );
        return Ok(exit::OK);
    }
    if let Some(bad) = args
        .skip_checks
        .iter()
        .find(|s| !names.contains(&s.as_str()))
    {
        return Err(UsageError(format!(
            "--skip-check {bad}: no such check; known: {}",
            names.join(", ")
        ))
        .into());
    }
    // Everything below up to `execute` only reads local files: a bad spec, bundle or key
    // stops here, before any host is contacted and before anything is journaled.
    let manifest = super::membership::load(&args.file, &args.journal, args.force).await?;
    let playbook = Arc::new(Playbook::builtin("install")?);
    if let Some(until) = &args.until
        && playbook.phase(until).is_none()
    {
        let known: Vec<&str> = playbook.phases.iter().map(|p| p.name.as_str()).collect();
        return Err(UsageError(format!(
            "--until {until}: no such phase; the install playbook has: {}",
            known.join(", ")
        ))
        .into());
    }
    // A version change on an installed cluster would be an upgrade, which kubegrid does not
    // do. Said first: the bundle and keys for the new version are beside the point. A journal
    // that does not exist records no install, and is not created just to look.
    if args.journal.path().exists() {
        let journal = args.journal.open().await?;
        let checked = kubegrid_engine::upgrade::check_journal(
            &journal,
            manifest.name(),
            &manifest.cluster().spec.kubernetes_version,
        )
        .await;
        journal.close().await;
        checked?;
    }
    let given = match (&args.bundle.bundle, manifest.bundle_dir()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir,
        (None, None) => {
            return Err(UsageError(format!(
                "{}: the Cluster has no spec.bundle.source and no --bundle was given\n  hint: build one with offline-bundle/dev-bundle.sh DIR and pass --bundle DIR",
                args.file.display()
            ))
            .into());
        }
    };
    kubegrid_engine::spec::cluster_context(&manifest)?;
    let (bundle, agents, context) = super::packed::with_bundle(&given, |dir| {
        let bundle = open_bundle(&args.bundle.key(&args.file), &manifest, dir, &given)?;
        let agents = Agents::for_bundle(&bundle)?;
        let context = kubegrid_engine::spec::cluster_context_for_bundle(&manifest, &bundle)?;
        kubegrid_engine::bundle_check::check(
            &manifest,
            &context,
            &given,
            bundle.manifest(),
            &playbook,
            args.until.as_deref(),
        )?;
        Ok((bundle, agents, context))
    })?;
    let hosts = kubegrid_engine::spec::hosts(&manifest);
    kubegrid_engine::ssh::check_key_files(hosts.iter().map(|h| &h.target))?;
    let text =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mut redactor = Redactor::default();
    for h in &hosts {
        if let Some(v) = h
            .target
            .password
            .as_ref()
            .and_then(|p| p.env())
            .and_then(|v| std::env::var(v).ok())
        {
            redactor.add_secret(v);
        }
    }
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        redactor.add_secret(p);
    }
    // Only an apply that runs the whole playbook writes the kubeconfig; its directory is
    // checked now, before any host is touched, rather than after every host was changed.
    let writes_kubeconfig = mode == Mode::Apply && args.until.is_none();
    let kubeconfig_out = match (&args.kubeconfig_out, writes_kubeconfig) {
        (_, false) => None,
        (Some(path), true) => Some(path.clone()),
        (None, true) => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .ok_or_else(|| UsageError("HOME is not set; pass --kubeconfig-out FILE".into()))?;
            Some(home.join(".kube").join(format!("{}.conf", manifest.name())))
        }
    };
    if let Some(path) = &kubeconfig_out {
        check_writable(path)?;
    }
    let mut journal = args.journal.open().await?;
    journal.set_redactor(redactor);

    let names: Vec<String> = hosts.iter().map(|h| h.target.host.clone()).collect();
    let observer = progress::observer(&names, output == Output::Json);
    let (distribution, p2p) = args.distribution.options()?;
    let mut options = Options {
        parallel: usize::from(args.parallel),
        skip_checks: args.skip_checks.clone(),
        ssh: SshOptions {
            connect_timeout: Duration::from_secs(args.connect_timeout),
            ..SshOptions::default()
        },
        kubeconfig_out,
        cluster_checks: !args.skip_checks.iter().any(|s| s == CLUSTER_API_CHECKS),
        force_remove: args.force_remove,
        force_membership: args.force,
        until: args.until.clone(),
        distribution,
        p2p,
        ..Options::default()
    };
    let limit = Duration::from_secs(args.check_timeout);
    let checks = &mut options.check_options;
    for deadline in [
        &mut checks.readyz_timeout,
        &mut checks.nodes_timeout,
        &mut checks.system_pods_timeout,
        &mut checks.pod_timeout,
    ] {
        *deadline = (*deadline).min(limit);
    }
    let req = Request {
        mode,
        cluster: manifest.name().to_string(),
        spec_digest: hex::encode(Sha256::digest(&text)),
        context,
        hosts,
        bundle: Arc::new(bundle),
        playbook,
        agents: Arc::new(agents),
        options,
    };
    let report = operation::execute(req, journal, observer.clone()).await?;
    drop(observer);
    super::emit(output, &report, || render(&report))?;
    Ok(exit_code(report.outcome))
}

/// The exit code of an operation that ran (see README's table).
pub(super) fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded => exit::OK,
        Outcome::HostsFailed | Outcome::ClusterFailed => exit::FAILED,
        Outcome::PreflightFailed => exit::PREFLIGHT,
        Outcome::Unreachable => exit::UNREACHABLE,
    }
}

/// One line per failed host: its phase and the error. Engine errors name their host
/// already; the line starts with it, so the prefix is not repeated.
pub(super) fn failed_hosts(r: &Report) -> String {
    let mut s = String::new();
    for h in r.hosts.iter().filter(|h| !h.ok) {
        let error = h.error.as_deref().unwrap_or("");
        let error = error
            .strip_prefix(&format!("{}: ", h.name))
            .unwrap_or(error);
        s.push_str(&format!(
            "  {} FAILED in {}: {error}\n",
            h.name,
            h.failed_phase.as_deref().unwrap_or("?"),
        ));
    }
    s
}

/// Fails with a usage error when the kubeconfig's directory cannot be made or written.
pub(super) fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let probe = std::fs::create_dir_all(dir).and_then(|()| tempfile::tempfile_in(dir).map(drop));
    probe.map_err(|e| {
        UsageError(format!(
            "--kubeconfig-out {}: cannot write in {}: {e}",
            path.display(),
            dir.display()
        ))
        .into()
    })
}

/// `--skip-check` name of the checks through the Kubernetes API after the install.
const CLUSTER_API_CHECKS: &str = "cluster-api";

/// The kubeconfig, removals and cluster checks of a report.
fn render_cluster(k: &ClusterChecks) -> String {
    let mut s = String::new();
    if let Some(path) = &k.kubeconfig {
        s.push_str(&format!("admin kubeconfig: {path}\n"));
    }
    for r in &k.removed {
        let mark = if r.ok { "removed" } else { "NOT removed" };
        s.push_str(&format!("  {} {mark}: {}\n", r.name, r.detail));
    }
    for c in &k.checks {
        let mark = if c.ok { "ok" } else { "FAILED" };
        s.push_str(&format!(
            "  cluster check {:<12} {mark:<6} {} ({} ms)\n",
            c.name, c.detail, c.duration_ms
        ));
    }
    if let Some(why) = &k.skipped {
        s.push_str(&format!("  cluster checks skipped: {why}\n"));
    }
    s
}

/// The text form of a report.
fn render(r: &Report) -> String {
    let verb = match r.mode {
        Mode::Apply => "apply",
        Mode::Plan => "plan",
    };
    let mut s = String::new();
    let failed = r.hosts.iter().filter(|h| !h.ok).count();
    let unchanged: usize = r.hosts.iter().map(|h| h.unchanged).sum();
    if r.mode == Mode::Plan && r.outcome == Outcome::Succeeded {
        for h in &r.hosts {
            s.push_str(&format!("{}:\n", h.name));
            for t in h.tasks.iter().filter(|t| t.status == "changed") {
                s.push_str(&format!("  ~ {} / {}: {}\n", t.phase, t.task, t.message));
            }
            if h.changed == 0 {
                s.push_str("  (no changes)\n");
            }
        }
    }
    match r.outcome {
        Outcome::PreflightFailed => {
            s.push_str("preflight failed; nothing was changed:\n");
            for f in &r.preflight {
                s.push_str(&format!("  {f}\n"));
            }
            s.push_str("  (to override one check knowingly: --skip-check NAME)\n");
        }
        Outcome::Unreachable => {
            s.push_str("not every host could be reached; nothing was changed:\n");
        }
        _ => {}
    }
    if r.outcome != Outcome::PreflightFailed {
        s.push_str(&failed_hosts(r));
    }
    s.push_str(&render_cluster(&r.kubernetes));
    let changed = if r.mode == Mode::Plan {
        "would change"
    } else {
        "changed"
    };
    s.push_str(&format!(
        "{verb} {}: {} host(s), {} task(s) {changed}, {unchanged} unchanged, {failed} host(s) failed, in {:.1}s (operation {})\n",
        r.cluster,
        r.hosts.len(),
        r.changed(),
        r.duration_ms as f64 / 1000.0,
        r.operation,
    ));
    s
}

/// How a command checks its bundle's signature: `--insecure-bundle`, `--bundle-public-key`,
/// and the spec file (for the hint).
pub(super) struct BundleKey<'a> {
    /// `--insecure-bundle`: skip the signature (never the checksums).
    pub insecure: bool,
    /// `--bundle-public-key`, which overrides spec.bundle.publicKeyFile.
    pub public_key: Option<&'a std::path::Path>,
    /// The spec file given with `-f`.
    pub spec_file: &'a std::path::Path,
}

/// Opens the bundle, refusing it unless its signature verifies under the public key from
/// `--bundle-public-key` or spec.bundle.publicKeyFile; `--insecure-bundle` skips only the
/// signature. Either way every artifact's sha256 is checked before any host is contacted.
/// `shown` is the bundle as the user named it (a packed file, or `dir`).
pub(super) fn open_bundle(
    args: &BundleKey<'_>,
    manifest: &kubegrid_api::Manifest,
    dir: &std::path::Path,
    shown: &std::path::Path,
) -> anyhow::Result<Bundle> {
    if args.insecure {
        eprintln!(
            "warning: --insecure-bundle: the signature of bundle {} is not checked",
            shown.display()
        );
        kubegrid_bundle::check_is_bundle(dir)?;
        let bundle = Bundle::open(dir)?;
        kubegrid_bundle::verify_images(dir, &bundle)?;
        return Ok(bundle);
    }
    let Some(key) = args
        .public_key
        .map(std::path::Path::to_path_buf)
        .or_else(|| manifest.bundle_public_key_file())
    else {
        return Err(UsageError(format!(
            "bundle {}: no public key to check its signature with\n  hint: pass --bundle-public-key FILE or set spec.bundle.publicKeyFile in {}; --insecure-bundle skips the signature check (only for bundles you built yourself)",
            shown.display(),
            args.spec_file.display()
        ))
        .into());
    };
    let (bundle, report) = kubegrid_bundle::open_verified(dir, &key)?;
    tracing::info!(
        bundle = %dir.display(),
        key = %report.key_fingerprint,
        artifacts = report.artifacts,
        "bundle signature verified"
    );
    Ok(bundle)
}
