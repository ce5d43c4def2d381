//! `kubegrid model-cache`: the node model cache daemon (docs/serving.md, "The model cache").
//! It caches the models named on the command line, and with `--follow-llmservices` the model
//! of every LLMService, on this node, with one coordinator per model across the nodes that
//! run it, and serves its copies to the others until stopped.

use std::{net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use kubegrid_modelcache::{
    daemon::{Config, Daemon},
    hub::{Hub, Retry, S3Config},
    services::{FollowConfig, follow},
};
use kubegrid_serving::ModelSource;

use super::{
    UsageError,
    operator::{LogFormat, shutdown_signal},
};
use crate::exit;

/// Arguments of `model-cache`.
#[derive(Debug, Args)]
pub struct ModelCacheArgs {
    /// A model to cache on this node (repeatable), `hf://ORG/NAME[@REVISION]`; `https://`
    /// and `s3://` models need a file list, which only an LLMService or ModelPrewarm gives.
    #[arg(
        long = "model",
        value_name = "URI",
        required_unless_present = "follow_llmservices"
    )]
    pub models: Vec<String>,
    /// Also cache the model of every LLMService this node can see, and report this node's
    /// copy in each one's `status.cache`.
    #[arg(long)]
    pub follow_llmservices: bool,
    /// With --follow-llmservices: only LLMServices in this namespace (default: all).
    #[arg(long, value_name = "NS", requires = "follow_llmservices")]
    pub llmservice_namespace: Option<String>,
    /// With --follow-llmservices: the least seconds between two progress reports.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub report_every: u64,
    /// The model hub (Hugging Face, or a mirror of its API).
    #[arg(long, env = "HF_ENDPOINT", default_value = "https://huggingface.co")]
    pub hub: String,
    /// A file holding the hub token, for gated or private repositories.
    #[arg(long, value_name = "FILE")]
    pub hub_token_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for the hub and for `https://` sources, e.g. a
    /// private mirror's.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The S3 endpoint for `s3://` models: an S3-compatible store's URL (e.g.
    /// `https://minio.storage:9000`); default AWS's for --s3-region. Credentials come from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; without them requests
    /// are anonymous.
    #[arg(long, env = "AWS_ENDPOINT_URL_S3", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The S3 region, which every signature names.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Path-style S3 URLs (`ENDPOINT/BUCKET/KEY`), as most S3-compatible stores need;
    /// default virtual-hosted (`BUCKET.ENDPOINT/KEY`), as AWS prefers.
    #[arg(long, env = "KUBEGRID_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// This node's name, unique among the nodes that run the cache.
    #[arg(long, env = "NODE_NAME")]
    pub node: String,
    /// The address other nodes reach this one at (the pod's IP on host networking).
    #[arg(long, env = "POD_IP")]
    pub advertise: IpAddr,
    /// Where models are kept; serving pods mount it read-only.
    #[arg(long, value_name = "DIR", default_value = kubegrid_serving::names::MODEL_ROOT)]
    pub root: PathBuf,
    /// The namespace of the coordinators' Leases.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubegrid-system")]
    pub namespace: String,
    /// A file holding the fan-out token, the same on every node (a Secret's key).
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// The fan-out port.
    #[arg(long, default_value_t = 9461)]
    pub fanout_port: u16,
    /// The control API's port.
    #[arg(long, default_value_t = 9462)]
    pub control_port: u16,
    /// The most bytes of models kept on this node (a quantity such as `500Gi`): models that
    /// nothing wants any more are evicted, least recently used first, to make room; a model
    /// that does not fit beside the ones in use is refused. Default: no limit.
    #[arg(long, value_name = "QUANTITY", value_parser = parse_capacity)]
    pub capacity: Option<u64>,
    /// As coordinator, publish each file to the other nodes only once it has downloaded and
    /// verified whole. By default a file of more than one fan-out piece is published piece
    /// by piece as it downloads (its last piece once it verifies), so the other nodes copy it
    /// a few pieces behind the download.
    #[arg(long)]
    pub publish_whole_files: bool,
    /// Seconds a coordinator's Lease lasts without renewal.
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_duration: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

fn parse_capacity(text: &str) -> Result<u64, String> {
    kubegrid_modelcache::evict::parse_quantity(text)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a size such as 500Gi, 800G or 1Ti"))
}

fn read_secret(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} from {}", path.display()))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(UsageError(format!("{}: the {what} is empty", path.display())).into());
    }
    Ok(text)
}

/// Runs the daemon until SIGTERM or SIGINT. It keeps running once its models are ready:
/// other nodes may still be copying from it, and it stands for coordinator.
pub async fn run(args: &ModelCacheArgs) -> anyhow::Result<u8> {
    let mut models = Vec::new();
    for uri in &args.models {
        let parsed = kubegrid_serving::ModelUri::parse(uri)
            .map_err(|e| UsageError(format!("--model {e}")))?;
        let refused = match parsed {
            kubegrid_serving::ModelUri::HuggingFace { .. } => None,
            kubegrid_serving::ModelUri::Https { .. } => Some(
                "an https:// model needs its file list with sha256, which only an LLMService or ModelPrewarm gives (--follow-llmservices)",
            ),
            kubegrid_serving::ModelUri::S3 { .. } => Some(
                "an s3:// model needs its file list with sha256, which only an LLMService or ModelPrewarm gives (--follow-llmservices)",
            ),
            kubegrid_serving::ModelUri::Pvc { .. } => Some(
                "a pvc:// model is mounted from its claim by each serving pod and never cached on nodes",
            ),
        };
        if let Some(why) = refused {
            return Err(UsageError(format!("--model {uri}: {why}")).into());
        }
        models.push(ModelSource {
            uri: uri.clone(),
            files: Vec::new(),
            size_limit: None,
        });
    }
    let token = read_secret(&args.token_file, "fan-out token")?;
    let hub_token = match &args.hub_token_file {
        Some(path) => Some(read_secret(path, "hub token")?),
        None => None,
    };
    let s3 = S3Config::new(
        args.s3_endpoint.as_deref(),
        &args.s3_region,
        args.s3_path_style,
    )
    .map_err(|e| UsageError(format!("--s3-endpoint/--s3-region: {e}")))?
    .credentials_from_env();
    let mut hub = Hub::new(&args.hub, Retry::default())?
        .with_token(hub_token)
        .with_s3(s3);
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?;
        hub = hub
            .with_root_ca(&pem)
            .with_context(|| format!("--ca-file {}", path.display()))?;
    }
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let daemon = Arc::new(
        Daemon::start(
            Config {
                node: args.node.clone(),
                advertise: args.advertise,
                fanout_port: args.fanout_port,
                control_port: args.control_port,
                root: args.root.clone(),
                namespace: args.namespace.clone(),
                token,
                lease_duration: Duration::from_secs(args.lease_duration),
                hub,
                upload_limit: None,
                download_limit: None,
                capacity: args.capacity,
                whole_files: args.publish_whole_files,
            },
            client.clone(),
        )
        .await?,
    );
    tracing::info!(node = %args.node, identity = %daemon.identity(), fanout = %daemon.fanout_addr(), "model cache started");
    let all_ready = async {
        for model in &models {
            let commit = daemon.cache(model).await?;
            tracing::info!(model = %model.uri, %commit, "ready on this node");
        }
        anyhow::Ok(())
    };
    // The LLMServices' models, for as long as the daemon runs; it ends only on an error.
    let following = async {
        if args.follow_llmservices {
            let cfg = FollowConfig {
                keep: args.models.clone(),
                namespace: args.llmservice_namespace.clone(),
                report_every: Duration::from_secs(args.report_every),
            };
            follow(Arc::clone(&daemon), client, cfg).await?;
        }
        std::future::pending::<anyhow::Result<()>>().await
    };
    tokio::pin!(following);
    let stopped = async {
        shutdown_signal().await;
        // Hand the coordinator Leases back, so other nodes take over at once.
        daemon.shutdown().await;
    };
    tokio::pin!(stopped);
    tokio::select! {
        () = &mut stopped => return Ok(exit::OK),
        ended = &mut following => return ended.map(|()| exit::OK),
        ready = all_ready => ready?,
    }
    tokio::select! {
        () = stopped => Ok(exit::OK),
        ended = following => ended.map(|()| exit::OK),
    }
}
