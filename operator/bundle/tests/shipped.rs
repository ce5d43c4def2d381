//! The shipped offline-bundle/sources.yaml against the shipped playbooks: every artifact a
//! playbook task asks the bundle for (`binaries`, `archive`, `packages`, the container check's
//! rootfs) is produced, under that name and kind, by the sources of every release, so a user
//! who runs `kubegrid bundle build` with the shipped file gets a bundle the shipped playbooks
//! can apply. Packages (the `source: packages` path) come from `--include-os-packages`, so
//! they must be in every osPackages distro.

use std::collections::BTreeSet;

use kubegrid_bundle::Sources;
use kubegrid_plan::{CheckSpec, FileKind, Module, PLAYBOOKS, Playbook};

/// (manifest kind, name) of every artifact the playbooks ask for, whatever a task's `when:`
/// (each path a spec can pick must be served), and the playbook and task asking.
fn playbook_needs() -> Vec<(FileKind, Option<String>, String)> {
    let mut needs = Vec::new();
    for (name, _) in PLAYBOOKS {
        let playbook = Playbook::builtin(name).unwrap();
        for phase in &playbook.phases {
            for task in &phase.tasks {
                let at = format!(
                    "playbooks/{name}.yaml phase {} task `{}`",
                    phase.name, task.name
                );
                let asked: Vec<(FileKind, Option<String>)> = match &task.module {
                    Module::Packages(p) => p
                        .bundle
                        .iter()
                        .map(|n| (FileKind::Deb, Some(n.clone())))
                        .collect(),
                    Module::Binaries(b) => b
                        .bundle
                        .iter()
                        .map(|n| (FileKind::Binary, Some(n.clone())))
                        .collect(),
                    Module::Archive(a) => vec![(FileKind::Archive, Some(a.bundle.clone()))],
                    Module::Check(
                        CheckSpec::ContainerRuns { .. } | CheckSpec::GpuContainer { .. },
                    ) => {
                        vec![(FileKind::Rootfs, None)]
                    }
                    Module::NvidiaRunfile(r) => vec![(FileKind::Binary, Some(r.bundle.clone()))],
                    // The other modules take nothing from the bundle.
                    _ => Vec::new(),
                };
                needs.extend(asked.into_iter().map(|(k, n)| (k, n, at.clone())));
            }
        }
    }
    needs
}

/// What a bundle of `release` holds, as (manifest kind, name), with `distro`'s OS packages.
fn produced(sources: &Sources, release: &str, distro: &str) -> BTreeSet<(FileKind, String)> {
    let mut out = BTreeSet::new();
    for component in sources.releases[release].components.keys() {
        let c = &sources.components[component];
        for a in &c.artifacts {
            if let Some(name) = &a.name {
                out.insert((a.kind.file_kind(), name.clone()));
            }
            for e in &a.extract {
                out.insert((FileKind::Binary, e.name.clone()));
            }
        }
        for p in c.debs.iter().flat_map(|d| &d.packages) {
            match &p.rootfs {
                Some(r) => out.insert((FileKind::Rootfs, r.name.clone())),
                None => out.insert((FileKind::Deb, p.name.clone())),
            };
        }
    }
    for p in &sources.os_packages[distro].packages {
        out.insert((FileKind::Deb, p.name.clone()));
    }
    out
}

/// One line per playbook artifact that some release (with some distro's OS packages) lacks.
fn missing(sources: &Sources) -> Vec<String> {
    let needs = playbook_needs();
    let mut out = Vec::new();
    for release in sources.releases.keys() {
        for distro in sources.os_packages.keys() {
            let have = produced(sources, release, distro);
            for (kind, name, at) in &needs {
                let found = match name {
                    Some(n) => have.contains(&(*kind, n.clone())),
                    None => have.iter().any(|(k, _)| k == kind),
                };
                if !found {
                    out.push(format!(
                        "release {release} with osPackages {distro}: {at} asks for {} {}",
                        kind.as_str(),
                        name.as_deref().unwrap_or("(any)")
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn the_shipped_sources_produce_every_artifact_the_shipped_playbooks_ask_for() {
    let sources = Sources::builtin().unwrap();
    assert!(!sources.releases.is_empty() && !sources.os_packages.is_empty());
    let needs = playbook_needs();
    // The check reads the playbooks at all: the container runtime, registry, Kubernetes and
    // etcd tasks ask the bundle for files.
    for (kind, name) in [
        (FileKind::Binary, Some("registry")),
        (FileKind::Binary, Some("kubeadm")),
        (FileKind::Binary, Some("etcd")),
        (FileKind::Archive, Some("cni-plugins")),
        (FileKind::Rootfs, None),
    ] {
        assert!(
            needs
                .iter()
                .any(|(k, n, _)| *k == kind && n.as_deref() == name),
            "the install playbook no longer asks for {} {name:?}",
            kind.as_str()
        );
    }
    let missing = missing(&sources);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn a_playbook_artifact_the_sources_lack_is_reported() {
    let text = kubegrid_bundle::DEFAULT_SOURCES
        .replace(
            "- {member: registry, name: registry}",
            "- {member: registry, name: registry-v2}",
        )
        .replace("name: busybox\n", "name: busybox-rootfs\n");
    let mut sources = Sources::parse(&text, "edited sources").unwrap();
    let release = sources.releases.keys().next().unwrap().clone();
    let lines = missing(&sources);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("release {release}"))
                && l.contains("task `registry binary` asks for binary registry")),
        "{lines:#?}"
    );
    // A rootfs under another name still serves the container check; none at all does not.
    assert!(!lines.iter().any(|l| l.contains("rootfs")), "{lines:#?}");
    for r in sources.releases.values_mut() {
        r.components.remove("busybox");
    }
    let lines = missing(&sources);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("task `runc runs a container` asks for rootfs (any)")),
        "{lines:#?}"
    );
}
