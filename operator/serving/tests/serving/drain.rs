//! The preStop drain hook, run with python3 (as in the vLLM image) against a STAND-IN for
//! vLLM's `/metrics`: a loopback responder in this file that reports the running and waiting
//! request gauges the test sets. It is not vLLM; it serves only those two lines.

use std::{
    io::{Read, Write},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use kubegrid_serving::drain;

/// The stand-in's state: requests running and waiting, and how many scrapes it answered.
#[derive(Default)]
struct Gauges {
    running: AtomicU32,
    waiting: AtomicU32,
    scrapes: AtomicU32,
}

/// Serves `/metrics` from `gauges` on a loopback port until the test ends.
fn stand_in(gauges: Arc<Gauges>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = format!(
                "# TYPE vllm:num_requests_running gauge\n\
                 vllm:num_requests_running{{model_name=\"llama\"}} {}.0\n\
                 vllm:num_requests_waiting{{model_name=\"llama\"}} {}.0\n",
                gauges.running.load(Ordering::SeqCst),
                gauges.waiting.load(Ordering::SeqCst),
            );
            gauges.scrapes.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Runs the hook's program for `port` with `timeout` and `settle` seconds.
fn hook(port: u16, timeout: u32, settle: u32) -> Child {
    Command::new("python3")
        .args(["-c", drain::PROGRAM])
        .args([port.to_string(), timeout.to_string(), settle.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the hook, as in the vLLM image")
}

fn output(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `gauges` answered `n` scrapes in all.
fn scraped(gauges: &Gauges, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while gauges.scrapes.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the hook scrapes /metrics");
        std::thread::yield_now();
    }
}

#[test]
fn the_hook_waits_while_requests_run_or_wait_and_ends_when_idle() {
    let gauges = Arc::new(Gauges::default());
    gauges.running.store(2, Ordering::SeqCst);
    gauges.waiting.store(1, Ordering::SeqCst);
    let port = stand_in(Arc::clone(&gauges));
    let mut child = hook(port, 60, 0);
    scraped(&gauges, 3);
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining with 3 requests in flight"
    );
    gauges.running.store(0, Ordering::SeqCst);
    let seen = gauges.scrapes.load(Ordering::SeqCst);
    scraped(&gauges, seen + 2);
    assert!(
        child.try_wait().unwrap().is_none(),
        "one request still waits"
    );
    gauges.waiting.store(0, Ordering::SeqCst);
    let out = output(child);
    assert!(out.contains("drain: idle after"), "{out}");
}

#[test]
fn the_hook_gives_up_at_its_timeout_so_the_grace_period_is_never_exceeded() {
    let gauges = Arc::new(Gauges::default());
    gauges.running.store(1, Ordering::SeqCst);
    let port = stand_in(Arc::clone(&gauges));
    let started = Instant::now();
    let out = output(hook(port, 2, 0));
    let took = started.elapsed();
    assert!(
        out.contains("drain: timeout after 2s with requests in flight"),
        "{out}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
}

#[test]
fn the_hook_does_not_wait_for_a_vllm_that_is_already_gone() {
    // A port nothing listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = output(hook(port, 60, 0));
    assert!(out.contains("/metrics unreadable"), "{out}");
    assert!(out.contains("drain: idle after"), "{out}");
}

#[test]
fn the_pod_runs_the_same_program_with_its_port_timeout_and_settle_time() {
    let command = drain::command(8000, 120);
    assert_eq!(command[..3], ["python3", "-c", drain::PROGRAM]);
    assert_eq!(command[3..], ["8000", "120", "5"]);
}
