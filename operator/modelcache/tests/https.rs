//! `https://` model sources against the TEST STAND-IN hub served over TLS on loopback (a
//! certificate for 127.0.0.1 from a CA made here, trusted through `Hub::with_root_ca`): the
//! files `spec.model.files` lists, each checked against its sha256, the commit derived from
//! that list, sizes asked with HEAD when not given, a corrupt file refused, and the hub token
//! never sent to the source's server.

mod listed;

use std::{net::IpAddr, path::Path, time::Duration};

use kubegrid_hub_standin::Hub as StandIn;
use kubegrid_modelcache::{
    Error,
    hub::{Check, Hub, Retry, content_commit},
};
use kubegrid_pki::{Ca, LeafSpec, Usage};
use kubegrid_serving::ModelFile;
use sha2::Digest as _;

const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn retry() -> Retry {
    Retry {
        attempts: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }
}

/// A TLS stand-in serving two files under `/acme/llama/resolve/COMMIT/`, the CA's PEM, and
/// the files as the spec lists them (the first without its size).
async fn tls_source(dir: &Path) -> (StandIn, String, Vec<ModelFile>) {
    let ca = Ca::generate("test source CA", Duration::from_secs(3600)).unwrap();
    let leaf = ca
        .issue(&LeafSpec {
            common_name: "source".into(),
            organizations: Vec::new(),
            dns_names: Vec::new(),
            ip_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            usage: Usage::Server,
            validity: Duration::from_secs(3600),
        })
        .unwrap();
    let source = StandIn::serve_tls(&leaf.cert_pem, &leaf.key_pem)
        .await
        .unwrap();
    let weights: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("w"), &weights).unwrap();
    std::fs::write(dir.join("c"), b"{\"model_type\":\"llama\"}").unwrap();
    source.add(
        "acme/llama",
        COMMIT,
        COMMIT,
        &[
            ("model.safetensors", &dir.join("w")),
            ("config.json", &dir.join("c")),
        ],
    );
    let sha = |p: &Path| hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()));
    let files = vec![
        ModelFile {
            path: "model.safetensors".into(),
            sha256: sha(&dir.join("w")),
            size: None,
        },
        ModelFile {
            path: "config.json".into(),
            sha256: sha(&dir.join("c")),
            size: Some(22),
        },
    ];
    (source, ca.cert_pem().to_string(), files)
}

fn uri(source: &StandIn) -> String {
    format!("{}/acme/llama/resolve/{COMMIT}", source.url())
}

#[tokio::test]
async fn an_https_source_downloads_the_listed_files_verified_without_the_hub_token() {
    let src = tempfile::tempdir().unwrap();
    let (source, ca, files) = tls_source(src.path()).await;
    assert!(source.url().starts_with("https://127.0.0.1:"));
    // The hub is elsewhere (another origin); its token must stay there.
    let hub = Hub::new("https://hub.invalid", retry())
        .unwrap()
        .with_token(Some("hf_secret".into()))
        .with_root_ca(ca.as_bytes())
        .unwrap();
    let model = hub.resolve_url(&uri(&source), &files).await.unwrap();
    assert_eq!(model.commit, content_commit(&files));
    assert_eq!(model.commit.len(), 40);
    assert_eq!(model.files[0].size, 2 << 20, "asked with HEAD");
    assert_eq!(source.head_requests(), 1, "only the file without a size");
    assert_eq!(model.files[1].size, 22);
    assert!(matches!(&model.files[0].check, Check::Sha256(s) if *s == files[0].sha256));

    let out = tempfile::tempdir().unwrap();
    for f in &model.files {
        let dest = out.path().join(&f.path);
        let done = hub.download(&model, f, &dest, &|_| {}).await.unwrap();
        assert_eq!(done.fetched, f.size);
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), f.size);
    }
    let log = source.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log.iter().all(|a| !a.authorized),
        "the hub token went to the source: {log:?}"
    );

    // The commit follows the content: another sha256 gives another commit.
    let mut changed = files.clone();
    changed[1].sha256 = "0".repeat(64);
    assert_ne!(content_commit(&changed), model.commit);
}

#[tokio::test]
async fn a_corrupt_file_an_unlisted_model_and_an_untrusted_server_are_refused() {
    let src = tempfile::tempdir().unwrap();
    let (source, ca, files) = tls_source(src.path()).await;
    let hub = Hub::new("https://hub.invalid", retry())
        .unwrap()
        .with_root_ca(ca.as_bytes())
        .unwrap();
    let model = hub.resolve_url(&uri(&source), &files).await.unwrap();
    source.corrupt("model.safetensors");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model.safetensors");
    let err = hub
        .download(&model, &model.files[0], &dest, &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    assert!(
        !dest.exists(),
        "a file that failed its check never takes its name"
    );

    let err = hub.resolve_url(&uri(&source), &[]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Resolve { problem, .. } if problem.contains("spec.model.files is empty")),
        "{err}"
    );

    // Without the CA, the server's certificate is not trusted.
    let plain = Hub::new("https://hub.invalid", retry()).unwrap();
    assert!(plain.resolve_url(&uri(&source), &files).await.is_err());
}

#[tokio::test]
async fn two_daemons_cache_an_https_model_with_one_download_per_file() {
    use kubegrid_serving::ModelSource;
    let src = tempfile::tempdir().unwrap();
    let (source, ca, files) = tls_source(src.path()).await;
    let model = ModelSource {
        uri: uri(&source),
        files: files.clone(),
        size_limit: Some("1Gi".into()),
    };
    let hub = || {
        Hub::new("https://hub.invalid", retry())
            .unwrap()
            .with_root_ca(ca.as_bytes())
            .unwrap()
    };
    for weights in listed::two_daemons_cache(&model, hub, "model.safetensors").await {
        assert_eq!(hex::encode(sha2::Sha256::digest(&weights)), files[0].sha256);
    }
    let log = source.log();
    assert_eq!(log.len(), 2, "one request per file: {log:?}");
}
