//! The spec of `apply`/`plan`, validated as the cluster's state asks: a cluster the journal
//! records as installed has its etcd membership change checked against its members (quorum,
//! and an even count only with `--force`); any other gets the odd-count rule.

use std::path::Path;

use kubegrid_api::{Manifest, ValidateFor};

use super::journal::JournalArg;

/// Reads and validates the spec at `path`; refuses a membership change of an installed
/// cluster that breaks the rules. Only local files are read: no host is contacted.
pub async fn load(path: &Path, journal: &JournalArg, force: bool) -> anyhow::Result<Manifest> {
    let manifest = kubegrid_api::load_installed(path)?;
    // A journal that does not exist records no install, and is not created just to look.
    let installed = if journal.path().exists() {
        let journal = journal.open().await?;
        let checked = check(&journal, &manifest, force).await;
        journal.close().await;
        checked?
    } else {
        false
    };
    if !installed {
        manifest.validate(ValidateFor::Cli)?;
    }
    Ok(manifest)
}

/// Whether the cluster is installed, after checking its membership change.
async fn check(
    journal: &kubegrid_journal::Journal,
    manifest: &Manifest,
    force: bool,
) -> anyhow::Result<bool> {
    if journal.installed_version(manifest.name()).await?.is_none() {
        return Ok(false);
    }
    let hosts = kubegrid_engine::spec::hosts(manifest);
    kubegrid_engine::membership::check_journal(journal, manifest.name(), &hosts, force).await?;
    Ok(true)
}
