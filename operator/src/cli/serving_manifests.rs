//! `kubegrid serving-manifests`: the serving layer as objects to apply into a cluster (the
//! LLMService and ModelPrewarm CRDs, the controller, the node model cache, their RBAC and
//! the cache's fan-out token), the image pinned by digest.

use std::io::Read as _;

use anyhow::Context as _;
use clap::Args;
use kubegrid_serving::layer::{self, LayerOptions};
use serde_json::{Value, json};

use super::{Output, UsageError};

/// Arguments of `serving-manifests`.
#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// The kubegrid image, pinned by digest: `REPOSITORY@sha256:<64 hex digits>`.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// The namespace of the controller, the cache and their Leases.
    #[arg(long, default_value = "kubegrid-serving")]
    pub namespace: String,
    /// The label GPU nodes carry, where the cache runs (`KEY=VALUE`).
    #[arg(
        long,
        value_name = "KEY=VALUE",
        default_value = "nvidia.com/gpu.present=true"
    )]
    pub gpu_node_label: String,
    /// The cache's capacity per node (a quantity such as `500Gi`); default: no limit.
    #[arg(long, value_name = "QUANTITY")]
    pub cache_capacity: Option<String>,
    /// Add PodMonitors (monitoring.coreos.com/v1) for the cache and the vLLM pods.
    #[arg(long)]
    pub pod_monitors: bool,
    /// Leave out the fan-out token Secret (it exists already: a new token would split the
    /// nodes that restart from the ones that do not).
    #[arg(long)]
    pub no_token: bool,
}

pub(super) fn pinned(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(repo, digest)| {
        !repo.is_empty()
            && !repo.contains(char::is_whitespace)
            && digest.len() == 64
            && digest
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A fresh token: 32 random bytes from the kernel, hex.
fn token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the fan-out token")?;
    Ok(hex::encode(bytes))
}

/// Prints the objects as one YAML stream (with `-o json`, one `v1` List), in apply order.
pub fn run(args: &ManifestsArgs, output: Output) -> anyhow::Result<()> {
    if !pinned(&args.image) {
        return Err(UsageError(format!(
            "--image {:?} is not pinned by digest; expected REPOSITORY@sha256:<64 hex digits>, e.g. from `kubegrid image build` or `crane digest`",
            args.image
        ))
        .into());
    }
    let Some((key, value)) = args.gpu_node_label.split_once('=') else {
        return Err(UsageError(format!(
            "--gpu-node-label {:?}: expected KEY=VALUE",
            args.gpu_node_label
        ))
        .into());
    };
    if let Some(c) = &args.cache_capacity
        && kubegrid_modelcache::evict::parse_quantity(c).is_none_or(|n| n == 0)
    {
        return Err(UsageError(format!(
            "--cache-capacity {c:?} is not a size such as 500Gi, 800G or 1Ti"
        ))
        .into());
    }
    let opts = LayerOptions {
        namespace: args.namespace.clone(),
        cache_capacity: args.cache_capacity.clone(),
        gpu_node_label: (key.into(), value.into()),
        pod_monitors: args.pod_monitors,
        ..LayerOptions::new(&args.image)
    };
    let mut objects: Vec<Value> = vec![
        serde_json::to_value(kubegrid_serving::crd())?,
        serde_json::to_value(kubegrid_serving::prewarm_crd())?,
    ];
    objects.extend(layer::objects(&opts));
    if !args.no_token {
        objects.push(layer::token_secret(&opts.namespace, &token()?));
    }
    match output {
        Output::Json => {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Output::Text => {
            let docs = objects
                .iter()
                .map(serde_yaml::to_string)
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}
