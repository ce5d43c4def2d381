//! The chart's CRDs (`charts/kubegrid/crds/`, what `helm install` creates) on a REAL API
//! server (apiextensions-apiserver 1.36 on etcd, e2e/real-apiserver): kubectl 1.36 applies
//! them without a warning, both become Established, and the server serves both kinds.

use std::path::Path;

use kubegrid_real_apiserver::RealApiServer;

#[tokio::test]
async fn the_charts_crds_apply_silently_to_a_real_server_and_become_established() {
    let test = "the_charts_crds_apply_silently_to_a_real_server_and_become_established";
    let Some(server) = RealApiServer::for_test(test).await else {
        return;
    };
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kubegrid/crds");
    // As the chart's README tells users to after an upgrade.
    let output = server
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&crds)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kubectl apply: {stderr}");
    assert!(
        stderr.trim().is_empty(),
        "kubectl apply of the chart's CRDs must be silent; it printed:\n{stderr}"
    );
    for name in ["clusters.kubegrid.io", "nodes.kubegrid.io"] {
        server.wait_established(name).await.unwrap();
    }
    // Discovery (what kubectl maps kinds with) lists both kinds and their short names.
    let output = server
        .kubectl()
        .args(["api-resources", "--api-group=kubegrid.io", "--no-headers"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let listed = String::from_utf8_lossy(&output.stdout);
    for (plural, short) in [("clusters", "kgc"), ("nodes", "kgn")] {
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([plural, short])),
            "{plural} ({short}) missing from:\n{listed}"
        );
    }
    server.stop().await;
}
