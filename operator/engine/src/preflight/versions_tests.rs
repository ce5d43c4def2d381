use kubegrid_agent::facts::Facts;

use super::{Subject, run};

fn host(name: &str, joined: bool, containerd: &str, etcd: Option<&str>) -> Facts {
    let mut f = Facts {
        hostname: name.into(),
        ..Facts::default()
    };
    f.paths.insert(kubegrid_plan::JOIN_DONE.into(), joined);
    f.versions
        .insert("/usr/local/bin/containerd".into(), containerd.into());
    if let Some(e) = etcd {
        f.versions.insert("/usr/local/bin/etcd".into(), e.into());
    }
    f
}

fn findings(facts: &Facts, roles: &[String], etcd_target: Option<&semver::Version>) -> Vec<String> {
    let subject = Subject {
        name: &facts.hostname,
        roles,
        declared_arch: None,
        facts,
        clock_offset_ms: 0,
        address: "10.0.0.1",
        kubernetes: None,
        containerd_source: kubegrid_plan::ContainerdSource::Archive,
        containerd_line: (2, 1),
        etcd_version: etcd_target,
        gpu: None,
        gpu_node: false,
        gpu_required: false,
        runtimes: &[],
    };
    run(&[subject], &[])
        .into_iter()
        .filter(|f| f.check == super::VERSION_CHANGE)
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn a_joined_host_on_another_containerd_line_is_refused_naming_upgrade() {
    let roles = vec!["worker".to_string()];
    let found = findings(&host("w-1", true, "v1.6.20", None), &roles, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("containerd 1.6 running")
            && found[0].contains("containerd 2.1")
            && found[0].contains("kubegrid upgrade apply"),
        "{}",
        found[0]
    );
    assert!(findings(&host("w-1", true, "v2.1.9", None), &roles, None).is_empty());
    // A host that never joined gets the spec's containerd: that is an install, not a move.
    assert!(findings(&host("w-1", false, "v1.6.20", None), &roles, None).is_empty());
}

#[test]
fn an_etcd_member_on_another_etcd_line_is_refused() {
    let roles = vec!["control-plane".to_string(), "etcd".to_string()];
    let target = semver::Version::new(3, 5, 30);
    let found = findings(
        &host("cp-1", true, "v2.1.9", Some("v3.4.23")),
        &roles,
        Some(&target),
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("etcd 3.4 running") && found[0].contains("etcd 3.5"),
        "{}",
        found[0]
    );
    assert!(
        findings(
            &host("cp-1", true, "v2.1.9", Some("v3.5.16")),
            &roles,
            Some(&target)
        )
        .is_empty(),
        "a patch release on the same line is apply's to make"
    );
}
