//! `kubegrid history`, `kubegrid logs` and `kubegrid host-key`: reading and amending the journal.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use kubegrid_journal::{Journal, OperationId, format_duration, format_time};
use serde_json::json;

use super::{Output, UsageError, emit};

/// Where the journal lives.
#[derive(Debug, Clone, Args)]
pub struct JournalArg {
    /// Journal database (SQLite). Default: /var/lib/kubegrid/journal.db as root,
    /// ~/.local/state/kubegrid/journal.db otherwise.
    #[arg(long, global = true, env = "KUBEGRID_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

impl JournalArg {
    /// The path to use.
    pub fn path(&self) -> PathBuf {
        if let Some(p) = &self.journal {
            return p.clone();
        }
        if nix_is_root() {
            return PathBuf::from("/var/lib/kubegrid/journal.db");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".local/state/kubegrid/journal.db")
    }

    /// Opens it (creating it on first use).
    pub async fn open(&self) -> anyhow::Result<Journal> {
        let path = self.path();
        Journal::open(&path)
            .await
            .with_context(|| format!("opening the journal {}", path.display()))
    }
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `kubegrid history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Journal location.
    #[command(flatten)]
    pub journal: JournalArg,
    /// How many operations, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `kubegrid logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Journal location.
    #[command(flatten)]
    pub journal: JournalArg,
    /// Operation id, as `kubegrid history` shows it.
    pub operation: i64,
    /// Only this host's events.
    #[arg(long)]
    pub host: Option<String>,
}

/// `kubegrid host-key`.
#[derive(Debug, Args)]
pub struct HostKeyArgs {
    /// Journal location.
    #[command(flatten)]
    pub journal: JournalArg,
    /// What to do.
    #[command(subcommand)]
    pub command: HostKeyCommand,
}

/// Host key commands.
#[derive(Debug, Subcommand)]
pub enum HostKeyCommand {
    /// Deliberately accept a host's new key (after a reinstall), replacing its pin.
    Accept {
        /// Node name.
        host: String,
        /// Cluster the Node belongs to.
        #[arg(long)]
        cluster: String,
        /// The new key's fingerprint, exactly as the refusal printed it (SHA256:…).
        #[arg(long)]
        fingerprint: String,
        /// The new key's algorithm, when it changed too.
        #[arg(long)]
        algorithm: Option<String>,
    },
    /// Show a host's pinned key.
    Show {
        /// Node name.
        host: String,
        /// Cluster the Node belongs to.
        #[arg(long)]
        cluster: String,
    },
}

/// Runs `history`.
pub async fn history(args: &HistoryArgs, output: Output) -> anyhow::Result<()> {
    let journal = args.journal.open().await?;
    journal.recover_interrupted().await?;
    let ops = journal.operations(args.limit).await?;
    emit(output, &json!({ "operations": ops }), || {
        let mut s = history_row(
            [
                "ID", "KIND", "CLUSTER", "STATUS", "STARTED", "TOOK", "HOSTS", "CHANGED", "FAILED",
            ]
            .map(String::from),
        );
        for o in &ops {
            s.push_str(&history_row([
                o.id.0.to_string(),
                o.kind.as_str().to_string(),
                o.cluster.clone(),
                o.status.as_str().to_string(),
                format_time(o.started_ms),
                o.duration_ms.map_or("-".into(), format_duration),
                o.hosts.len().to_string(),
                o.changed.to_string(),
                o.hosts_failed.to_string(),
            ]));
        }
        if ops.is_empty() {
            s.push_str("(no operations yet)\n");
        }
        s
    })
}

/// One line of the `history` table; the header goes through here too, so columns line up.
fn history_row(c: [String; 9]) -> String {
    format!(
        "{:>4}  {:<6} {:<12} {:<11} {:<20} {:>8}  {:>5} {:>7} {:>6}\n",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
    )
}

/// Runs `logs`.
pub async fn logs(args: &LogsArgs, output: Output) -> anyhow::Result<()> {
    let journal = args.journal.open().await?;
    let id = OperationId(args.operation);
    let Some(op) = journal.operation(id).await? else {
        return Err(UsageError(format!(
            "no operation {} in {}; `kubegrid history` lists them",
            args.operation,
            journal.path().display()
        ))
        .into());
    };
    let events = journal.events(id, args.host.as_deref()).await?;
    let results: Vec<_> = journal
        .host_results(id)
        .await?
        .into_iter()
        .filter(|r| args.host.as_ref().is_none_or(|h| *h == r.host))
        .collect();
    emit(
        output,
        &json!({ "operation": op, "events": events, "hostResults": results }),
        || {
            let mut s = format!(
                "operation {} ({}, cluster {}): {} — started {}{}\n",
                op.id.0,
                op.kind.as_str(),
                op.cluster,
                op.status.as_str(),
                format_time(op.started_ms),
                op.summary
                    .as_ref()
                    .map(|m| format!("\n  {m}"))
                    .unwrap_or_default()
            );
            for e in &events {
                s.push_str(&format!(
                    "{}  {:<18} {:<28} {:<9} {:>6}ms  {}{}\n",
                    e.host,
                    e.phase,
                    e.task,
                    e.status.as_str(),
                    e.duration_ms,
                    e.message,
                    if e.output.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "\n      output: {}",
                            e.output.trim_end().replace('\n', "\n      ")
                        )
                    }
                ));
            }
            for r in results.iter().filter(|r| !r.ok) {
                s.push_str(&format!(
                    "{} FAILED in {}: {}\n",
                    r.host,
                    r.phase,
                    r.error.clone().unwrap_or_default()
                ));
            }
            s
        },
    )
}

/// Runs `host-key`.
pub async fn host_key(args: &HostKeyArgs, output: Output) -> anyhow::Result<()> {
    let journal = args.journal.open().await?;
    match &args.command {
        HostKeyCommand::Accept {
            host,
            cluster,
            fingerprint,
            algorithm,
        } => {
            if !fingerprint.starts_with("SHA256:") {
                return Err(UsageError(format!(
                    "--fingerprint {fingerprint:?} is not a SHA256:… fingerprint"
                ))
                .into());
            }
            let old = journal.pinned_key(cluster, host).await?;
            let algorithm = algorithm
                .clone()
                .or_else(|| old.as_ref().map(|k| k.algorithm.clone()))
                .unwrap_or_else(|| "ssh-ed25519".into());
            let new = journal
                .replace_key(cluster, host, &algorithm, fingerprint)
                .await?;
            emit(
                output,
                &json!({ "host": host, "cluster": cluster, "previous": old, "pinned": new }),
                || {
                    format!(
                        "{host}: now pinned to {fingerprint}{}\n",
                        old.as_ref()
                            .map(|k| format!(" (was {})", k.fingerprint))
                            .unwrap_or_default()
                    )
                },
            )
        }
        HostKeyCommand::Show { host, cluster } => {
            let key = journal.pinned_key(cluster, host).await?;
            emit(
                output,
                &json!({ "host": host, "cluster": cluster, "pinned": key }),
                || match &key {
                    Some(k) => format!(
                        "{host}: {} {} (first seen {})\n",
                        k.algorithm,
                        k.fingerprint,
                        format_time(k.first_seen_ms)
                    ),
                    None => {
                        format!("{host}: no key pinned yet; the next apply pins the one it sees\n")
                    }
                },
            )
        }
    }
}
