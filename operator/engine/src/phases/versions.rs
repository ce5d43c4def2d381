//! After the playbook: the kubelet and containerd versions each host runs, as the installed
//! binaries report them (`--version`), for the operator's `Node.status.versions`. One
//! read-only round trip per host that runs them; a host whose answer is missing keeps no
//! versions and is not failed for it.

use std::path::PathBuf;

use kubegrid_agent::protocol::{Action, FactsArgs, Task};

use super::fan_out::{Job, fan_out};
use crate::operation::{Mode, Run};

/// The phase name in progress events and the journal.
pub const PHASE: &str = "versions";

/// Where each component's binary may be, in the order looked at: the release archive
/// (kubegrid's default) puts containerd in /usr/local/bin, the bundle's packages in /usr/bin.
/// /usr/local/bin comes first because it is the one that runs when both are there: kubegrid's
/// unit starts it, and it is first in systemd's PATH.
pub const BINARIES: &[(&str, &[&str])] = &[
    ("kubelet", &["/usr/bin/kubelet"]),
    (
        "containerd",
        &["/usr/local/bin/containerd", "/usr/bin/containerd"],
    ),
];

/// Reads the versions on every host still standing that runs a kubelet (control-plane and
/// worker roles), into its report, after the install playbook or an upgrade roll. A plan changes nothing, so it
/// has nothing new to read; a reset removes what there was to read.
pub async fn read(run: &mut Run) {
    let changes_versions =
        ["install", crate::upgrade::PLAYBOOK].contains(&run.req.playbook.name.as_str());
    if run.req.mode == Mode::Plan || !changes_versions {
        return;
    }
    let paths: Vec<PathBuf> = BINARIES
        .iter()
        .flat_map(|(_, paths)| paths.iter().map(PathBuf::from))
        .collect();
    let jobs: Vec<Job> = run
        .live()
        .into_iter()
        .filter(|&i| {
            let h = &run.req.hosts[i];
            h.has_role("control-plane") || h.has_role("worker")
        })
        .map(|index| {
            Job::read_only(
                index,
                PHASE,
                vec![Task {
                    name: "read kubelet and containerd versions".into(),
                    action: Action::Facts(FactsArgs {
                        versions: paths.clone(),
                        ..FactsArgs::default()
                    }),
                    always: false,
                }],
            )
        })
        .collect();
    if jobs.is_empty() {
        return;
    }
    for d in fan_out(run, PHASE, jobs).await {
        let host = run.reports[d.index].name.clone();
        match d.result.map(|o| (o.failure, o.facts)) {
            Ok((None, Some(facts))) => {
                run.reports[d.index].versions = components(&facts.versions);
            }
            Ok((Some(why), _)) => tracing::warn!(%host, "reading versions failed: {why}"),
            Ok((None, None)) => {
                tracing::warn!(%host, "reading versions: the agent returned no facts")
            }
            Err(e) => tracing::warn!(%host, "reading versions failed: {e}"),
        }
    }
}

/// The version of each component from the versions the agent found, by binary path.
pub fn components(
    found: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    BINARIES
        .iter()
        .filter_map(|(component, paths)| {
            paths
                .iter()
                .find_map(|p| found.get(*p))
                .map(|v| (component.to_string(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn components_take_the_first_binary_found() {
        let found = BTreeMap::from([
            ("/usr/bin/kubelet".to_string(), "v1.31.4".to_string()),
            (
                "/usr/local/bin/containerd".to_string(),
                "v1.7.24".to_string(),
            ),
        ]);
        assert_eq!(
            components(&found),
            BTreeMap::from([
                ("containerd".to_string(), "v1.7.24".to_string()),
                ("kubelet".to_string(), "v1.31.4".to_string()),
            ])
        );
        assert!(components(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_archive_containerd_wins_over_a_packaged_one_left_beside_it() {
        let found = BTreeMap::from([
            ("/usr/bin/containerd".to_string(), "v1.6.20~ds1".to_string()),
            (
                "/usr/local/bin/containerd".to_string(),
                "v2.1.9".to_string(),
            ),
        ]);
        assert_eq!(components(&found)["containerd"], "v2.1.9");
    }
}
