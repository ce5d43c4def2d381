//! `kubegrid serving-controller`: the LLMService controller process. One replica acts at a
//! time, through a Lease; the others stand by.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use kubegrid_lease::LeaseConfig;
use kubegrid_serving::controller;

use super::operator::{LogFormat, host_name, shutdown_signal};
use crate::exit;

/// Arguments of `serving-controller`.
#[derive(Debug, Args)]
pub struct ServingArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Namespace of the leader Lease (the controller's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubegrid-system")]
    pub lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "kubegrid-serving")]
    pub lease_name: String,
    /// This replica's name in the Lease and in Events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// The kubegrid image (pinned by digest, `REPOSITORY@sha256:…`) the routers of
    /// LLMServices that scale to zero run; without it such services stay at minReplicas.
    #[arg(long, value_name = "IMAGE")]
    pub router_image: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(args: &ServingArgs) -> anyhow::Result<u8> {
    if let Some(image) = &args.router_image
        && !super::serving_manifests::pinned(image)
    {
        return Err(super::UsageError(format!(
            "--router-image {image:?} is not pinned by digest; expected REPOSITORY@sha256:<64 hex digits>"
        ))
        .into());
    }
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => host_name()?,
    };
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let mut ctx = controller::Context::new(client.clone(), &identity);
    ctx.router_image = args.router_image.clone();
    let ctx = Arc::new(ctx);
    let lease = LeaseConfig {
        renew_interval: Duration::from_secs(5),
        ..LeaseConfig::new(&args.lease_namespace, &args.lease_name, identity)
    };
    let namespace = args.namespace.clone();
    kubegrid_lease::lead(client, lease, shutdown_signal(), || {
        controller::run(Arc::clone(&ctx), namespace.as_deref())
    })
    .await?;
    Ok(exit::OK)
}
