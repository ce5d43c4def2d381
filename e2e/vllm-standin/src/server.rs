//! The HTTP side: `/health`, `/v1/models`, `/v1/completions` and `/metrics`, with vLLM's
//! paths, answer shapes and metric names. Generation is simulated: each output token takes
//! `token_delay`, at most `max_running` requests run at once and the rest wait, so the
//! running and waiting gauges behave as vLLM's do under load.

use std::{
    convert::Infallible,
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::Semaphore};

/// How the stand-in serves.
#[derive(Debug, Clone)]
pub struct Serving {
    /// The model path, as `vllm serve` got it (`/v1/models` reports it as `root`).
    pub model: String,
    /// `--served-model-name`: the model id requests name and the `model_name` label.
    pub served_name: String,
    /// Time per output token.
    pub token_delay: Duration,
    /// Requests that run at once (`--max-num-seqs`); the others wait.
    pub max_running: usize,
}

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (bound, n) in BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The counters and histograms `/metrics` reports.
#[derive(Default)]
struct Stats {
    running: AtomicU64,
    waiting: AtomicU64,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    success: AtomicU64,
    // time_to_first_token, inter_token_latency, e2e_request_latency, request_queue_time.
    histograms: Mutex<[Histogram; 4]>,
}

struct State {
    serving: Serving,
    stats: Stats,
    slots: Semaphore,
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, serving: Serving) {
    let state = Arc::new(State {
        slots: Semaphore::new(serving.max_running.max(1)),
        serving,
        stats: Stats::default(),
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(Arc::clone(&state), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds `addr` and serves there; the bound address (for port 0).
pub async fn start(
    addr: SocketAddr,
    serving: Serving,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(listener, serving))))
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"object": "error", "message": message, "code": status.as_u16()});
    reply(status, "application/json", body.to_string())
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let served = &state.serving.served_name;
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => reply(StatusCode::OK, "text/plain", String::new()),
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(&state),
        ),
        (&Method::GET, "/v1/models") => {
            let body = json!({"object": "list", "data": [{
                "id": served, "object": "model", "owned_by": "vllm",
                "root": state.serving.model,
            }]});
            reply(StatusCode::OK, "application/json", body.to_string())
        }
        (&Method::POST, "/v1/completions") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            match serde_json::from_slice::<Value>(&body) {
                Ok(r) if r["model"] == served.as_str() => complete(&state, &r).await,
                Ok(r) => error(
                    StatusCode::NOT_FOUND,
                    &format!("The model `{}` does not exist.", r["model"]),
                ),
                Err(e) => error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    })
}

async fn complete(state: &State, request: &Value) -> Response<Full<Bytes>> {
    let stats = &state.stats;
    let arrived = Instant::now();
    let prompt = request["prompt"].as_str().unwrap_or_default();
    let prompt_tokens = prompt.split_whitespace().count() as u64;
    let max_tokens = request["max_tokens"].as_u64().unwrap_or(16);
    stats.waiting.fetch_add(1, Ordering::SeqCst);
    let permit = state.slots.acquire().await;
    stats.waiting.fetch_sub(1, Ordering::SeqCst);
    stats.running.fetch_add(1, Ordering::SeqCst);
    let started = Instant::now();
    let mut text = String::new();
    let mut last = started;
    for i in 0..max_tokens {
        // The simulated engine's work for one token.
        tokio::time::sleep(state.serving.token_delay).await;
        let now = Instant::now();
        let mut h = stats.histograms.lock().expect("histograms");
        if i == 0 {
            h[0].observe(now.duration_since(arrived).as_secs_f64());
        } else {
            h[1].observe(now.duration_since(last).as_secs_f64());
        }
        last = now;
        text.push_str(" token");
    }
    {
        let mut h = stats.histograms.lock().expect("histograms");
        h[2].observe(arrived.elapsed().as_secs_f64());
        h[3].observe(started.duration_since(arrived).as_secs_f64());
    }
    drop(permit);
    stats.running.fetch_sub(1, Ordering::SeqCst);
    stats
        .prompt_tokens
        .fetch_add(prompt_tokens, Ordering::SeqCst);
    stats
        .generation_tokens
        .fetch_add(max_tokens, Ordering::SeqCst);
    stats.success.fetch_add(1, Ordering::SeqCst);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = json!({
        "id": format!("cmpl-standin-{created}"),
        "object": "text_completion",
        "created": created,
        "model": state.serving.served_name,
        "choices": [{"index": 0, "text": text, "finish_reason": "length", "logprobs": null}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max_tokens,
                  "total_tokens": prompt_tokens + max_tokens},
    });
    reply(StatusCode::OK, "application/json", body.to_string())
}

/// The Prometheus text of every metric in `kubegrid_serving::vllm::METRICS`, by vLLM's names
/// and with its `model_name` label.
fn metrics(state: &State) -> String {
    use kubegrid_serving::vllm::{Kind, METRICS, MODEL_LABEL};
    let stats = &state.stats;
    let label = format!("{MODEL_LABEL}=\"{}\"", state.serving.served_name);
    let running = stats.running.load(Ordering::SeqCst);
    #[expect(
        clippy::cast_precision_loss,
        reason = "small counts as Prometheus floats"
    )]
    let gauge = |name: &str| -> f64 {
        match name {
            "vllm:num_requests_running" => running as f64,
            "vllm:num_requests_waiting" => stats.waiting.load(Ordering::SeqCst) as f64,
            // The stand-in has no KV cache; it reports the share of slots in use.
            "vllm:kv_cache_usage_perc" => running as f64 / state.serving.max_running.max(1) as f64,
            "vllm:prompt_tokens_total" => stats.prompt_tokens.load(Ordering::SeqCst) as f64,
            "vllm:generation_tokens_total" => stats.generation_tokens.load(Ordering::SeqCst) as f64,
            "vllm:request_success_total" => stats.success.load(Ordering::SeqCst) as f64,
            _ => 0.0,
        }
    };
    let histograms = stats.histograms.lock().expect("histograms");
    let mut out = String::new();
    let empty = Histogram::default();
    for (name, kind) in METRICS {
        let kind_name = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {name} kubegrid vLLM stand-in");
        let _ = writeln!(out, "# TYPE {name} {kind_name}");
        if *kind == Kind::Histogram {
            let h = match *name {
                "vllm:time_to_first_token_seconds" => &histograms[0],
                "vllm:inter_token_latency_seconds" => &histograms[1],
                "vllm:e2e_request_latency_seconds" => &histograms[2],
                "vllm:request_queue_time_seconds" => &histograms[3],
                _ => &empty,
            };
            for (i, bound) in BUCKETS.iter().enumerate() {
                let n = h.counts.get(i).copied().unwrap_or(0);
                let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\",{label}}} {n}.0");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\",{label}}} {}.0", h.count);
            let _ = writeln!(out, "{name}_sum{{{label}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{label}}} {}.0", h.count);
        } else {
            let _ = writeln!(out, "{name}{{{label}}} {:?}", gauge(name));
        }
    }
    out
}
