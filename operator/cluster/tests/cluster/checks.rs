//! Post-install checks against the fake: healthy, node not ready, DNS failing, and more.

use std::path::PathBuf;

use kubegrid_cluster::{
    CheckOptions, CheckResult, ExpectedNode, WORKER_LABEL, check_nodes_ready, check_pod_network,
    check_system_pods, run_checks,
};

use crate::{
    fake::{Behaviour, node, system_pod},
    fixtures::{SHORT, expected, healthy, options},
};

const ALL_CHECKS: [&str; 5] = [
    "api-readyz",
    "nodes-ready",
    "system-pods",
    "dns",
    "pod-network",
];

fn by_name<'a>(results: &'a [CheckResult], name: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no result named {name}: {results:#?}"))
}

fn assert_only_failure(results: &[CheckResult], failing: &str) {
    for result in results {
        assert_eq!(
            result.ok,
            result.name != failing,
            "unexpected outcome: {result:#?}"
        );
    }
}

/// Compares with tests/golden/<name>; `UPDATE_GOLDEN=1` rewrites the file.
fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "read {}: {err}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        golden,
        "{} differs; rerun with UPDATE_GOLDEN=1 if the change is intended",
        path.display()
    );
}

#[tokio::test]
async fn healthy_cluster_passes_every_check_and_cleans_up() {
    let fake = healthy();
    let results = run_checks(&fake.client(), &options(), &expected()).await;

    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ALL_CHECKS);
    assert!(results.iter().all(|r| r.ok), "{results:#?}");
    assert!(
        by_name(&results, "nodes-ready")
            .detail
            .contains("cp1, w1, w2"),
        "{results:#?}"
    );
    assert!(
        by_name(&results, "dns")
            .detail
            .contains("Address: 10.96.0.1"),
        "{results:#?}"
    );
    let network = &by_name(&results, "pod-network").detail;
    assert!(
        network.contains("node w2 fetched http://10.244.2.11:8080/ from pod on node w1"),
        "{network}"
    );

    assert!(fake.state().namespaces.contains("kubegrid-checks"));
    assert_eq!(
        fake.pod_names("kubegrid-checks"),
        Vec::<String>::new(),
        "probe pods must be deleted"
    );
    let created =
        serde_json::to_string_pretty(&fake.state().created_pods).expect("serialize") + "\n";
    assert_golden("probe-pods.json", &created);
}

#[tokio::test]
async fn not_ready_node_fails_nodes_ready_naming_it() {
    let fake = healthy();
    fake.add_node(node("w2", false, &[(WORKER_LABEL, "")], &[]));
    let results = run_checks(
        &fake.client(),
        &CheckOptions {
            nodes_timeout: SHORT,
            ..options()
        },
        &expected(),
    )
    .await;

    assert_only_failure(&results, "nodes-ready");
    let detail = &by_name(&results, "nodes-ready").detail;
    assert!(
        detail
            .contains("node w2: Ready=False (KubeletNotReady: container runtime network not ready"),
        "{detail}"
    );
    assert!(detail.contains("expected Ready=True"), "{detail}");
    assert!(
        !detail.contains("node w1") && !detail.contains("node cp1"),
        "{detail}"
    );
    // The network check still found two Ready nodes.
    assert!(
        by_name(&results, "pod-network").detail.contains("node cp1"),
        "{results:#?}"
    );
}

#[tokio::test]
async fn failing_dns_reports_the_pod_log_while_others_pass() {
    let fake = healthy();
    let nxdomain = "Server:\t\t10.96.0.10\n** server can't find kubernetes.default.svc.cluster.local: NXDOMAIN";
    // Rules match in order, so this one shadows the healthy nslookup rule.
    fake.state().rules.insert(
        0,
        (
            "nslookup".into(),
            Behaviour::Exit {
                succeed: false,
                log: nxdomain.into(),
            },
        ),
    );
    let results = run_checks(&fake.client(), &options(), &expected()).await;

    assert_only_failure(&results, "dns");
    let detail = &by_name(&results, "dns").detail;
    assert!(detail.contains(
        "nslookup kubernetes.default.svc.cluster.local failed in pod kubegrid-checks/kubegrid-dns-"
    ));
    assert!(detail.contains("(phase Failed)"), "{detail}");
    assert!(
        detail.contains(nxdomain),
        "log missing from detail: {detail}"
    );
    assert_eq!(fake.pod_names("kubegrid-checks"), Vec::<String>::new());
}

#[tokio::test]
async fn probe_pods_wait_for_the_service_account_of_a_new_namespace() {
    let fake = healthy();
    fake.state().pod_create_refusals = 2;
    let result = kubegrid_cluster::check_dns(&fake.client(), &options()).await;

    assert!(result.ok, "{result:#?}");
    assert_eq!(
        fake.requests_matching("POST /api/v1/namespaces/kubegrid-checks/pods")
            .len(),
        3
    );
}

#[tokio::test]
async fn readyz_is_retried_until_the_apiserver_is_ready() {
    let fake = healthy();
    fake.state().readyz_failures = 3;
    let results = run_checks(&fake.client(), &options(), &expected()).await;

    assert!(results.iter().all(|r| r.ok), "{results:#?}");
    assert_eq!(
        by_name(&results, "api-readyz").detail,
        "/readyz answered ok (attempt 4)"
    );
}

#[tokio::test]
async fn apiserver_not_ready_skips_the_probe_pod_checks() {
    let fake = healthy();
    fake.state().readyz_down = true;
    let results = run_checks(
        &fake.client(),
        &CheckOptions {
            readyz_timeout: SHORT,
            ..options()
        },
        &expected(),
    )
    .await;

    let readyz = by_name(&results, "api-readyz");
    assert!(!readyz.ok);
    assert!(
        readyz
            .detail
            .contains("last answer: 500: [-]etcd failed: reason withheld; readyz check failed;"),
        "{readyz:#?}"
    );
    assert!(readyz.detail.contains("expected \"ok\""), "{readyz:#?}");
    for name in ["dns", "pod-network"] {
        let result = by_name(&results, name);
        assert!(!result.ok);
        assert!(
            result.detail.starts_with("skipped: api-readyz failed"),
            "{result:#?}"
        );
    }
    assert!(by_name(&results, "nodes-ready").ok && by_name(&results, "system-pods").ok);
    assert!(
        fake.requests_matching("POST").is_empty(),
        "no pods may be created"
    );
}

#[tokio::test]
async fn pod_network_needs_two_schedulable_nodes() {
    let fake = healthy();
    fake.state().nodes.retain(|name, _| name == "cp1");
    fake.add_node(node("w1", false, &[], &[]));
    let result = check_pod_network(&fake.client(), &options()).await;

    assert!(!result.ok);
    assert_eq!(
        result.detail,
        "needs two Ready, schedulable nodes, found 1 (cp1) of 2 node(s); expected at least 2 for a cross-node test"
    );
    assert!(fake.requests_matching("POST").is_empty());
}

#[tokio::test]
async fn pod_network_fails_when_pods_cannot_reach_each_other() {
    let fake = healthy();
    fake.state()
        .rules
        .insert(0, ("wget".into(), Behaviour::Fetch { network_up: false }));
    let result = check_pod_network(&fake.client(), &options()).await;

    assert!(!result.ok);
    assert!(
        result
            .detail
            .contains("pod on node w2 could not fetch http://10.244.1.11:8080/"),
        "{result:#?}"
    );
    assert!(
        result
            .detail
            .contains("wget: can't connect to remote host (10.244.1.11)"),
        "{result:#?}"
    );
    assert_eq!(fake.pod_names("kubegrid-checks"), Vec::<String>::new());
}

#[tokio::test]
async fn system_pods_lists_the_pods_that_do_not_run() {
    let fake = healthy();
    fake.add_pod(system_pod("coredns-5d78c9869d-b2", "w2", false));
    let result = check_system_pods(
        &fake.client(),
        &CheckOptions {
            system_pods_timeout: SHORT,
            ..options()
        },
    )
    .await;

    assert!(!result.ok);
    assert_eq!(
        result.detail,
        "after 100ms, pods not running: coredns-5d78c9869d-b2: Running but containers not ready: \
         main (CrashLoopBackOff), expected all ready"
    );
}

#[tokio::test]
async fn nodes_ready_reports_missing_nodes_labels_and_taints() {
    let fake = healthy();
    let mut wanted = expected();
    wanted[1].labels.insert("gpu".into(), "h100".into());
    wanted[2]
        .taints
        .push(("dedicated".into(), Some("infer".into()), "NoExecute".into()));
    wanted.push(ExpectedNode {
        name: "w3".into(),
        roles: vec!["worker".into()],
        ..ExpectedNode::default()
    });
    let result = check_nodes_ready(
        &fake.client(),
        &CheckOptions {
            nodes_timeout: SHORT,
            ..options()
        },
        &wanted,
    )
    .await;

    assert!(!result.ok);
    for part in [
        "node w1: label gpu=a100, expected gpu=h100",
        "node w2: taint dedicated=infer:NoExecute absent (seen []), expected it",
        "node w3: not registered, expected a Node named w3",
    ] {
        assert!(
            result.detail.contains(part),
            "{part:?} not in {:?}",
            result.detail
        );
    }
    assert!(!result.detail.contains("node cp1"), "{}", result.detail);
}

#[test]
fn check_results_serialize_in_camel_case() {
    let result = CheckResult {
        name: "dns".into(),
        ok: true,
        detail: "resolved".into(),
        duration_ms: 12,
    };
    assert_eq!(
        serde_json::to_value(&result).expect("serialize"),
        serde_json::json!({ "name": "dns", "ok": true, "detail": "resolved", "durationMs": 12 })
    );
}
