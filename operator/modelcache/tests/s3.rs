//! `s3://` model sources against s3s-fs, the s3s project's S3 server on a directory
//! (crates.io; `.ci/setup` installs it), run on loopback with an access key: it checks the
//! AWS Signature Version 4 of every request, presigned URLs included, so a signature the
//! cache gets wrong fails here. Outside CI without the binary these tests are SKIPPED,
//! loudly; in CI a missing binary fails them.
//!
//! What is shown: the listed files fetched and verified, sizes asked with a signed HEAD,
//! an interrupted download resumed with a signed Range request, a wrong secret and anonymous
//! requests refused without a signed URL in the error, a corrupt object refused and never
//! renamed, and two daemons caching an `s3://` model.

mod listed;

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use kubegrid_modelcache::{
    Error,
    hub::{Check, Hub, Retry, S3Config, content_commit, part_path},
};
use kubegrid_serving::ModelFile;
use sha2::Digest as _;

const KEY: &str = "kubegrid-test-key";
const SECRET: &str = "kubegrid-test-secret-0123456789";
const BUCKET: &str = "models";
const PREFIX: &str = "llama/8b";

/// s3s-fs serving a directory on loopback; killed on drop.
struct S3Server {
    child: Child,
    endpoint: String,
    root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts s3s-fs on 127.0.0.1 (a port it picks), or None when it is not installed
    /// outside CI.
    fn start() -> Option<Self> {
        let bin = std::env::var_os("KUBEGRID_S3S_FS").map_or_else(
            || PathBuf::from("/var/cache/kubegrid/s3s-fs/bin/s3s-fs"),
            PathBuf::from,
        );
        if !bin.exists() {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the S3 tests: {} is missing (.ci/setup installs it)",
                bin.display()
            );
            eprintln!(
                "\n!!! SKIPPED: no {}; no S3 request was made. !!!\n",
                bin.display()
            );
            return None;
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(BUCKET).join(PREFIX)).unwrap();
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(root.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start s3s-fs");
        // It logs its address once it listens; the rest of its output is drained.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split_once("server is running at ")
                    .map(|(_, a)| a.trim().to_string())
            })
            .expect("s3s-fs logs the address it listens on");
        std::thread::spawn(move || lines.for_each(drop));
        Some(Self {
            child,
            endpoint,
            root,
        })
    }

    /// Puts `bytes` at `PREFIX/path` of the bucket (s3s-fs keeps objects as files).
    fn put(&self, path: &str, bytes: &[u8]) {
        std::fs::write(self.object(path), bytes).unwrap();
    }

    fn object(&self, path: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(PREFIX).join(path)
    }

    fn config(&self) -> S3Config {
        S3Config::new(Some(&self.endpoint), "us-east-1", true).unwrap()
    }
}

fn retry() -> Retry {
    Retry {
        attempts: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Two objects, and the list the spec gives (the weights without their size).
fn objects(s3: &S3Server) -> (Vec<u8>, Vec<ModelFile>) {
    let weights: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    let config = b"{\"model_type\":\"llama\"}";
    s3.put("model.safetensors", &weights);
    s3.put("config.json", config);
    let files = vec![
        ModelFile {
            path: "model.safetensors".into(),
            sha256: sha(&weights),
            size: None,
        },
        ModelFile {
            path: "config.json".into(),
            sha256: sha(config),
            size: Some(22),
        },
    ];
    (weights, files)
}

fn signed(s3: &S3Server, secret: &str) -> Hub {
    Hub::new("https://hub.invalid", retry())
        .unwrap()
        .with_token(Some("hf_secret".into()))
        .with_s3(s3.config().credentials(KEY, secret, None))
}

#[tokio::test]
async fn an_s3_source_is_fetched_signed_verified_and_resumed_with_a_range() {
    let Some(s3) = S3Server::start() else { return };
    let (weights, files) = objects(&s3);
    let hub = signed(&s3, SECRET);
    let model = hub.resolve_s3(BUCKET, PREFIX, &files).await.unwrap();
    assert_eq!(model.commit, content_commit(&files));
    assert_eq!(model.repo, "s3://models/llama/8b");
    assert_eq!(model.files[0].size, 2 << 20, "asked with a signed HEAD");
    assert_eq!(model.files[1].size, 22);
    assert!(matches!(&model.files[0].check, Check::Sha256(s) if *s == files[0].sha256));

    let out = tempfile::tempdir().unwrap();
    let config = out.path().join("config.json");
    let done = hub
        .download(&model, &model.files[1], &config, &|_| {})
        .await
        .unwrap();
    assert_eq!((done.resumed_from, done.fetched), (0, 22));

    // Half the weights already on disk from an interrupted download: only the rest is
    // asked for, with a Range header beside the signed query.
    let dest = out.path().join("model.safetensors");
    std::fs::write(part_path(&dest), &weights[..1 << 20]).unwrap();
    let done = hub
        .download(&model, &model.files[0], &dest, &|_| {})
        .await
        .unwrap();
    assert_eq!((done.resumed_from, done.fetched), (1 << 20, 1 << 20));
    assert_eq!(std::fs::read(&dest).unwrap(), weights);
}

#[tokio::test]
async fn a_wrong_secret_or_no_credentials_is_refused_without_a_signed_url_in_the_error() {
    let Some(s3) = S3Server::start() else { return };
    let (_, files) = objects(&s3);
    let wrong = signed(&s3, "not-the-secret");
    let err = wrong.resolve_s3(BUCKET, PREFIX, &files).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("403"), "{text}");
    assert!(
        text.contains("s3://models/llama/8b/model.safetensors"),
        "{text}"
    );
    assert!(!text.contains("X-Amz"), "a signed URL in {text}");

    // With every size given nothing is asked while resolving; the download is refused.
    let mut sized = files.clone();
    sized[0].size = Some(2 << 20);
    let model = wrong.resolve_s3(BUCKET, PREFIX, &sized).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("config.json");
    let err = wrong
        .download(&model, &model.files[1], &dest, &|_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Download { url, .. } if url == "s3://models/llama/8b/config.json"),
        "{text}"
    );
    assert!(text.contains("403"), "{text}");
    assert!(!text.contains("X-Amz"), "a signed URL in {text}");
    assert!(!dest.exists());

    let anonymous = Hub::new("https://hub.invalid", retry())
        .unwrap()
        .with_s3(s3.config());
    assert!(
        anonymous
            .download(&model, &model.files[1], &dest, &|_| {})
            .await
            .is_err(),
        "an unsigned request was served"
    );

    // A cache without S3 settings says so.
    let none = Hub::new("https://hub.invalid", retry()).unwrap();
    let err = none.resolve_s3(BUCKET, PREFIX, &files).await.unwrap_err();
    assert!(err.to_string().contains("--s3-region"), "{err}");
}

#[tokio::test]
async fn a_corrupt_object_is_refused_and_never_takes_its_name() {
    let Some(s3) = S3Server::start() else { return };
    let (mut weights, files) = objects(&s3);
    let hub = signed(&s3, SECRET);
    let model = hub.resolve_s3(BUCKET, PREFIX, &files).await.unwrap();
    weights[1 << 20] ^= 0xff;
    s3.put("model.safetensors", &weights);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("model.safetensors");
    let err = hub
        .download(&model, &model.files[0], &dest, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Checksum { url, .. } if url == "s3://models/llama/8b/model.safetensors"),
        "{err}"
    );
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists(), "the failed bytes are dropped");
}

#[tokio::test]
async fn two_daemons_cache_an_s3_model() {
    let Some(s3) = S3Server::start() else { return };
    let (weights, files) = objects(&s3);
    let model = kubegrid_serving::ModelSource {
        uri: format!("s3://{BUCKET}/{PREFIX}"),
        files,
        size_limit: Some("1Gi".into()),
    };
    let hub = || signed(&s3, SECRET);
    for cached in listed::two_daemons_cache(&model, hub, "model.safetensors").await {
        assert_eq!(cached, weights);
    }
}
