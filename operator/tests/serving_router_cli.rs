//! `kubegrid serving-router` as a process on loopback: it logs where it listens, holds a
//! request while nothing answers at its backend, forwards it once something does, and on
//! SIGTERM drains, answers a request still held 503 and exits 0 (a second signal ends it at
//! once); and `serving-controller` refuses a router image not pinned by digest.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    net::{TcpListener, TcpStream},
    process::{Child, ChildStderr, Command},
};

const PATIENCE: Duration = Duration::from_secs(60);

/// One HTTP/1.1 request on a fresh connection; the whole answer.
async fn request(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let text = format!("GET {path} HTTP/1.1\r\nHost: llama.ml\r\nConnection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// A port nothing listens on yet: the replicas' Service while the service is at zero.
async fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `kubegrid serving-router` in front of `backend`, with text logs on a pipe.
struct RouterProcess {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
    /// Where it listens, from its log.
    addr: String,
}

impl RouterProcess {
    /// Starts it with `--shutdown-delay delay --drain-timeout drain`; returns once it logs
    /// where it listens.
    async fn start(backend: &str, delay: u32, drain: u32) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
            .args(["serving-router", "--listen", "127.0.0.1:0"])
            .args(["--backend", backend])
            .args(["--model-name", "llama", "--namespace", "ml"])
            .args(["--shutdown-delay", &delay.to_string()])
            .args(["--drain-timeout", &drain.to_string()])
            .args(["--log-format", "text"])
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut router = Self {
            child,
            lines,
            addr: String::new(),
        };
        let line = router.until("addr=").await;
        let rest = line.split("addr=").nth(1).unwrap();
        router.addr = rest.split_whitespace().next().unwrap().to_string();
        router
    }

    /// Reads its log up to the first line that contains `what`; that line.
    async fn until(&mut self, what: &str) -> String {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let line = self.lines.next_line().await.unwrap();
                let line = line.unwrap_or_else(|| panic!("it exited before logging {what:?}"));
                if line.contains(what) {
                    break line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the router never logged {what:?}"))
    }

    /// Sends it `signal`.
    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id().unwrap()).unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
    }

    /// Waits for it to exit; its exit status and every line it logged until then.
    async fn exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        tokio::time::timeout(PATIENCE, async {
            let mut rest = Vec::new();
            while let Some(line) = self.lines.next_line().await.unwrap() {
                rest.push(line);
            }
            (self.child.wait().await.unwrap(), rest)
        })
        .await
        .expect("the router exits")
    }
}

#[tokio::test]
async fn the_router_process_holds_a_request_until_its_backend_answers() {
    let backend = free_addr().await;
    let mut router = RouterProcess::start(&backend, 0, 1).await;
    let addr = router.addr.clone();
    assert!(request(&addr, "/healthz").await.starts_with("HTTP/1.1 200"));

    let held = {
        let addr = addr.clone();
        tokio::spawn(async move { request(&addr, "/v1/models").await })
    };
    // The request is held: the router says so in its log.
    router.until("holding the request").await;
    let metrics = request(&addr, "/metrics").await;
    assert!(
        metrics
            .contains("kubegrid_router_pending_requests{model_name=\"llama\",namespace=\"ml\"} 1"),
        "{metrics}"
    );

    // A replica starts answering.
    let listener = TcpListener::bind(&backend).await.unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // Closed before answering: once the answer is in, the backend refuses again.
        drop(listener);
        let mut buf = vec![0u8; 4096];
        let _ = stream.read(&mut buf).await.unwrap();
        let body = "{\"data\":[{\"id\":\"llama\"}]}";
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
    });
    let answer = tokio::time::timeout(PATIENCE, held).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("{\"data\":[{\"id\":\"llama\"}]}"),
        "{answer}"
    );

    // The replica is gone again (it answered once): the next request is held, and SIGTERM
    // drains for one second before the router answers it 503 and exits 0.
    let held = tokio::spawn(async move { request(&addr, "/v1/models").await });
    router.until("holding the request").await;
    router.signal(Signal::SIGTERM);
    let answer = tokio::time::timeout(PATIENCE, held).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("this router is stopping"), "{answer}");
    let (status, rest) = router.exit().await;
    assert!(
        rest.iter()
            .any(|l| l.contains("the drain time ran out") && l.contains("held=1")),
        "{rest:#?}"
    );
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_second_signal_stops_the_router_without_waiting_out_its_delay_and_drain() {
    let backend = free_addr().await;
    let mut router = RouterProcess::start(&backend, 3600, 3600).await;
    router.signal(Signal::SIGTERM);
    router.until("stopping after the shutdown delay").await;
    router.signal(Signal::SIGINT);
    router.until("a second signal: stopping now").await;
    let (status, _) = router.exit().await;
    assert!(status.success(), "{status}");
}

#[test]
fn the_controller_refuses_a_router_image_not_pinned_by_digest() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args([
            "serving-controller",
            "--router-image",
            "ghcr.io/kubegrid/kubegrid:latest",
        ])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not pinned by digest"), "{err}");
}
