//! `kubegrid serving-router` as a process on loopback: it logs where it listens, holds a
//! request while nothing answers at its backend, forwards it once something does, and on
//! SIGTERM drains, answers a request still held 503 and exits 0; and `serving-controller` refuses a router image not pinned by digest.

use std::time::Duration;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::Command,
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

#[tokio::test]
async fn the_router_process_holds_a_request_until_its_backend_answers() {
    // A port nothing listens on yet: the replicas' Service while the service is at zero.
    let backend = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["serving-router", "--listen", "127.0.0.1:0"])
        .args(["--backend", &backend.to_string()])
        .args(["--model-name", "llama", "--namespace", "ml"])
        .args(["--shutdown-delay", "0", "--drain-timeout", "1"])
        .args(["--log-format", "text"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("it logs before exiting");
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        }
    })
    .await
    .expect("the router logs its address");
    assert!(request(&addr, "/healthz").await.starts_with("HTTP/1.1 200"));

    let held = {
        let addr = addr.clone();
        tokio::spawn(async move { request(&addr, "/v1/models").await })
    };
    // The request is held: the router says so in its log.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            if line.contains("holding the request") {
                break;
            }
        }
    })
    .await
    .expect("the router holds the request");
    let metrics = request(&addr, "/metrics").await;
    assert!(
        metrics
            .contains("kubegrid_router_pending_requests{model_name=\"llama\",namespace=\"ml\"} 1"),
        "{metrics}"
    );

    // A replica starts answering.
    let listener = TcpListener::bind(backend).await.unwrap();
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
    let held = {
        let addr = addr.clone();
        tokio::spawn(async move { request(&addr, "/v1/models").await })
    };
    tokio::time::timeout(PATIENCE, async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            if line.contains("holding the request") {
                break;
            }
        }
    })
    .await
    .expect("the router holds the second request");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let answer = tokio::time::timeout(PATIENCE, held).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("this router is stopping"), "{answer}");
    let rest = tokio::time::timeout(PATIENCE, async {
        let mut rest = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    })
    .await
    .expect("the router exits");
    assert!(
        rest.iter()
            .any(|l| l.contains("the drain time ran out") && l.contains("held=1")),
        "{rest:#?}"
    );
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_second_signal_stops_the_router_without_waiting_out_its_delay_and_drain() {
    let backend = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["serving-router", "--listen", "127.0.0.1:0"])
        .args(["--backend", &backend.to_string()])
        .args(["--model-name", "llama", "--namespace", "ml"])
        .args(["--shutdown-delay", "3600", "--drain-timeout", "3600"])
        .args(["--log-format", "text"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut wait_for = async |what: &str| {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("it logs before exiting");
                if line.contains(what) {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the router never logged {what:?}"));
    };
    wait_for("serving").await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for("stopping after the shutdown delay").await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    wait_for("a second signal: stopping now").await;
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the router exits at the second signal, not after an hour")
        .unwrap();
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
