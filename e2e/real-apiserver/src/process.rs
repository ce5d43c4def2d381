//! etcd and the API server as child processes: free loopback ports, logs in the data
//! folder, readiness probes, and a clean stop.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, Command},
};

use crate::error::{Error, Result};

/// How long a process gets to become ready; both are ready in a few seconds on 2 cores.
pub(crate) const READY_WITHIN: Duration = Duration::from_secs(90);
/// Between two readiness probes. Readiness of another process has no event to wait on, so
/// the probe is repeated; the wait ends as soon as one passes.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(100);
/// How long a stopped process gets to exit before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1. The port is free when this returns; another process could
/// take it before the child binds it, which the caller detects (the child exits) and retries.
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(|source| {
            Error::Io {
                what: "find a free loopback port",
                path: PathBuf::from("127.0.0.1:0"),
                source,
            }
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            what: "find a free loopback port",
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })
}

/// A running child whose output goes to `log`.
pub(crate) struct Process {
    pub(crate) program: &'static str,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args`, stdout and stderr into `log`. The child is killed if this
    /// handle is dropped without [`Process::stop`].
    pub(crate) fn spawn(
        program: &'static str,
        binary: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Self> {
        let io_err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { what, path, source }
        };
        let out = std::fs::File::create(&log).map_err(io_err("create a log", &log))?;
        let err = out.try_clone().map_err(io_err("create a log", &log))?;
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(io_err("start", binary))?;
        Ok(Self {
            program,
            child,
            log,
        })
    }

    /// The last lines of the log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Fails when the process has already ended.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                program: self.program,
                status: status.to_string(),
                log: self.log_tail(),
            }),
            Err(source) => Err(Error::Io {
                what: "check on a child process",
                path: self.log.clone(),
                source,
            }),
        }
    }

    /// Probes with `probe` until it answers `Ok`, failing early when the process ends and
    /// after [`READY_WITHIN`] with the last answer.
    pub(crate) async fn wait_ready<F, Fut>(&mut self, mut probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<(), String>>,
    {
        let start = Instant::now();
        loop {
            self.check_running()?;
            let last = match probe().await {
                Ok(()) => return Ok(()),
                Err(seen) => seen,
            };
            if start.elapsed() > READY_WITHIN {
                return Err(Error::NotReady {
                    program: self.program,
                    seconds: READY_WITHIN.as_secs(),
                    last,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// Asks the process to stop (SIGTERM), waits for it, and kills it if it takes too long.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // Err: it already ended, which is what we want.
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_WITHIN, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// One plain-HTTP GET to loopback `port`; the body, when the status is 200.
pub(crate) async fn http_get(port: u16, path: &str) -> std::result::Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
        Ok(body.to_owned())
    } else {
        Err(head.lines().next().unwrap_or_default().to_owned())
    }
}
