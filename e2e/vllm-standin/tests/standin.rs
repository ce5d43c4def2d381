//! The TEST STAND-IN for vLLM, run as a process on a model that the real node cache
//! (kubegrid-modelcache's daemon, its Lease on the TEST STAND-IN API server, the model from
//! the TEST STAND-IN hub) made ready: it serves vLLM's paths and metric names, queues what
//! it cannot run, lets the serving pods' drain hook wait for its requests, and refuses
//! weights that differ from the cache's record.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_hub_standin::Hub as StandIn;
use kubegrid_modelcache::{
    daemon::{Config, Daemon},
    hub::{Hub, Retry},
};
use kubegrid_serving::ModelSource;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const COMMIT: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const URI: &str = "hf://acme/llama@main";
const PATIENCE: Duration = Duration::from_secs(60);

/// A model made ready by the real cache daemon: the temp dirs and `<root>/<key>/current`.
async fn cached_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("shard");
    std::fs::write(&shard, vec![42u8; (1 << 20) + 17]).unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, br#"{"model_type":"llama"}"#).unwrap();
    let hub = StandIn::start().await.unwrap();
    hub.add(
        "acme/llama",
        "main",
        COMMIT,
        &[
            ("model.safetensors", shard.as_path()),
            ("config.json", config.as_path()),
        ],
    );
    let fake = FakeCluster::new();
    let root = dir.path().join("models");
    let daemon = Daemon::start(
        Config {
            node: "gpu-a".into(),
            advertise: IpAddr::V4(Ipv4Addr::LOCALHOST),
            fanout_port: 0,
            control_port: 0,
            root: root.clone(),
            namespace: "kubegrid-system".into(),
            token: "t".into(),
            lease_duration: Duration::from_secs(3),
            hub: Hub::new(&hub.url(), Retry::default()).unwrap(),
            upload_limit: None,
            download_limit: None,
            capacity: None,
            whole_files: false,
        },
        fake.client(),
    )
    .await
    .unwrap();
    let model = ModelSource {
        uri: URI.into(),
        files: Vec::new(),
        size_limit: None,
    };
    let commit = tokio::time::timeout(PATIENCE, daemon.cache(&model))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(commit, COMMIT);
    let key = kubegrid_serving::names::cache_key(URI);
    (dir, root.join(key).join("current"))
}

/// The stand-in serving `model` as `llama`, once it says where it listens.
struct Running {
    child: tokio::process::Child,
    base: String,
}

async fn start(model: &Path, extra: &[&str]) -> Running {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubegrid-vllm-standin"))
        .arg("serve")
        .arg(model)
        .args(["--served-model-name", "llama", "--host", "127.0.0.1"])
        .args([
            "--port",
            "0",
            "--tensor-parallel-size",
            "1",
            "--enable-prefix-caching",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line
                .split(" on ")
                .nth(1)
                .filter(|_| line.contains("serving"))
            {
                return url.to_string();
            }
        }
        panic!("the stand-in ended before serving");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child, base }
}

/// The samples of a Prometheus text: name → (labels, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            (name.to_string(), labels.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &[(String, String, f64)], name: &str) -> f64 {
    samples.iter().find(|s| s.0 == name).map_or(-1.0, |s| s.2)
}

async fn complete(base: &str, model: &str, tokens: u64) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/completions"))
        .json(&json!({"model": model, "prompt": "the quick brown fox", "max_tokens": tokens}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn serves_a_verified_model_with_vllms_paths_and_metric_names() {
    let (_dir, model) = cached_model().await;
    let s = start(&model, &[]).await;
    let health = reqwest::get(format!("{}/health", s.base)).await.unwrap();
    assert_eq!(health.status(), 200);
    let models: Value = reqwest::get(format!("{}/v1/models", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "llama");
    let (a, b) = tokio::join!(complete(&s.base, "llama", 5), complete(&s.base, "llama", 5));
    for a in [a, b] {
        assert_eq!(a.status(), 200);
        let body: Value = a.json().await.unwrap();
        assert_eq!(body["usage"]["completion_tokens"], 5);
        assert_eq!(body["usage"]["prompt_tokens"], 4);
    }
    let wrong = complete(&s.base, "mistral", 1).await;
    assert_eq!(wrong.status(), 404);
    let text = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let got = samples(&text);
    // Exactly the names kubegrid relies on (the KEDA trigger, the drain, the dashboard),
    // each labelled with the served model name as vLLM labels it.
    let names: BTreeSet<String> = got.iter().map(|s| s.0.clone()).collect();
    let expected: BTreeSet<String> = kubegrid_serving::vllm::sample_names().into_iter().collect();
    assert_eq!(names, expected);
    assert!(
        got.iter().all(|s| s.1.contains("model_name=\"llama\"")),
        "{text}"
    );
    assert_eq!(value(&got, "vllm:request_success_total"), 2.0);
    assert_eq!(value(&got, "vllm:generation_tokens_total"), 10.0);
    assert_eq!(value(&got, "vllm:e2e_request_latency_seconds_count"), 2.0);
    assert_eq!(value(&got, "vllm:num_requests_running"), 0.0);
}

#[tokio::test]
async fn requests_beyond_its_slots_wait_and_the_drain_hook_waits_for_all_of_them() {
    let (_dir, model) = cached_model().await;
    let s = start(
        &model,
        &["--max-num-seqs", "1", "--standin-token-delay-ms", "50"],
    )
    .await;
    // Three requests of 10 tokens, one slot: one runs, two wait, about 1.5 s in all.
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let base = s.base.clone();
            tokio::spawn(async move { complete(&base, "llama", 10).await.status() })
        })
        .collect();
    // Wait (polling vLLM's own gauges, as Prometheus would) until the queue shows.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let text = reqwest::get(format!("{}/metrics", s.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let got = samples(&text);
            if value(&got, "vllm:num_requests_running") == 1.0
                && value(&got, "vllm:num_requests_waiting") == 2.0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("one running and two waiting");
    // The preStop hook the serving pods run, against the stand-in (no settle time here).
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let mut argv = kubegrid_serving::drain::command(port.parse().unwrap(), 60);
    *argv.last_mut().unwrap() = "0".into();
    let hook = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .await
        .unwrap();
    assert!(hook.status.success(), "{hook:?}");
    assert!(
        String::from_utf8_lossy(&hook.stdout).contains("drain: idle"),
        "{hook:?}"
    );
    // By the time the hook lets SIGTERM through, every request has been answered.
    for r in requests {
        assert!(
            r.is_finished(),
            "a request was still in flight when the drain ended"
        );
        assert_eq!(r.await.unwrap(), 200);
    }
    drop(s.child);
}

#[tokio::test]
async fn weights_that_differ_from_the_cache_record_are_refused() {
    let (_dir, model) = cached_model().await;
    let shard = model.join("model.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&shard, &bytes).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubegrid-vllm-standin"))
        .arg("serve")
        .arg(&model)
        .args(["--port", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TEST STAND-IN"), "{err}");
    assert!(err.contains("model.safetensors: sha256 is"), "{err}");
    assert!(err.contains("the cache recorded"), "{err}");
    // No ready marker, nothing to load.
    std::fs::remove_file(model.parent().unwrap().join("ready")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegrid-vllm-standin"))
        .arg("serve")
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has not marked this model ready"),
        "{out:?}"
    );
}
