//! etcd and control-plane membership of an installed cluster: the rules a change must meet
//! (checked from the journal before any host is contacted), members joining a running
//! external etcd, and members leaving it (see `kubernetes::remove`).

pub mod etcdctl;
pub mod join;
pub mod leave;
pub mod rules;

use kubegrid_journal::Journal;

use crate::{error::Error, kubernetes::MemberRecord, operation::HostSpec};

pub use rules::Change;

/// The Cluster annotation by which the operator takes `--force` for membership changes.
pub const FORCE_ANNOTATION: &str = "kubegrid.io/force-membership";

/// Whether a Cluster's annotations (`metadata.annotations`) ask for `--force`: the value
/// `"true"` exactly, as Kubernetes annotations spell booleans.
pub fn forced_by(annotations: &std::collections::BTreeMap<String, String>) -> bool {
    annotations
        .get(FORCE_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The etcd members of a set of hosts: those with the etcd role (external etcd), else the
/// control-plane ones (etcd stacked on them). The flag says whether etcd is external.
fn members<'a>(
    hosts: impl Iterator<Item = (&'a str, &'a [String])> + Clone,
) -> (bool, Vec<String>) {
    let with = |role: &str| -> Vec<String> {
        hosts
            .clone()
            .filter(|(_, roles)| roles.iter().any(|r| r == role))
            .map(|(n, _)| n.to_string())
            .collect()
    };
    let etcd = with("etcd");
    if etcd.is_empty() {
        (false, with("control-plane"))
    } else {
        (true, etcd)
    }
}

/// Checks the spec's etcd members against the installed cluster's (the journal's members) for
/// cluster `cluster`. A cluster the journal records no install of passes: the spec
/// validation's odd count applies to it instead.
pub async fn check_journal(
    journal: &Journal,
    cluster: &str,
    hosts: &[HostSpec],
    force: bool,
) -> Result<(), Error> {
    if journal.installed_version(cluster).await?.is_none() {
        return Ok(());
    }
    let recorded: Vec<(String, MemberRecord)> = journal
        .members(cluster)
        .await?
        .into_iter()
        .filter_map(|(name, json)| Some((name, serde_json::from_str(&json).ok()?)))
        .collect();
    let (was_external, before) = members(
        recorded
            .iter()
            .map(|(n, r)| (n.as_str(), r.roles.as_slice())),
    );
    let (is_external, after) = members(
        hosts
            .iter()
            .map(|h| (h.target.host.as_str(), h.roles.as_slice())),
    );
    let refuse = |message: String| Error::MembershipRefused {
        cluster: cluster.to_string(),
        message,
    };
    if was_external != is_external && !before.is_empty() {
        let name = |external: bool| if external { "external" } else { "stacked" };
        return Err(refuse(format!(
            "the cluster runs {} etcd and the spec asks for {}; the etcd topology of an installed cluster cannot change\n  hint: keep the etcd role on the Nodes as they were",
            name(was_external),
            name(is_external)
        )));
    }
    Change { before, after }.check(force).map_err(refuse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::SshTarget;

    fn host(name: &str, roles: &[&str]) -> HostSpec {
        HostSpec {
            target: SshTarget {
                cluster: "c".into(),
                host: name.into(),
                address: format!("10.0.0.{}", name.len()),
                port: 22,
                user: "root".into(),
                key_file: None,
                password: None,
                sudo: false,
                bastion: None,
            },
            roles: roles.iter().map(|r| r.to_string()).collect(),
            declared_arch: None,
            labels: Default::default(),
            taints: Vec::new(),
            gpu: Default::default(),
        }
    }

    async fn journal_with(dir: &std::path::Path, installed: bool, members: &[HostSpec]) -> Journal {
        let journal = Journal::open(&dir.join("journal.db")).await.unwrap();
        if installed {
            journal.put_installed_version("c", "1.31.4").await.unwrap();
        }
        for m in members {
            let record = MemberRecord::of(m).to_json();
            journal
                .put_member("c", &m.target.host, &record)
                .await
                .unwrap();
        }
        journal
    }

    #[tokio::test]
    async fn the_journal_members_are_the_cluster_before_the_change() {
        let dir = tempfile::tempdir().unwrap();
        let cp = |n: &str| host(n, &["control-plane", "etcd"]);
        let three = [cp("a"), cp("b"), cp("c")];
        let journal = journal_with(dir.path(), true, &three).await;
        // Removing two of three loses quorum; with --force too.
        let e = check_journal(&journal, "c", &three[2..], true)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("removing a and b leaves 1 of 3 etcd members"),
            "{e}"
        );
        assert!(matches!(
            check_journal(&journal, "c", &three[1..], false).await,
            Err(Error::MembershipRefused { .. })
        ));
        check_journal(&journal, "c", &three[1..], true)
            .await
            .unwrap();
        // Workers do not count; the same spec passes.
        let mut same = three.to_vec();
        same.push(host("w", &["worker"]));
        check_journal(&journal, "c", &same, false).await.unwrap();
        // The topology cannot change: no etcd Nodes any more means stacked.
        let stacked = [host("a", &["control-plane"])];
        let e = check_journal(&journal, "c", &stacked, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("runs external etcd and the spec asks for stacked"),
            "{e}"
        );
    }

    #[test]
    fn only_a_true_annotation_forces() {
        let with = |v: &str| {
            std::collections::BTreeMap::from([(FORCE_ANNOTATION.to_string(), v.to_string())])
        };
        assert!(forced_by(&with("true")));
        for v in ["false", "yes", "True", ""] {
            assert!(!forced_by(&with(v)), "{v}");
        }
        assert!(!forced_by(&Default::default()));
    }

    #[tokio::test]
    async fn a_cluster_not_installed_is_left_to_the_spec_validation() {
        let dir = tempfile::tempdir().unwrap();
        let cp = |n: &str| host(n, &["control-plane", "etcd"]);
        let journal = journal_with(dir.path(), false, &[cp("a"), cp("b"), cp("c")]).await;
        check_journal(&journal, "c", &[cp("a")], false)
            .await
            .unwrap();
    }
}
