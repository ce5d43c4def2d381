//! The preStop hook that drains a vLLM replica before it gets SIGTERM.
//!
//! Kubernetes removes a terminating pod from its Services' endpoints and runs preStop at the
//! same time, so new requests may still arrive for a moment; vLLM itself stops at SIGTERM
//! and fails the requests it holds. The hook therefore waits [`SETTLE_SECONDS`] for the
//! endpoint removal to reach every proxy, then polls vLLM's own `/metrics` on loopback
//! until no request is running or waiting (twice in a row), or the drain timeout passes.
//! It is Python because the vLLM image has Python and no guaranteed curl or wget.

/// Seconds the hook waits for endpoint removal to propagate before it checks the queue.
pub const SETTLE_SECONDS: u32 = 5;

/// The hook's program, run as `python3 -c PROGRAM PORT TIMEOUT SETTLE`.
pub const PROGRAM: &str = r#"import sys, time, urllib.request
port, timeout, settle = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
def busy():
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2).read().decode()
    except Exception as e:
        print("drain: /metrics unreadable (%s); not waiting" % e, flush=True)
        return 0
    total = 0.0
    for line in body.splitlines():
        if line.startswith(("vllm:num_requests_running", "vllm:num_requests_waiting")):
            total += float(line.rsplit(" ", 1)[1])
    return total
idle = 0
while time.monotonic() - start < timeout:
    if time.monotonic() - start >= settle:
        n = busy()
        idle = idle + 1 if n == 0 else 0
        if idle >= 2:
            print("drain: idle after %.1fs" % (time.monotonic() - start), flush=True)
            sys.exit(0)
    time.sleep(0.5)
print("drain: timeout after %.0fs with requests in flight" % timeout, flush=True)
"#;

/// The preStop command for a vLLM on `port` that drains for at most `timeout` seconds.
pub fn command(port: i32, timeout: i32) -> Vec<String> {
    vec![
        "python3".into(),
        "-c".into(),
        PROGRAM.into(),
        port.to_string(),
        timeout.to_string(),
        SETTLE_SECONDS
            .min(u32::try_from(timeout).unwrap_or(0))
            .to_string(),
    ]
}
