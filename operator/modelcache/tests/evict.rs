//! The cache's capacity with a real daemon (its Leases on the TEST STAND-IN API server, the
//! models from the TEST STAND-IN hub): a model nothing wants any more makes room for a new
//! one, and a model that does not fit beside the ones in use is refused, not squeezed in.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::atomic::Ordering,
    time::Duration,
};

use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_hub_standin::Hub as StandIn;
use kubegrid_modelcache::{
    daemon::{Config, Daemon},
    hub::{Hub, Retry},
    layout::ModelDir,
};
use kubegrid_serving::ModelSource;

const COMMIT: &str = "e41c7e41c7e41c7e41c7e41c7e41c7e41c7e41c7";
const SIZE: usize = 1 << 20;
const PATIENCE: Duration = Duration::from_secs(60);

fn model(name: &str) -> ModelSource {
    ModelSource {
        uri: format!("hf://acme/{name}@main"),
        files: Vec::new(),
        size_limit: None,
    }
}

#[tokio::test]
async fn unused_models_make_room_and_a_model_that_cannot_fit_is_refused() {
    let src = tempfile::tempdir().unwrap();
    let hub = StandIn::start().await.unwrap();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let path = src.path().join(name);
        std::fs::write(&path, vec![u8::try_from(i).unwrap(); SIZE]).unwrap();
        hub.add(
            &format!("acme/{name}"),
            "main",
            COMMIT,
            &[("model.safetensors", path.as_path())],
        );
    }
    let fake = FakeCluster::new();
    let root = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        Config {
            node: "gpu-a".into(),
            advertise: IpAddr::V4(Ipv4Addr::LOCALHOST),
            fanout_port: 0,
            control_port: 0,
            root: root.path().to_path_buf(),
            namespace: "kubegrid-system".into(),
            token: "t".into(),
            lease_duration: Duration::from_secs(3),
            hub: Hub::new(&hub.url(), Retry::default()).unwrap(),
            upload_limit: None,
            download_limit: None,
            // Two models and a half.
            capacity: Some((SIZE * 5 / 2) as u64),
            whole_files: false,
        },
        fake.client(),
    )
    .await
    .unwrap();
    let ready = |m: ModelSource| {
        let daemon = &daemon;
        async move {
            tokio::time::timeout(PATIENCE, daemon.cache(&m))
                .await
                .expect("ready in time")
                .unwrap()
        }
    };
    let dir = |name: &str| ModelDir::new(root.path(), &model(name).uri);
    ready(model("a")).await;
    ready(model("b")).await;
    // Nothing wants a any more; b stays in use. c needs room: a goes, b stays.
    daemon.forget(&model("a")).await;
    ready(model("c")).await;
    assert!(!dir("a").path().exists(), "the unused model was evicted");
    assert_eq!(dir("b").ready_commit().as_deref(), Some(COMMIT));
    assert_eq!(dir("c").ready_commit().as_deref(), Some(COMMIT));
    // b and c are in use and d does not fit beside them: refused before any byte of it is
    // fetched, and the models in use are untouched.
    let egress = hub.egress();
    daemon.want(&model("d"));
    tokio::time::timeout(
        PATIENCE,
        daemon
            .counters()
            .wait_until(|c| c.failures.load(Ordering::Relaxed) >= 1),
    )
    .await
    .expect("d refused");
    assert_eq!(hub.egress(), egress, "nothing of d was downloaded");
    assert_eq!(dir("d").ready_commit(), None);
    assert_eq!(dir("b").ready_commit().as_deref(), Some(COMMIT));
    assert_eq!(dir("c").ready_commit().as_deref(), Some(COMMIT));
}
