//! `kubegrid crd`: the CustomResourceDefinitions the operator serves, generated from the same
//! types the CLI reads its spec with.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::{Output, emit};

/// The first line of each file that `--output-dir` writes.
const GENERATED: &str = "# Generated from kubegrid's API types by `kubegrid crd --output-dir DIR`; \
                         do not edit.\n";

/// Arguments of `kubegrid crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write DIR/clusters.kubegrid.io.yaml and DIR/nodes.kubegrid.io.yaml (the Helm chart's
    /// crds/ directory holds these) instead of printing both CRDs to stdout.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Print the serving layer's CRDs (LLMService and ModelPrewarm, serving.kubegrid.io)
    /// instead, for `kubegrid serving-controller` and `kubegrid model-cache`; the chart does
    /// not install them yet.
    #[arg(long, conflicts_with = "output_dir")]
    pub serving: bool,
}

/// Prints both CRDs, Cluster first, as one multi-document YAML stream (with `-o json`, as
/// one `v1` List), or writes one file per CRD to `--output-dir`.
pub fn run(args: &CrdArgs, output: Output) -> anyhow::Result<()> {
    if args.serving {
        match output {
            Output::Json => {
                let items = [kubegrid_serving::crd(), kubegrid_serving::prewarm_crd()];
                let list = json!({ "apiVersion": "v1", "kind": "List", "items": items });
                println!("{}", serde_json::to_string_pretty(&list)?);
            }
            Output::Text => print!(
                "{}---\n{}",
                kubegrid_serving::crd_yaml()?,
                kubegrid_serving::prewarm_crd_yaml()?
            ),
        }
        return Ok(());
    }
    let crds = kubegrid_api::crds();
    if let Some(dir) = &args.output_dir {
        return write_all(dir, &crds, output);
    }
    match output {
        Output::Json => {
            let list = json!({ "apiVersion": "v1", "kind": "List", "items": crds });
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Output::Text => {
            let documents = crds
                .iter()
                .map(kubegrid_api::crd_yaml)
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", documents.join("---\n"));
        }
    }
    Ok(())
}

fn write_all(
    dir: &Path,
    crds: &[kubegrid_api::CustomResourceDefinition],
    output: Output,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the output directory {}", dir.display()))?;
    let mut written = Vec::new();
    for crd in crds {
        let path = dir.join(kubegrid_api::crd_file_name(crd));
        let text = format!("{GENERATED}{}", kubegrid_api::crd_yaml(crd)?);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path.display().to_string());
    }
    emit(output, &json!({ "files": written }), || {
        written.iter().map(|p| format!("wrote {p}\n")).collect()
    })
}
