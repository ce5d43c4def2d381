//! The version-pair table: (from, workers, to, etcd from → target, containerd, bundle gaps) →
//! the control plane's kubeadm path, each worker's kubelet path, the etcd path, and the
//! refusals (blocker rule ids). The planner is version agnostic, so rows go outside the
//! minors kubegrid supports (1.30–1.35) too.

use kubegrid_upgrade::{ClusterState, Policy, plan};

use crate::common::{apply_path, bundle_without, cp, etcd_path, roll_path, rules, targets, worker};

struct Row {
    name: &'static str,
    /// Control plane (apiserver, kubeadm, kubelet) version.
    from: &'static str,
    /// Each worker's kubelet version.
    workers: &'static [&'static str],
    to: &'static str,
    /// (current external etcd, etcd target).
    etcd: (&'static str, Option<&'static str>),
    /// (current containerd, containerd target).
    containerd: (&'static str, Option<&'static str>),
    /// Versions taken out of the test bundle.
    drop: &'static [&'static str],
    /// `kubeadm upgrade apply` versions, in order.
    apply: &'static [&'static str],
    /// Per worker, its roll versions in order.
    worker_paths: &'static [&'static [&'static str]],
    /// etcd versions the members go through.
    etcd_path: &'static [&'static str],
    /// Blocker rule ids, sorted.
    refused: &'static [&'static str],
}

const C: (&str, Option<&str>) = ("2.1.9", None);
const E: (&str, Option<&str>) = ("3.5.30", None);

const ROWS: &[Row] = &[
    Row {
        name: "one minor",
        from: "1.30.14",
        workers: &["1.30.14"],
        to: "1.31.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.31.4"],
        worker_paths: &[&["1.31.4"]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "two minors: two kubeadm steps, the intermediate at its newest patch",
        from: "1.30.14",
        workers: &["1.30.14"],
        to: "1.32.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.31.12", "1.32.4"],
        worker_paths: &[&["1.32.4"]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "the e2e: 1.31 -> 1.33, etcd 3.4 -> 3.5, containerd 1.6 -> 2.1",
        from: "1.31.4",
        workers: &["1.31.4", "1.31.4"],
        to: "1.33.4",
        etcd: ("3.4.23", Some("3.5.30")),
        containerd: ("1.6.20", Some("2.1.9")),
        drop: &[],
        apply: &["1.32.4", "1.33.4"],
        worker_paths: &[&["1.33.4"], &["1.33.4"]],
        etcd_path: &["3.5.30"],
        refused: &[],
    },
    Row {
        name: "Cluster API's example: 1.29 -> 1.33, workers 1.29 -> 1.32 -> 1.33",
        from: "1.29.15",
        workers: &["1.29.15"],
        to: "1.33.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.30.14", "1.31.12", "1.32.4", "1.33.4"],
        worker_paths: &[&["1.32.4", "1.33.4"]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "three minors: workers move once",
        from: "1.29.15",
        workers: &["1.29.15"],
        to: "1.32.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.30.14", "1.31.12", "1.32.4"],
        worker_paths: &[&["1.32.4"]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "five minors: workers catch up to 1.31 before 1.32",
        from: "1.28.15",
        workers: &["1.28.15"],
        to: "1.33.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.29.15", "1.30.14", "1.31.12", "1.32.4", "1.33.4"],
        worker_paths: &[&["1.31.12", "1.33.4"]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "workers already behind the control plane",
        from: "1.30.14",
        workers: &["1.28.15", "1.30.14"],
        to: "1.32.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.31.12", "1.32.4"],
        worker_paths: &[&["1.31.12", "1.32.4"], &["1.32.4"]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "1.31 -> 1.35 with etcd crossing to 3.6 through 3.5.26+",
        from: "1.31.4",
        workers: &["1.31.4"],
        to: "1.35.1",
        etcd: ("3.5.16", Some("3.6.5")),
        containerd: C,
        drop: &[],
        apply: &["1.32.4", "1.33.4", "1.34.2", "1.35.1"],
        worker_paths: &[&["1.34.2", "1.35.1"]],
        etcd_path: &["3.5.30", "3.6.5"],
        refused: &[],
    },
    Row {
        name: "etcd 3.4 -> 3.6 goes through 3.5",
        from: "1.33.4",
        workers: &[],
        to: "1.34.2",
        etcd: ("3.4.23", Some("3.6.5")),
        containerd: C,
        drop: &[],
        apply: &["1.34.2"],
        worker_paths: &[],
        etcd_path: &["3.5.30", "3.6.5"],
        refused: &[],
    },
    Row {
        name: "patch upgrade",
        from: "1.33.1",
        workers: &["1.33.1"],
        to: "1.33.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.33.4"],
        worker_paths: &[&["1.33.4"]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "at target: nothing",
        from: "1.33.4",
        workers: &["1.33.4"],
        to: "1.33.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &[],
        worker_paths: &[&[]],
        etcd_path: &[],
        refused: &[],
    },
    Row {
        name: "minor downgrade",
        from: "1.32.4",
        workers: &["1.32.4"],
        to: "1.31.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &[],
        worker_paths: &[&[]],
        etcd_path: &[],
        refused: &["downgrade"],
    },
    Row {
        name: "patch downgrade",
        from: "1.33.4",
        workers: &["1.33.4"],
        to: "1.33.1",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &[],
        worker_paths: &[&[]],
        etcd_path: &[],
        refused: &["downgrade-patch"],
    },
    Row {
        name: "missing intermediate minor",
        from: "1.31.4",
        workers: &["1.31.4"],
        to: "1.33.4",
        etcd: E,
        containerd: C,
        drop: &["1.32.4"],
        apply: &["1.33.4"],
        worker_paths: &[&["1.33.4"]],
        etcd_path: &[],
        refused: &["bundle-missing"],
    },
    Row {
        name: "target not in the bundle",
        from: "1.33.4",
        workers: &["1.33.4"],
        to: "1.33.9",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.33.9"],
        worker_paths: &[&["1.33.9"]],
        etcd_path: &[],
        refused: &["bundle-missing"],
    },
    Row {
        name: "a worker out of skew now",
        from: "1.31.4",
        workers: &["1.27.16"],
        to: "1.32.4",
        etcd: E,
        containerd: C,
        drop: &[],
        apply: &["1.32.4"],
        worker_paths: &[&["1.31.4", "1.32.4"]],
        etcd_path: &[],
        refused: &["skew-kubelet-older"],
    },
    Row {
        name: "etcd 3.6 without a 3.5.26+ to stop at",
        from: "1.33.4",
        workers: &[],
        to: "1.34.2",
        etcd: ("3.5.16", Some("3.6.5")),
        containerd: C,
        drop: &["3.5.30"],
        apply: &["1.34.2"],
        worker_paths: &[],
        etcd_path: &[],
        refused: &["etcd-below-minimum", "etcd-path"],
    },
    Row {
        name: "etcd 3.4 -> 3.6 with no 3.5 in the bundle",
        from: "1.33.4",
        workers: &[],
        to: "1.34.2",
        etcd: ("3.4.23", Some("3.6.5")),
        containerd: C,
        drop: &["3.5.16", "3.5.30"],
        apply: &["1.34.2"],
        worker_paths: &[],
        etcd_path: &[],
        refused: &["bundle-missing", "etcd-below-minimum"],
    },
    Row {
        name: "etcd 3.6 with Kubernetes 1.33 is off kubeadm's table",
        from: "1.32.4",
        workers: &[],
        to: "1.33.4",
        etcd: ("3.5.30", Some("3.6.5")),
        containerd: C,
        drop: &[],
        apply: &["1.33.4"],
        worker_paths: &[],
        etcd_path: &["3.6.5"],
        refused: &["etcd-policy"],
    },
    Row {
        name: "containerd 1.x past Kubernetes 1.35",
        from: "1.35.1",
        workers: &[],
        to: "1.36.0",
        etcd: ("3.6.5", None),
        containerd: ("1.7.24", Some("1.7.24")),
        drop: &[],
        apply: &["1.36.0"],
        worker_paths: &[],
        etcd_path: &[],
        refused: &["containerd-unsupported"],
    },
    Row {
        name: "a 1.35 roll would keep containerd 1.6 and cannot take 2.3 yet",
        from: "1.34.2",
        workers: &[],
        to: "1.36.0",
        etcd: ("3.6.5", None),
        containerd: ("1.6.39", Some("2.3.0")),
        drop: &[],
        apply: &["1.35.1", "1.36.0"],
        worker_paths: &[],
        etcd_path: &[],
        refused: &["containerd-roll"],
    },
    Row {
        name: "containerd 1.7 -> 2.2 with 1.35 -> 1.36",
        from: "1.35.1",
        workers: &["1.35.1"],
        to: "1.36.0",
        etcd: ("3.6.5", None),
        containerd: ("1.7.24", Some("2.2.1")),
        drop: &[],
        apply: &["1.36.0"],
        worker_paths: &[&["1.36.0"]],
        etcd_path: &[],
        refused: &[],
    },
];

fn state_of(row: &Row) -> ClusterState {
    let mut nodes: Vec<_> = (1..=3)
        .map(|i| cp(&format!("cp-{i}"), row.from, row.etcd.0, row.containerd.0))
        .collect();
    for (i, k) in row.workers.iter().enumerate() {
        nodes.push(worker(&format!("w-{}", i + 1), k, row.containerd.0));
    }
    crate::common::cluster(nodes)
}

#[test]
fn version_pairs_give_the_expected_paths_and_refusals() {
    assert!(ROWS.len() >= 15);
    let mut failures = Vec::new();
    for row in ROWS {
        let p = plan(
            &state_of(row),
            &targets(row.to, row.etcd.1, row.containerd.1),
            &bundle_without(row.drop),
            &Policy::default(),
        );
        let workers: Vec<Vec<String>> = (1..=row.workers.len())
            .map(|i| roll_path(&p, &format!("w-{i}")))
            .collect();
        let got = (apply_path(&p), workers, etcd_path(&p), rules(&p));
        let want = (
            row.apply.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            row.worker_paths
                .iter()
                .map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            row.etcd_path
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            row.refused
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
        if got != want {
            failures.push(format!(
                "{}:\n  got  {got:?}\n  want {want:?}\n  blockers: {:#?}",
                row.name, p.blockers
            ));
        }
        assert_eq!(p.can_run(), row.refused.is_empty(), "{}", row.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
