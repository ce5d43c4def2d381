//! The hub client against the TEST STAND-IN hub (e2e/hub-standin) on loopback: revisions
//! resolve to commits with each file's check, downloads verify, an interrupted download
//! resumes from where it stopped, and a corrupt file is refused.

use std::{path::Path, time::Duration};

use kubegrid_hub_standin::Hub as StandIn;
use kubegrid_modelcache::{
    Error,
    hub::{Check, Hub, RemoteFile, Resolved, Retry},
};
use kubegrid_serving::ModelFile;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn retry() -> Retry {
    Retry {
        attempts: 4,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

/// Writes a 3 MiB weights file (an LFS file on the hub) and a small config.
fn model(dir: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let weights: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("w.safetensors"), weights).unwrap();
    std::fs::write(
        dir.join("config.json"),
        br#"{"architectures":["LlamaForCausalLM"]}"#,
    )
    .unwrap();
    vec![
        (
            "model-00001-of-00001.safetensors",
            dir.join("w.safetensors"),
        ),
        ("config.json", dir.join("config.json")),
    ]
}

async fn hub_with_model(dir: &Path) -> StandIn {
    let hub = StandIn::start().await.unwrap();
    let files = model(dir);
    let refs: Vec<(&str, &Path)> = files.iter().map(|(p, d)| (*p, d.as_path())).collect();
    hub.add("acme/llama", "main", COMMIT, &refs);
    hub
}

/// The stand-in hub with the model, a client of it, and the model resolved at `main`.
async fn setup() -> (tempfile::TempDir, StandIn, Hub, Resolved) {
    let src = tempfile::tempdir().unwrap();
    let stand_in = hub_with_model(src.path()).await;
    let hub = Hub::new(&stand_in.url(), retry()).unwrap();
    let model = hub.resolve("acme", "llama", "main", &[]).await.unwrap();
    (src, stand_in, hub, model)
}

fn weights(model: &Resolved) -> &RemoteFile {
    model
        .files
        .iter()
        .find(|f| f.path.ends_with(".safetensors"))
        .unwrap()
}

#[tokio::test]
async fn a_revision_resolves_to_its_commit_and_every_file_downloads_verified_once() {
    let src = tempfile::tempdir().unwrap();
    let stand_in = hub_with_model(src.path()).await;
    let hub = Hub::new(&stand_in.url(), retry()).unwrap();
    let model = hub.resolve("acme", "llama", "main", &[]).await.unwrap();
    assert_eq!(model.commit, COMMIT);
    assert_eq!(model.files.len(), 2);
    let weights = model
        .files
        .iter()
        .find(|f| f.path.ends_with(".safetensors"))
        .unwrap();
    assert!(
        matches!(weights.check, Check::Sha256(_)),
        "LFS files carry a sha256"
    );
    let config = model
        .files
        .iter()
        .find(|f| f.path == "config.json")
        .unwrap();
    assert!(
        matches!(config.check, Check::GitSha1(_)),
        "small files carry git's blob id"
    );

    let out = tempfile::tempdir().unwrap();
    for f in &model.files {
        let dest = out.path().join(&f.path);
        let done = hub.download(&model, f, &dest, &|_| {}).await.unwrap();
        assert_eq!(
            (done.resumed_from, done.fetched, done.attempts),
            (0, f.size, 1)
        );
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), f.size);
    }
    // Again: the files are there, nothing is fetched.
    for f in &model.files {
        let done = hub
            .download(&model, f, &out.path().join(&f.path), &|_| {})
            .await
            .unwrap();
        assert_eq!(done.fetched, 0);
    }
    let log = stand_in.log();
    assert_eq!(log.len(), 2, "one request per file: {log:?}");
    assert_eq!(stand_in.egress(), model.size());
}

#[tokio::test]
async fn an_interrupted_download_resumes_at_the_byte_it_stopped() {
    let (_src, stand_in, hub, model) = setup().await;
    let weights = weights(&model);
    stand_in.cut_after(&weights.path, 1 << 20);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join(&weights.path);
    let done = hub.download(&model, weights, &dest, &|_| {}).await.unwrap();
    assert_eq!(done.attempts, 2);
    assert_eq!(done.fetched, weights.size);
    let log = stand_in.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!((log[0].start, log[0].sent), (0, 1 << 20));
    assert_eq!(
        log[1].start,
        1 << 20,
        "the second request asks for the rest only"
    );
    assert_eq!(stand_in.egress(), weights.size, "no byte fetched twice");
    assert!(dest.exists() && !kubegrid_modelcache::hub::part_path(&dest).exists());
}

#[tokio::test]
async fn a_corrupt_file_is_refused_and_discarded() {
    let (_src, stand_in, hub, model) = setup().await;
    let weights = weights(&model);
    stand_in.corrupt(&weights.path);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join(&weights.path);
    let err = hub
        .download(&model, weights, &dest, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Checksum {
                algorithm: "sha256",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("nothing was marked ready"),
        "{err}"
    );
    assert!(!dest.exists() && !kubegrid_modelcache::hub::part_path(&dest).exists());
}

#[tokio::test]
async fn a_spec_manifest_selects_files_and_must_agree_with_the_hub() {
    let src = tempfile::tempdir().unwrap();
    let stand_in = hub_with_model(src.path()).await;
    let hub = Hub::new(&stand_in.url(), retry()).unwrap();
    let all = hub.resolve("acme", "llama", "main", &[]).await.unwrap();
    let Check::Sha256(sha) = &all
        .files
        .iter()
        .find(|f| f.path.ends_with(".safetensors"))
        .unwrap()
        .check
    else {
        unreachable!()
    };
    let config_sha = hex_sha256(&std::fs::read(src.path().join("config.json")).unwrap());
    let given = vec![ModelFile {
        path: "config.json".into(),
        sha256: config_sha.clone(),
        size: None,
    }];
    let some = hub.resolve("acme", "llama", "main", &given).await.unwrap();
    assert_eq!(some.files.len(), 1);
    assert_eq!(
        some.files[0].check,
        Check::Sha256(config_sha),
        "the spec's sha256 wins over git's sha1"
    );

    let refused = |path: &str| {
        let given = vec![ModelFile {
            path: path.into(),
            sha256: "0".repeat(64),
            size: None,
        }];
        let hub = hub.clone();
        async move {
            hub.resolve("acme", "llama", "main", &given)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let err = refused("model-00001-of-00001.safetensors").await;
    assert!(err.contains(&format!("the hub says {sha}")), "{err}");
    let err = refused("tokenizer.json").await;
    assert!(err.contains("not at this commit"), "{err}");
    let err = hub.resolve("acme", "llama", "v9", &[]).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    assert!(
        err.to_string()
            .contains("check the organisation, name and revision"),
        "{err}"
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
