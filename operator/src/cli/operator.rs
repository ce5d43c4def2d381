//! `kubegrid operator`: the operator process the Helm chart runs. It reconciles Cluster and
//! Node resources with the same engine as `kubegrid apply`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kubegrid_controller::{
    Backoff, Context, Scope, Settings, health, leader::LeaseConfig, metrics::Metrics,
    runner::EngineRunner,
};
use kubegrid_journal::Journal;

use super::UsageError;
use crate::exit;

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with the span's cluster, node and operation fields.
    Json,
    /// Human-readable lines.
    Text,
}

/// Arguments of `operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// SQLite journal file (on a persistent volume); ignored with --database-url.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/lib/kubegrid/journal.db"
    )]
    pub journal: PathBuf,
    /// Postgres journal instead of SQLite, for several replicas:
    /// postgres://user:password@host/db.
    #[arg(
        long,
        env = "KUBEGRID_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubegrid-system")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "kubegrid-operator")]
    pub lease_name: String,
    /// This replica's name in the Lease and in Events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease stays valid without renewal; renewals come at a third of it.
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_duration: u64,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Where keys read from Secrets are written (mode 0600; an in-memory volume in the chart).
    #[arg(long, value_name = "DIR", default_value = "/var/run/kubegrid")]
    pub work_dir: PathBuf,
    /// What relative spec.bundle.source paths resolve against; also the one bundle root when
    /// no --bundle-root is given.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kubegrid/bundles")]
    pub bundle_dir: PathBuf,
    /// A directory that Clusters' bundles may lie in (repeatable; default: --bundle-dir). A
    /// spec.bundle.source anywhere else, also through a symbolic link, is refused unread.
    #[arg(long = "bundle-root", value_name = "DIR")]
    pub bundle_roots: Vec<PathBuf>,
    /// First retry delay after a failure, in seconds; it doubles per failure.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub backoff_base: u64,
    /// Longest retry delay, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub backoff_cap: u64,
    /// Skip one check on every install, knowingly (repeatable): a preflight check's name, or
    /// `cluster-api` for the checks through the workload cluster's API.
    #[arg(long = "skip-check", value_name = "NAME")]
    pub skip_checks: Vec<String>,
    /// How bundle files reach hosts: `http` from a blob server the operator runs, `ssh`,
    /// `p2p` (the operator seeds, the hosts fetch pieces from each other on port 9460), or
    /// `auto`: p2p where 3 or more hosts need files at once, http otherwise.
    #[arg(long, value_name = "HOW", default_value = "auto", value_parser = ["auto", "http", "ssh", "p2p"])]
    pub distribution: String,
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(args: &OperatorArgs) -> anyhow::Result<u8> {
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => host_name()?,
    };
    let distribution = args.distribution.parse().map_err(UsageError)?;
    let mut known = kubegrid_engine::preflight::names();
    known.push(kubegrid_controller::runner::CLUSTER_API_CHECKS);
    if let Some(bad) = args
        .skip_checks
        .iter()
        .find(|c| !known.contains(&c.as_str()))
    {
        return Err(UsageError(format!(
            "--skip-check {bad}: no such check; known: {}",
            known.join(", ")
        ))
        .into());
    }
    let bundle_roots = bundle_roots(args)?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let journal = match &args.database_url {
        Some(url) => Journal::connect(url).await?,
        None => Journal::open(&args.journal).await?,
    };
    let metrics = Arc::new(Metrics::new());
    let probes = Arc::new(health::Probes::default());
    let server =
        health::Server::bind(args.listen, Arc::clone(&metrics), Arc::clone(&probes)).await?;
    tracing::info!(
        listen = %server.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        identity = %identity,
        "serving /metrics, /healthz and /readyz"
    );
    tokio::spawn(server.serve());
    let runner = EngineRunner {
        distribution,
        skip_checks: args.skip_checks.clone(),
        ..EngineRunner::default()
    };
    let ctx = Arc::new(Context::new(
        client,
        journal,
        Arc::new(runner),
        metrics,
        probes,
        Settings {
            work_dir: args.work_dir.clone(),
            spec_dir: args.bundle_dir.clone(),
            bundle_roots,
            backoff: Backoff {
                base: Duration::from_secs(args.backoff_base.max(1)),
                cap: Duration::from_secs(args.backoff_cap.max(args.backoff_base.max(1))),
            },
        },
        &identity,
    ));
    let lease = LeaseConfig {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity,
        lease_duration: Duration::from_secs(args.lease_duration),
        renew_interval: Duration::from_secs(args.lease_duration / 3),
        retry_interval: Duration::from_secs((args.lease_duration / 7).max(1)),
    };
    let scope = match &args.namespace {
        Some(ns) => Scope::Namespace(ns.clone()),
        None => Scope::All,
    };
    kubegrid_controller::run(ctx, scope, lease, shutdown_signal()).await?;
    Ok(exit::OK)
}

/// The bundle roots, absolute: those given, or else --bundle-dir. The root directory itself
/// is refused, since it would let a Cluster name any file of the operator's pod.
fn bundle_roots(args: &OperatorArgs) -> anyhow::Result<Vec<PathBuf>> {
    let given = if args.bundle_roots.is_empty() {
        vec![args.bundle_dir.clone()]
    } else {
        args.bundle_roots.clone()
    };
    given
        .into_iter()
        .map(|root| {
            let absolute = std::path::absolute(&root).map_err(|e| {
                UsageError(format!("--bundle-root {}: {e}", root.display()))
            })?;
            if absolute.parent().is_none() {
                return Err(UsageError(format!(
                    "--bundle-root {}: the root directory would let a Cluster name any file of the operator's pod\n  hint: name the directory the bundles volume is mounted at, e.g. /var/lib/kubegrid/bundles",
                    root.display()
                ))
                .into());
            }
            Ok(absolute)
        })
        .collect()
}

/// This machine's host name, the default identity in a Lease.
pub(super) fn host_name() -> anyhow::Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .context("reading the host name for --identity")
}

/// Completes on SIGTERM (the kubelet stopping the pod) or SIGINT.
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: OperatorArgs,
    }

    fn roots(argv: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
        let cli = Cli::try_parse_from(std::iter::once("operator").chain(argv.iter().copied()))
            .expect("arguments parse");
        bundle_roots(&cli.args)
    }

    #[test]
    fn bundle_roots_default_to_the_bundle_dir_and_are_absolute() {
        assert_eq!(
            roots(&[]).unwrap(),
            [PathBuf::from("/var/lib/kubegrid/bundles")]
        );
        assert_eq!(
            roots(&["--bundle-dir", "/srv/b"]).unwrap(),
            [PathBuf::from("/srv/b")]
        );
        let given = roots(&["--bundle-root", "/srv/a", "--bundle-root", "rel"]).unwrap();
        assert_eq!(given[0], PathBuf::from("/srv/a"));
        assert_eq!(given[1], std::env::current_dir().unwrap().join("rel"));
    }

    #[test]
    fn the_root_directory_is_no_bundle_root() {
        let err = roots(&["--bundle-root", "/srv/a", "--bundle-root", "/"]).unwrap_err();
        let text = err.to_string();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{text}");
        assert!(
            text.contains("--bundle-root /: the root directory"),
            "{text}"
        );
    }
}
