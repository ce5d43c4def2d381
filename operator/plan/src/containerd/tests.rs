use std::path::PathBuf;

use super::*;
use crate::bundle::Arch;

fn file(path: &str, kind: FileKind, version: &str) -> BundleFile {
    BundleFile {
        path: PathBuf::from(path),
        sha256: "a".repeat(64),
        size: 1,
        arch: Arch::Amd64,
        kind,
        name: Some(CONTAINERD.into()),
        version: Some(version.into()),
        component: None,
        source: None,
    }
}

/// Bookworm's containerd 1.6 package beside sid's 2.1 release archive, as the dev bundle has.
fn two_kinds() -> Manifest {
    Manifest {
        version: 1,
        name: None,
        kubernetes: None,
        files: vec![
            file(
                "debs/amd64/containerd_1.6.20~ds1-1+deb12u3_amd64.deb",
                FileKind::Deb,
                "1.6.20~ds1-1+deb12u3",
            ),
            file(
                "containerd/amd64/containerd-2.1.9-linux-amd64.tar.gz",
                FileKind::Archive,
                "2.1.9",
            ),
        ],
        images: Vec::new(),
    }
}

fn cluster(line: &str, source: ContainerdSource) -> ClusterContext {
    let mut c = ClusterContext::new("c", line).unwrap();
    c.containerd_source = source;
    c
}

#[test]
fn version_lines_ignore_epochs_and_debian_suffixes() {
    assert_eq!(version_line("1.6.20~ds1-1+deb12u3"), Some((1, 6)));
    assert_eq!(version_line("1:1.7.24~ds1-6"), Some((1, 7)));
    assert_eq!(version_line("2.1.9"), Some((2, 1)));
    assert_eq!(version_line("v2.0.0-rc.1"), Some((2, 0)));
    assert_eq!(version_line("2"), None);
    assert_eq!(version_line("latest"), None);
}

#[test]
fn the_source_picks_the_kind_and_the_line_the_version() {
    let bundle = two_kinds();
    assert_eq!(
        containerd_problem(&cluster("2.1", ContainerdSource::Archive), &bundle),
        None
    );
    assert_eq!(
        containerd_problem(&cluster("1.6", ContainerdSource::Packages), &bundle),
        None
    );
}

#[test]
fn a_line_the_bundle_lacks_is_refused_naming_what_it_has() {
    let bundle = two_kinds();
    let problem = containerd_problem(&cluster("1.7", ContainerdSource::Archive), &bundle).unwrap();
    for part in [
        "asks for containerd 1.7 from a release archive (kind archive) (source: archive)",
        "containerd 1.6.20~ds1-1+deb12u3 (deb amd64, debs/amd64/containerd_1.6.20~ds1-1+deb12u3_amd64.deb)",
        "containerd 2.1.9 (archive amd64, containerd/amd64/containerd-2.1.9-linux-amd64.tar.gz)",
        "hint: use a bundle with containerd 1.7 as a release archive",
        "or set spec.containerRuntime.containerd.version to 2.1",
    ] {
        assert!(problem.contains(part), "{part:?} missing from: {problem}");
    }
}

#[test]
fn the_right_line_of_the_other_kind_is_refused_with_a_source_hint() {
    let bundle = two_kinds();
    let problem = containerd_problem(&cluster("1.6", ContainerdSource::Archive), &bundle).unwrap();
    assert!(
        problem.contains(
            "or set spec.containerRuntime.source to packages (the bundle has 1.6 that way)"
        ),
        "{problem}"
    );
    let problem = containerd_problem(&cluster("2.1", ContainerdSource::Packages), &bundle).unwrap();
    assert!(
        problem.contains("from OS packages (kind deb or rpm) (source: packages)"),
        "{problem}"
    );
    assert!(
        problem.contains("or set spec.containerRuntime.source to archive"),
        "{problem}"
    );
}

#[test]
fn a_bundle_without_containerd_says_so() {
    let mut bundle = two_kinds();
    bundle.files.clear();
    let problem = containerd_problem(&cluster("2.1", ContainerdSource::Archive), &bundle).unwrap();
    assert!(
        problem.contains("the bundle has no containerd at all"),
        "{problem}"
    );
}

#[test]
fn only_containerd_is_pinned_to_the_specs_line() {
    let c = cluster("2.1", ContainerdSource::Archive);
    assert_eq!(pinned_line(&c, CONTAINERD), Some((2, 1)));
    assert_eq!(pinned_line(&c, "runc"), None);
    let f = file("x", FileKind::Archive, "2.1.9");
    assert!(on_line(&f, Some((2, 1))));
    assert!(!on_line(&f, Some((1, 7))));
    assert!(on_line(&f, None));
}

#[test]
fn the_source_predicate_follows_the_spec() {
    let host = crate::HostContext::default();
    let when = |yaml: &str| crate::playbook::from_yaml::<crate::When>(yaml).unwrap();
    let packages = cluster("1.6", ContainerdSource::Packages);
    assert!(when("{containerd_source: packages}").eval(&packages, &host));
    assert!(!when("{containerd_source: archive}").eval(&packages, &host));
}
