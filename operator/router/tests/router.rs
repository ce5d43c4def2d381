//! The router on loopback, in front of a small HTTP server standing for the replicas'
//! Service: requests and answers pass through (streamed), a request made while no replica
//! listens is held and counted until one starts, the limits answer as documented, and a
//! stopping router drains: no new connections, what is in flight finishes, and what is left
//! when the drain time runs out is answered 503 (held) or cut (streaming).

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Frame, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use kubegrid_router::{Config, Drained, METRIC_NAMES, Phase, Router};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

type Body = BoxBody<Bytes, Infallible>;

/// Serves on `listener`: `/stream` sends "one", waits for `release`, then "two"; anything
/// else echoes method, path, Host and body.
async fn replica(listener: TcpListener, release: Option<oneshot::Receiver<()>>) {
    let release = std::sync::Arc::new(std::sync::Mutex::new(release));
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let release = std::sync::Arc::clone(&release);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let release = release.lock().unwrap().take();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    let out: Body = if parts.uri.path() == "/stream" {
                        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
                        tokio::spawn(async move {
                            tx.send(Ok(Frame::data(Bytes::from("one\n"))))
                                .await
                                .unwrap();
                            if let Some(r) = release {
                                let _ = r.await;
                            }
                            tx.send(Ok(Frame::data(Bytes::from("two\n"))))
                                .await
                                .unwrap();
                        });
                        StreamBody::new(tokio_stream(rx)).boxed()
                    } else {
                        let host = parts
                            .headers
                            .get("host")
                            .map_or("", |h| h.to_str().unwrap());
                        let expect = parts.headers.get("expect").map_or(String::new(), |e| {
                            format!(" expect={}", e.to_str().unwrap())
                        });
                        Full::new(Bytes::from(format!(
                            "{} {} host={host} body={}{expect}",
                            parts.method,
                            parts.uri,
                            String::from_utf8_lossy(&body)
                        )))
                        .boxed()
                    };
                    let mut response = Response::new(out);
                    response
                        .headers_mut()
                        .insert("x-replica", "0".parse().unwrap());
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An mpsc receiver as a stream of frames.
fn tokio_stream(
    mut rx: mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A free loopback address nothing listens on (yet).
async fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn router(backend: SocketAddr, tune: impl FnOnce(&mut Config)) -> Router {
    let mut cfg = Config::new(
        "127.0.0.1:0".parse().unwrap(),
        &backend.to_string(),
        "llama-8b",
        "ml",
    );
    tune(&mut cfg);
    Router::start(cfg).await.unwrap()
}

/// Sends one request; the response with its body still to read.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "llama-8b.ml:8000")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

async fn text(response: Response<Incoming>) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn sample(metrics: &str, name: &str, extra: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains("model_name=\"llama-8b\"")
                && l.contains("namespace=\"ml\"")
                && l.contains(extra)
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn metrics(addr: SocketAddr) -> String {
    text(send(addr, "GET", "/metrics", "").await).await
}

/// A router in front of a replica (at the address returned) whose `/stream` answer is under
/// way: its first chunk read, its second waiting for the sender returned.
async fn streaming() -> (Router, SocketAddr, oneshot::Sender<()>, Incoming) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (release, released) = oneshot::channel();
    tokio::spawn(replica(listener, Some(released)));
    let router = router(backend, |_| {}).await;
    let streaming = send(router.addr(), "GET", "/stream", "").await;
    assert_eq!(streaming.status(), StatusCode::OK);
    let mut body = streaming.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "one\n");
    (router, backend, release, body)
}

#[tokio::test]
async fn requests_and_streamed_answers_pass_through() {
    // The first chunk arrives while the replica still holds the second: streamed, not
    // buffered.
    let (router, backend, release, body) = streaming().await;
    release.send(()).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "two\n");

    // A client that asked for 100 Continue gets it from the router, which then has the body
    // and sends it on at once: the replica never sees the Expect header (it would echo it).
    let mut raw = TcpStream::connect(router.addr()).await.unwrap();
    let head = "POST /v1/completions HTTP/1.1\r\nHost: llama-8b.ml\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
    raw.write_all(head.as_bytes()).await.unwrap();
    let mut continued = [0u8; 25];
    raw.read_exact(&mut continued).await.unwrap();
    assert_eq!(&continued, b"HTTP/1.1 100 Continue\r\n\r\n");
    raw.write_all(b"ping").await.unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("body=ping"), "{answer}");

    let r = send(
        router.addr(),
        "POST",
        "/v1/completions?x=1",
        "{\"prompt\":\"hi\"}",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-replica"], "0");
    assert_eq!(
        text(r).await,
        format!("POST /v1/completions?x=1 host={backend} body={{\"prompt\":\"hi\"}}")
    );
    let m = metrics(router.addr()).await;
    for name in METRIC_NAMES {
        assert!(m.contains(name), "{name} missing from\n{m}");
    }
    assert_eq!(
        sample(&m, "kubegrid_router_pending_requests", ""),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &m,
            "kubegrid_router_requests_total",
            "outcome=\"forwarded\""
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn a_request_waits_counted_until_a_replica_listens() {
    let backend = free_addr().await;
    let router = router(backend, |_| {}).await;
    let mut pending = router.pending();
    let addr = router.addr();
    let waiting = tokio::spawn(async move {
        let r = send(addr, "POST", "/v1/completions", "{\"prompt\":\"wake\"}").await;
        (r.status(), text(r).await)
    });
    pending.wait_for(|n| *n == 1).await.unwrap();
    // What KEDA's query reads while the service is at zero.
    let m = metrics(addr).await;
    assert_eq!(
        sample(&m, "kubegrid_router_pending_requests", ""),
        Some(1.0),
        "{m}"
    );

    // The first replica becomes ready.
    let listener = TcpListener::bind(backend).await.unwrap();
    tokio::spawn(replica(listener, None));
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("POST /v1/completions host="), "{body}");
    assert!(
        body.ends_with("body={\"prompt\":\"wake\"}"),
        "sent whole: {body}"
    );
    pending.wait_for(|n| *n == 0).await.unwrap();
    let m = metrics(addr).await;
    assert_eq!(
        sample(&m, "kubegrid_router_pending_requests", ""),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "kubegrid_router_wait_seconds_count", ""),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn the_limits_answer_503_413_and_time_out_with_retry_after() {
    let backend = free_addr().await;
    let router = router(backend, |c| {
        c.queue_timeout = Duration::from_millis(300);
        c.max_pending = 1;
        c.max_body = 64;
    })
    .await;
    let addr = router.addr();
    let mut pending = router.pending();
    let first = tokio::spawn(async move { send(addr, "POST", "/v1/completions", "{}").await });
    pending.wait_for(|n| *n == 1).await.unwrap();
    let second = send(addr, "POST", "/v1/completions", "{}").await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(text(second).await.contains("1 requests already wait"));

    let first = first.await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.headers()["retry-after"], "30");
    let why = text(first).await;
    assert!(
        why.contains(&format!("no replica of llama-8b answered at {backend}")),
        "{why}"
    );

    let big = send(addr, "POST", "/v1/completions", &"x".repeat(65)).await;
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let m = metrics(addr).await;
    assert_eq!(
        sample(
            &m,
            "kubegrid_router_requests_total",
            "outcome=\"timed_out\""
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "kubegrid_router_requests_total", "outcome=\"rejected\""),
        Some(2.0)
    );
}

#[tokio::test]
async fn a_stopping_router_refuses_new_connections_and_lets_requests_in_flight_finish() {
    // An answer under way...
    let (mut router, _, release, mut body) = streaming().await;
    let addr = router.addr();
    // ...and a keep-alive connection, idle after one request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: llama-8b.ml:8000\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok\n") {
        let mut buf = [0u8; 512];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(n > 0, "the idle connection closed before its answer");
        answer.extend_from_slice(&buf[..n]);
    }

    let mut phase = router.phase();
    router.stop(Duration::from_secs(600));
    phase.wait_for(|p| *p == Phase::Draining).await.unwrap();
    let refused = TcpStream::connect(addr).await;
    assert!(
        refused.is_err(),
        "a new connection while draining: {refused:?}"
    );
    // The idle connection is closed by the router (end of stream, not an error).
    let mut buf = [0u8; 64];
    assert_eq!(
        idle.read(&mut buf).await.unwrap(),
        0,
        "the idle connection closed"
    );

    // The answer under way finishes whole, and with it the drain, long before its 600 s.
    release.send(()).unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "two\n");
    assert!(body.frame().await.is_none(), "the answer ends cleanly");
    assert_eq!(router.wait().await, Drained::default());
    assert_eq!(*phase.borrow(), Phase::Draining, "it never had to give up");
}

#[tokio::test]
async fn a_request_still_held_when_the_drain_runs_out_gets_503_with_retry_after() {
    let backend = free_addr().await;
    let mut router = router(backend, |_| {}).await;
    let addr = router.addr();
    let mut pending = router.pending();
    let held = tokio::spawn(async move {
        let r = send(addr, "POST", "/v1/completions", "{}").await;
        let retry = r.headers().get("retry-after").cloned();
        (r.status(), retry, text(r).await)
    });
    pending.wait_for(|n| *n == 1).await.unwrap();

    router.stop(Duration::from_millis(100));
    assert_eq!(router.wait().await, Drained { held: 1, cut: 0 });
    let (status, retry, why) = held.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.unwrap(), "1");
    assert!(
        why.contains(&format!(
            "this router is stopping and no replica of llama-8b answered at {backend}"
        )),
        "{why}"
    );
    assert_eq!(*pending.borrow(), 0, "no longer counted as waiting");
}

#[tokio::test]
async fn an_answer_still_streaming_when_the_drain_runs_out_is_cut_and_counted() {
    // Never released: the replica's answer stops after its first chunk.
    let (mut router, _, _release, body) = streaming().await;

    router.stop(Duration::from_millis(100));
    assert_eq!(router.wait().await, Drained { held: 0, cut: 1 });
    // The client sees a broken answer, not a clean end it could take for the whole of it.
    let rest = body.collect().await;
    assert!(rest.is_err(), "the cut answer ended cleanly: {rest:?}");
}
