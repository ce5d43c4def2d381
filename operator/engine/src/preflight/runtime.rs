//! The runtime-conflict check: no other container runtime on the host, and nothing that would
//! fight the containerd the spec's source installs.

use kubegrid_plan::{CONFLICTING_PACKAGES, CONFLICTING_PATHS, CONTAINERD, ContainerdSource};

use super::{Check, Finding, Subject, host::each};

/// What `source: archive` writes itself: on a re-run they are kubegrid's own, not another
/// runtime's. Any containerd there before kubegrid is replaced by the bundle's, under
/// kubegrid's unit, which is what the spec asks for.
pub(super) const ARCHIVE_PATHS: &[&str] = &[
    "/usr/local/bin/containerd",
    "/etc/systemd/system/containerd.service",
];

pub(super) struct RuntimeConflict;
impl Check for RuntimeConflict {
    fn name(&self) -> &'static str {
        "runtime-conflict"
    }
    fn describe(&self) -> &'static str {
        "no other container runtime (Docker, containerd.io, CRI-O, or with source archive the distribution's containerd) is installed"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let archive = h.containerd_source == ContainerdSource::Archive;
            let mut seen: Vec<String> = CONFLICTING_PACKAGES
                .iter()
                .filter_map(|p| h.facts.packages.get(*p).map(|v| format!("package {p} {v}")))
                .collect();
            // The distribution's containerd package and the release archive would both be
            // containerd.service on /run/containerd, from different binaries; an upgrade of
            // the package would also restart kubegrid's containerd under the package's
            // scripts.
            let distro = h.facts.packages.get(CONTAINERD).filter(|_| archive);
            if let Some(v) = distro {
                seen.push(format!(
                    "package {CONTAINERD} {v} with spec.containerRuntime.source archive"
                ));
            }
            seen.extend(
                CONFLICTING_PATHS
                    .iter()
                    .filter(|p| !(archive && ARCHIVE_PATHS.contains(p)))
                    .filter(|p| h.facts.paths.get(**p).copied().unwrap_or(false))
                    .map(|p| p.to_string()),
            );
            (!seen.is_empty()).then(|| {
                let mut hint = "remove it first; two runtimes fight over containerd's socket and cgroups".to_string();
                if distro.is_some() {
                    hint.push_str(&format!(
                        " (apt-get remove {CONTAINERD}), or set spec.containerRuntime.source to packages to keep the distribution's containerd"
                    ));
                } else if !archive {
                    hint.push_str(
                        " (with spec.containerRuntime.source archive, kubegrid replaces /usr/local/bin/containerd and its unit with the bundle's)",
                    );
                }
                (seen.join(", "), "no other container runtime".into(), hint)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use kubegrid_agent::facts::Facts;

    use super::*;

    fn findings(facts: &Facts, source: ContainerdSource) -> Vec<Finding> {
        let roles = vec!["worker".to_string()];
        let subject = Subject {
            name: "w1",
            roles: &roles,
            declared_arch: None,
            facts,
            clock_offset_ms: 0,
            address: "10.0.0.1",
            kubernetes: None,
            containerd_source: source,
            containerd_line: (2, 1),
            etcd_version: None,
            gpu: None,
            gpu_node: false,
            gpu_required: false,
            runtimes: &[],
        };
        RuntimeConflict.run(&[subject])
    }

    fn with_paths(paths: &[&str]) -> Facts {
        let mut f = Facts::default();
        for p in CONFLICTING_PATHS {
            f.paths.insert(p.to_string(), paths.contains(p));
        }
        f
    }

    #[test]
    fn kubegrids_own_archive_install_is_no_conflict_on_a_rerun() {
        let f = with_paths(ARCHIVE_PATHS);
        assert!(findings(&f, ContainerdSource::Archive).is_empty());
        let refused = findings(&f, ContainerdSource::Packages);
        assert_eq!(refused.len(), 1, "{refused:#?}");
        assert!(
            refused[0].seen.contains("/usr/local/bin/containerd"),
            "{refused:#?}"
        );
        assert!(refused[0].hint.contains("source archive"), "{refused:#?}");
    }

    #[test]
    fn another_runtime_is_refused_whatever_the_source() {
        let mut f = with_paths(&["/usr/bin/dockerd"]);
        f.packages.insert("docker-ce".into(), "27.0".into());
        for source in [ContainerdSource::Archive, ContainerdSource::Packages] {
            let hits = findings(&f, source);
            assert_eq!(hits.len(), 1, "{hits:#?}");
            assert!(hits[0].seen.contains("package docker-ce 27.0"), "{hits:#?}");
            assert!(hits[0].seen.contains("/usr/bin/dockerd"), "{hits:#?}");
        }
    }

    #[test]
    fn the_distributions_containerd_is_refused_only_with_source_archive() {
        let mut f = with_paths(&[]);
        f.packages
            .insert("containerd".into(), "1.6.20~ds1-1+deb12u3".into());
        assert!(findings(&f, ContainerdSource::Packages).is_empty());
        let hits = findings(&f, ContainerdSource::Archive);
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert!(
            hits[0].seen.contains(
                "package containerd 1.6.20~ds1-1+deb12u3 with spec.containerRuntime.source archive"
            ),
            "{hits:#?}"
        );
        assert!(
            hits[0].hint.contains("apt-get remove containerd"),
            "{hits:#?}"
        );
        assert!(hits[0].hint.contains("source to packages"), "{hits:#?}");
    }
}
