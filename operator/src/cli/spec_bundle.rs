//! What the commands that run the engine over an installed cluster's hosts (`upgrade`,
//! `certs`, `reset`) open before any connection: the spec, and the bundle the agent comes from,
//! checked as `apply` checks it. Bad input stops here, before any host is contacted.

use std::path::Path;

use kubegrid_api::Manifest;
use kubegrid_engine::agent::Agents;
use kubegrid_plan::Bundle;

use super::{
    UsageError,
    apply::{BundleArgs, open_bundle},
};

/// The bundle `--bundle` names, or else the spec's `spec.bundle.source`, opened and checked
/// against the spec, with its agents. `why` ends the hint when neither names one (what the
/// command needs the bundle for).
pub fn open(
    file: &Path,
    manifest: &Manifest,
    args: &BundleArgs,
    why: &str,
) -> anyhow::Result<(Bundle, Agents)> {
    let given = match (&args.bundle, manifest.bundle_dir()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir,
        (None, None) => {
            return Err(UsageError(format!(
                "{}: the Cluster has no spec.bundle.source and no --bundle was given\n  hint: pass --bundle DIR, {why}",
                file.display()
            ))
            .into());
        }
    };
    // Errors about a packed bundle name the file given.
    super::packed::with_bundle(&given, |dir| {
        let bundle = open_bundle(&args.key(file), manifest, dir, &given)?;
        let agents = Agents::for_bundle(&bundle)?;
        Ok((bundle, agents))
    })
}
