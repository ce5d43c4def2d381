//! The STAND-IN kube-apiserver the stand-in kubelet serves while the static pod manifest
//! `/etc/kubernetes/manifests/kube-apiserver.yaml` exists ("running the static pod"): TLS on
//! the manifest's `--bind-address` (default 0.0.0.0) and `--secure-port` (default 6443) with
//! its `--tls-cert-file`/`--tls-private-key-file`, every client verified against its
//! `--client-ca-file` bundle (any CA of it), and 200 `ok` on /readyz, /livez and /healthz.
//! Nothing else of an apiserver runs. Like kube-apiserver, which reloads its serving
//! certificate and client CA without a restart, it reads the three files on every handshake.
//! The manifest is polled every 200 ms: moved away, the port closes; back, it listens again
//! (how kubegrid restarts a static pod).

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::tls;

/// Where kubeadm writes the apiserver's static pod manifest.
pub const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// How often the manifest is looked at.
const POLL: Duration = Duration::from_millis(200);

fn say(line: &str) {
    eprintln!("[STAND-IN kube-apiserver] {line}");
}

/// What the stand-in takes from the manifest's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    /// `--bind-address`.
    pub bind: IpAddr,
    /// `--secure-port`.
    pub port: u16,
    /// `--tls-cert-file`.
    pub cert: String,
    /// `--tls-private-key-file`.
    pub key: String,
    /// `--client-ca-file`.
    pub client_ca: String,
}

/// The flags of a kube-apiserver manifest; an error names what is missing or wrong.
pub fn parse_manifest(text: &str) -> Result<Flags, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let container = &doc["spec"]["containers"][0];
    let args: Vec<&str> = ["command", "args"]
        .iter()
        .filter_map(|k| container[k].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let flag = |name: &str| {
        let prefix = format!("--{name}=");
        args.iter().find_map(|a| a.strip_prefix(prefix.as_str()))
    };
    let file = |name: &str| {
        flag(name)
            .map(String::from)
            .ok_or_else(|| format!("the command has no --{name}; kube-apiserver needs it here"))
    };
    let port = match flag("secure-port") {
        None => 6443,
        Some(p) => p
            .parse()
            .map_err(|_| format!("--secure-port={p} is not a port number"))?,
    };
    let bind = match flag("bind-address") {
        None => IpAddr::from(Ipv4Addr::UNSPECIFIED),
        Some(a) => a
            .parse()
            .map_err(|_| format!("--bind-address={a} is not an IP address"))?,
    };
    Ok(Flags {
        bind,
        port,
        cert: file("tls-cert-file")?,
        key: file("tls-private-key-file")?,
        client_ca: file("client-ca-file")?,
    })
}

/// A running stand-in apiserver watcher; dropping it stops it.
pub struct ApiServer {
    listening: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Watches `MANIFEST` under `root` (`/` on a lab host) and serves while it exists.
    pub fn spawn(root: &Path) -> ApiServer {
        let listening = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, root) = (
            Arc::clone(&listening),
            Arc::clone(&stop),
            root.to_path_buf(),
        );
        let thread = thread::Builder::new()
            .name("standin-kube-apiserver".into())
            .spawn(move || watch(&root, &l, &s))
            .map_err(|e| say(&format!("cannot start: {e}")))
            .ok();
        ApiServer {
            listening,
            stop,
            thread,
        }
    }

    /// The address it listens on now, `None` while the manifest is absent.
    pub fn listening(&self) -> Option<SocketAddr> {
        *self.listening.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn host(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn watch(root: &Path, listening: &Mutex<Option<SocketAddr>>, stop: &AtomicBool) {
    let manifest = host(root, MANIFEST);
    let mut current: Option<(Flags, TcpListener)> = None;
    let mut last_problem = String::new();
    let mut next_poll = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + POLL;
            let wanted = match fs::read_to_string(&manifest) {
                Ok(text) => Some(parse_manifest(&text).map_err(|e| format!("{MANIFEST}: {e}"))),
                Err(_) => None,
            };
            match wanted {
                None if current.is_some() => {
                    current = None;
                    *listening.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    say(&format!(
                        "{MANIFEST} is gone: the static pod stopped, not listening"
                    ));
                }
                None => {}
                // A manifest being rewritten may not parse for a moment: keep what runs.
                Some(Err(problem)) if problem != last_problem => {
                    say(&problem);
                    last_problem = problem;
                }
                Some(Err(_)) => {}
                Some(Ok(flags)) => {
                    let same = current
                        .as_ref()
                        .is_some_and(|(f, _)| (f.bind, f.port) == (flags.bind, flags.port));
                    if same {
                        if let Some((f, _)) = current.as_mut() {
                            *f = flags;
                        }
                    } else {
                        current = None;
                        match bind(&flags) {
                            Ok((listener, addr)) => {
                                say(&format!(
                                    "serving on {addr} (static pod {MANIFEST}); TLS {} with client CA {}",
                                    flags.cert, flags.client_ca
                                ));
                                *listening.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                                current = Some((flags, listener));
                                last_problem.clear();
                            }
                            Err(problem) if problem != last_problem => {
                                say(&problem);
                                last_problem = problem;
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
        }
        let Some((flags, listener)) = current.as_ref() else {
            thread::sleep(POLL / 4);
            continue;
        };
        match listener.accept() {
            Ok((tcp, peer)) => {
                let (flags, root) = (flags.clone(), root.to_path_buf());
                thread::spawn(move || connection(&root, &flags, tcp, peer));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn bind(flags: &Flags) -> Result<(TcpListener, SocketAddr), String> {
    let addr = SocketAddr::new(flags.bind, flags.port);
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok((listener, local))
}

fn connection(root: &Path, flags: &Flags, tcp: std::net::TcpStream, peer: SocketAddr) {
    let config = match tls::server_config(
        &host(root, &flags.cert),
        &host(root, &flags.key),
        Some(&host(root, &flags.client_ca)),
    ) {
        Ok(config) => config,
        Err(e) => {
            say(&format!("connection from {peer} dropped: {e}"));
            return;
        }
    };
    let answer = |path: &str| match path {
        "/readyz" | "/livez" | "/healthz" => (200, "ok"),
        _ => (
            404,
            "the STAND-IN kube-apiserver serves only /readyz, /livez and /healthz",
        ),
    };
    if let Err(e) = tls::serve(tcp, config, &answer) {
        say(&format!(
            "http: TLS handshake or request error from {peer}: {e}"
        ));
    }
}

#[cfg(test)]
mod tests;
