//! What the tests of sources with a listed file set (`https://`, `s3://`) share: two
//! daemons caching one model, their coordinator Leases on the TEST STAND-IN API server.

use std::{net::IpAddr, time::Duration};

use kubegrid_modelcache::{
    daemon::{Config, Daemon},
    hub::{Hub, content_commit},
    layout::ModelDir,
};
use kubegrid_serving::ModelSource;

/// Daemons `gpu-a` and `gpu-b`, each with a hub from `hub`, cache `model` together; both
/// must end ready at the commit of its file list. Gives each node's bytes of `path`.
pub async fn two_daemons_cache(
    model: &ModelSource,
    hub: impl Fn() -> Hub,
    path: &str,
) -> Vec<Vec<u8>> {
    let fake = kubegrid_fake_apiserver::FakeCluster::new();
    let roots = tempfile::tempdir().unwrap();
    let mut daemons = Vec::new();
    for node in ["gpu-a", "gpu-b"] {
        let cfg = Config {
            node: node.into(),
            advertise: IpAddr::from([127, 0, 0, 1]),
            fanout_port: 0,
            control_port: 0,
            root: roots.path().join(node),
            namespace: "kubegrid-system".into(),
            token: "t0ken".into(),
            lease_duration: Duration::from_millis(1500),
            hub: hub(),
            upload_limit: None,
            download_limit: None,
            capacity: None,
            whole_files: false,
        };
        daemons.push(Daemon::start(cfg, fake.client_as(node)).await.unwrap());
    }
    let patience = Duration::from_secs(60);
    let (a, b) = tokio::join!(
        tokio::time::timeout(patience, daemons[0].cache(model)),
        tokio::time::timeout(patience, daemons[1].cache(model)),
    );
    let commit = content_commit(&model.files);
    assert_eq!(a.expect("in time").unwrap(), commit);
    assert_eq!(b.expect("in time").unwrap(), commit);
    ["gpu-a", "gpu-b"]
        .iter()
        .map(|node| {
            let dir = ModelDir::new(&roots.path().join(node), &model.uri);
            assert_eq!(dir.ready_commit().as_deref(), Some(commit.as_str()));
            std::fs::read(dir.path().join("current").join(path)).unwrap()
        })
        .collect()
}
