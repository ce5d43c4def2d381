//! `kubegrid apply` and `plan` keep a cluster at the Kubernetes version it runs: a spec that
//! asks for another one is refused before any host is contacted, pointing at
//! `kubegrid upgrade`, which moves versions node by node. The installed version is the one
//! the engine recorded in the journal after `kubeadm init` (see `kubernetes::finish`) and
//! after each `kubeadm upgrade apply` (see `upgrade::steps`).

use kubegrid_journal::Journal;

use crate::error::Error;

/// `version` as Kubernetes prints it: with a leading `v`.
pub fn display(version: &str) -> String {
    format!("v{}", version.trim().trim_start_matches('v'))
}

/// Whether two version strings name the same version (`v1.31.4` and `1.31.4` do).
pub fn same(a: &str, b: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v.trim().trim_start_matches('v')).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim().trim_start_matches('v') == b.trim().trim_start_matches('v'),
    }
}

/// Refuses `requested` when `cluster` runs `installed` and they differ.
pub fn check(cluster: &str, installed: Option<&str>, requested: &str) -> Result<(), Error> {
    match installed {
        Some(installed) if !same(installed, requested) => Err(Error::VersionChangeNeedsUpgrade {
            cluster: cluster.to_string(),
            installed: display(installed),
            requested: display(requested),
        }),
        _ => Ok(()),
    }
}

/// The version the journal records as installed for `cluster`, after checking that
/// `requested` is that version (or that none is recorded yet).
pub async fn check_journal(
    journal: &Journal,
    cluster: &str,
    requested: &str,
) -> Result<Option<String>, Error> {
    let installed = journal.installed_version(cluster).await?;
    check(cluster, installed.as_deref(), requested)?;
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_version_passes_whatever_its_prefix() {
        assert!(check("c", Some("1.31.4"), "v1.31.4").is_ok());
        assert!(check("c", None, "v1.32.0").is_ok(), "nothing installed yet");
    }

    #[test]
    fn another_version_is_refused_naming_both() {
        let err = check("fleet/gpu", Some("1.31.4"), "v1.32.0").unwrap_err();
        assert!(err.is_input());
        let text = err.to_string();
        assert!(
            text.contains("fleet/gpu")
                && text.contains("v1.31.4")
                && text.contains("v1.32.0")
                && text.contains("kubegrid upgrade apply"),
            "{text}"
        );
    }
}
