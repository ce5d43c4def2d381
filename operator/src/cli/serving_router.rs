//! `kubegrid serving-router`: the router in front of an LLMService that scales to zero
//! (kubegrid-router). The serving controller deploys it; it needs no API access.

use std::{net::SocketAddr, time::Duration};

use clap::Args;
use kubegrid_router::{Config, Router};

use tokio::signal::unix::{SignalKind, signal};

use super::operator::LogFormat;
use crate::exit;

/// Arguments of `serving-router`.
#[derive(Debug, Args)]
pub struct RouterArgs {
    /// Where clients connect.
    #[arg(long, default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
    /// The replicas' Service, HOST:PORT (`<name>-backend:8000`).
    #[arg(long, value_name = "HOST:PORT")]
    pub backend: String,
    /// vLLM's served model name (the LLMService's name), the metrics' `model_name`.
    #[arg(long)]
    pub model_name: String,
    /// The LLMService's namespace, the metrics' `namespace`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: String,
    /// How long a request may wait for a replica (seconds); a cold start loads the model.
    #[arg(long, value_name = "SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_timeout: u64,
    /// How many requests may wait at once; more are answered 503 at once.
    #[arg(long, default_value_t = 1000)]
    pub max_pending: usize,
    /// The largest request body held while waiting (bytes); larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_body: usize,
    /// After SIGTERM, keep serving this long (seconds) so that endpoint removal reaches
    /// every proxy before the router stops.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub shutdown_delay: u64,
    /// Then how long (seconds) the requests in flight, held ones included, get to finish
    /// while new connections are refused; those still held after it are answered 503 with
    /// Retry-After, and answers still streaming are cut. The serving controller passes the
    /// LLMService's `engine.drainTimeoutSeconds`. A second SIGTERM or SIGINT stops at once.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub drain_timeout: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// Runs the router until SIGTERM or SIGINT, then the shutdown delay and the drain.
pub async fn run(args: &RouterArgs) -> anyhow::Result<u8> {
    let cfg = Config {
        queue_timeout: Duration::from_secs(args.queue_timeout),
        max_pending: args.max_pending,
        max_body: args.max_body,
        ..Config::new(
            args.listen,
            &args.backend,
            &args.model_name,
            &args.namespace,
        )
    };
    // Listening from the start, so that a second signal is never missed however soon it
    // follows the first.
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut signalled = async || {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    let mut router = Router::start(cfg).await?;
    signalled().await;
    tracing::info!(
        delay_secs = args.shutdown_delay,
        "stopping after the shutdown delay"
    );
    let stopping = async {
        tokio::time::sleep(Duration::from_secs(args.shutdown_delay)).await;
        router.stop(Duration::from_secs(args.drain_timeout));
        // The router logs what the drain left undone; a drain that ran out is not a failure
        // of the process.
        router.wait().await;
    };
    tokio::select! {
        () = stopping => {}
        // Someone at a terminal pressing Ctrl-C again does not want to wait out the drain.
        () = signalled() => {
            tracing::warn!("a second signal: stopping now, cutting what is in flight");
        }
    }
    Ok(exit::OK)
}
