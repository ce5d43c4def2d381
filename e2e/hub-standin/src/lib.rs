//! **TEST STAND-IN for a model hub.** No hub is reachable from the test machines, so this
//! serves models on loopback by Hugging Face's URL layout:
//! - `GET /api/models/ORG/NAME/revision/REV` → `{"id", "sha": COMMIT, "siblings": [...]}`,
//!   each sibling with `rfilename`, `size`, `blobId` (git's blob sha1) and, for large files,
//!   `lfs: {sha256, size}`, as the hub's `?blobs=true` answer has them;
//! - `GET /ORG/NAME/resolve/COMMIT/PATH` → the file, with `Range: bytes=N-` answered 206;
//!   `HEAD` of it → its `Content-Length`, as a plain web server answers.
//!
//! [`Hub::serve_tls`] serves the same over TLS, for `https://` model sources, which the
//! cache fetches as `https://HOST/PATH/FILE`.
//!
//! Every file request is logged ([`Hub::log`]) with the range asked and the bytes sent, so a
//! test can prove one download per file. Faults: [`Hub::corrupt`] serves a file with one byte
//! flipped (its metadata unchanged), [`Hub::cut_after`] closes the next download of a file
//! after some bytes, [`Hub::hold`] stalls every download until [`Hub::release`]. It speaks just enough HTTP/1.1 for reqwest: one request per connection.
//! Never used by the product.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use sha2::Digest as _;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// Files this large or larger are LFS files, whose metadata carries a sha256; smaller ones
/// carry only git's blob sha1, as on the hub.
pub const LFS_FROM: u64 = 1 << 20;

/// One file request the hub answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The file's path in its repository.
    pub path: String,
    /// The first byte asked for (0 without a Range).
    pub start: u64,
    /// The bytes of the body actually written.
    pub sent: u64,
    /// The request carried an `Authorization` header.
    pub authorized: bool,
}

#[derive(Debug, Clone)]
struct File {
    disk: PathBuf,
    size: u64,
    sha256: String,
    git_sha1: String,
}

#[derive(Debug, Clone)]
struct Model {
    commit: String,
    files: BTreeMap<String, File>,
}

#[derive(Debug, Default)]
struct State {
    /// Body bytes per second per download, when limited.
    rate: Option<u64>,
    /// While true, every download waits before its next chunk ([`Hub::hold`]).
    held: tokio::sync::watch::Sender<bool>,
    /// Hold once this many body bytes are sent in all ([`Hub::hold_after`]).
    hold_at: Option<u64>,
    /// `org/name` → revision → model.
    models: BTreeMap<String, BTreeMap<String, Model>>,
    log: Vec<Access>,
    corrupt: Vec<String>,
    cuts: BTreeMap<String, u64>,
    metadata_requests: usize,
    head_requests: usize,
}

/// A connection, plain or TLS.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}
type Stream = Box<dyn Conn>;

/// A running hub stand-in; dropping it stops the listener.
pub struct Hub {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<State>>,
    sent: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Hub {
    /// Starts the hub on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener)
    }

    /// Starts the hub on `listener` (e.g. on a lab bridge's address).
    pub fn serve(listener: TcpListener) -> std::io::Result<Self> {
        Self::serve_with(listener, None)
    }

    /// Starts the hub over TLS on a free loopback port, with the certificate chain and key
    /// in PEM (the certificate must name 127.0.0.1).
    pub async fn serve_tls(cert_pem: &str, key_pem: &str) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| invalid(e.to_string()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid(e.to_string()))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve_with(
            listener,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    fn serve_with(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let sent = tokio::sync::watch::channel(0).0;
        let (shared, counter) = (Arc::clone(&state), sent.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (shared, counter) = (Arc::clone(&shared), counter.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let stream: Stream = match tls {
                        None => Box::new(stream),
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        },
                    };
                    answer(stream, shared, counter).await;
                });
            }
        });
        Ok(Self {
            addr,
            scheme,
            state,
            sent,
            task,
        })
    }

    /// The hub's base URL, `http://ADDR` (`https://ADDR` over TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `HEAD` requests answered.
    pub fn head_requests(&self) -> usize {
        self.state.lock().expect("hub state").head_requests
    }

    /// Publishes repository `repo` (`org/name`) at `revision` as `commit`, with each
    /// `(path in the repository, file on disk)`. Hashes every file.
    pub fn add(&self, repo: &str, revision: &str, commit: &str, files: &[(&str, &Path)]) {
        let files = files
            .iter()
            .map(|(path, disk)| {
                let bytes = std::fs::read(disk).expect("a readable model file");
                let mut git = sha1::Sha1::new();
                git.update(format!("blob {}\0", bytes.len()).as_bytes());
                git.update(&bytes);
                let file = File {
                    disk: disk.to_path_buf(),
                    size: bytes.len() as u64,
                    sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                    git_sha1: hex::encode(git.finalize()),
                };
                ((*path).to_string(), file)
            })
            .collect();
        let model = Model {
            commit: commit.into(),
            files,
        };
        let mut state = self.state.lock().expect("hub state");
        let revisions = state.models.entry(repo.into()).or_default();
        revisions.insert(revision.into(), model.clone());
        revisions.insert(commit.into(), model);
    }

    /// Serves `path` (in every repository) with one byte flipped from now on.
    pub fn corrupt(&self, path: &str) {
        self.state
            .lock()
            .expect("hub state")
            .corrupt
            .push(path.into());
    }

    /// Closes the next download of `path` after `bytes` bytes of body.
    pub fn cut_after(&self, path: &str, bytes: u64) {
        self.state
            .lock()
            .expect("hub state")
            .cuts
            .insert(path.into(), bytes);
    }

    /// Holds every download, running or new, before its next chunk until
    /// [`Hub::release`], as a stalled uplink would; pacing resumes where it stopped.
    pub fn hold(&self) {
        self.state
            .lock()
            .expect("hub state")
            .held
            .send_replace(true);
    }

    /// Holds every download (as [`Hub::hold`]) once the hub has sent `bytes` of file bodies
    /// in all, counting downloads still running: at the chunk that reaches it, so however
    /// fast the hub sends, no download gets more than a chunk (64 KiB) past that point.
    pub fn hold_after(&self, bytes: u64) {
        self.state.lock().expect("hub state").hold_at = Some(bytes);
    }

    /// Lets held downloads go on.
    pub fn release(&self) {
        self.state
            .lock()
            .expect("hub state")
            .held
            .send_replace(false);
    }

    /// Paces every download to `bytes_per_second`, like a slow uplink (`None`: no limit).
    pub fn limit_rate(&self, bytes_per_second: Option<u64>) {
        self.state.lock().expect("hub state").rate = bytes_per_second;
    }

    /// Waits until the hub has sent at least `bytes` of file bodies in all, counting
    /// downloads still running.
    pub async fn wait_sent(&self, bytes: u64) {
        let mut rx = self.sent.subscribe();
        let _ = rx.wait_for(|n| *n >= bytes).await;
    }

    /// Every file request so far.
    pub fn log(&self) -> Vec<Access> {
        self.state.lock().expect("hub state").log.clone()
    }

    /// How many metadata (revision) requests were answered.
    pub fn metadata_requests(&self) -> usize {
        self.state.lock().expect("hub state").metadata_requests
    }

    /// Body bytes sent in all.
    pub fn egress(&self) -> u64 {
        self.log().iter().map(|a| a.sent).sum()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    stream: Stream,
    state: Arc<Mutex<State>>,
    counter: tokio::sync::watch::Sender<u64>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let head_only = line.starts_with("HEAD ");
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut start = 0u64;
    let mut authorized = false;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header).await {
            Ok(0) | Err(_) => return,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {
                let lower = header.to_ascii_lowercase();
                authorized |= lower.starts_with("authorization:");
                if let Some(v) = lower.strip_prefix("range: bytes=") {
                    start = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                }
            }
        }
    }
    let mut stream = reader.into_inner();
    let path = target.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let _ = match segments.as_slice() {
        ["api", "models", org, name, "revision", rev] => {
            metadata(&mut stream, &state, &format!("{org}/{name}"), rev).await
        }
        [org, name, "resolve", commit, rest @ ..] => {
            let asked = Asked {
                repo: format!("{org}/{name}"),
                commit: (*commit).to_string(),
                path: rest.join("/"),
                start,
                authorized,
                head_only,
            };
            file(&mut stream, &state, &counter, &asked).await
        }
        _ => {
            reply(
                &mut stream,
                "404 Not Found",
                "application/json",
                b"{\"error\":\"not found\"}",
            )
            .await
        }
    };
}

async fn reply(stream: &mut Stream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

async fn metadata(
    stream: &mut Stream,
    state: &Mutex<State>,
    repo: &str,
    rev: &str,
) -> std::io::Result<()> {
    let model = {
        let mut s = state.lock().expect("hub state");
        s.metadata_requests += 1;
        s.models.get(repo).and_then(|r| r.get(rev)).cloned()
    };
    let Some(model) = model else {
        let body = format!(
            "{{\"error\":\"Revision Not Found for url: /api/models/{repo}/revision/{rev}\"}}"
        );
        return reply(stream, "404 Not Found", "application/json", body.as_bytes()).await;
    };
    let siblings: Vec<serde_json::Value> = model
        .files
        .iter()
        .map(|(path, f)| {
            let mut s =
                serde_json::json!({"rfilename": path, "size": f.size, "blobId": f.git_sha1});
            if f.size >= LFS_FROM {
                s["lfs"] =
                    serde_json::json!({"sha256": f.sha256, "size": f.size, "pointerSize": 134});
            }
            s
        })
        .collect();
    let body = serde_json::json!({"id": repo, "sha": model.commit, "siblings": siblings});
    reply(
        stream,
        "200 OK",
        "application/json",
        body.to_string().as_bytes(),
    )
    .await
}

/// A file request.
struct Asked {
    repo: String,
    commit: String,
    path: String,
    start: u64,
    authorized: bool,
    head_only: bool,
}

async fn file(
    stream: &mut Stream,
    state: &Mutex<State>,
    counter: &tokio::sync::watch::Sender<u64>,
    asked: &Asked,
) -> std::io::Result<()> {
    let (repo, commit, path, start) = (
        asked.repo.as_str(),
        asked.commit.as_str(),
        asked.path.as_str(),
        asked.start,
    );
    let (found, corrupt, cut, rate) = {
        let mut s = state.lock().expect("hub state");
        let found = s
            .models
            .get(repo)
            .and_then(|r| r.get(commit))
            .filter(|m| m.commit == commit)
            .and_then(|m| m.files.get(path))
            .cloned();
        let corrupt = s.corrupt.iter().any(|c| c == path);
        let cut = s.cuts.remove(path);
        (found, corrupt, cut, s.rate)
    };
    let Some(f) = found else {
        return reply(
            stream,
            "404 Not Found",
            "application/json",
            b"{\"error\":\"Entry not found\"}",
        )
        .await;
    };
    if asked.head_only {
        state.lock().expect("hub state").head_requests += 1;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            f.size
        );
        stream.write_all(head.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let start = start.min(f.size);
    let length = f.size - start;
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {length}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
            f.size.saturating_sub(1),
            f.size
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
    };
    stream.write_all(head.as_bytes()).await?;
    let mut disk = tokio::fs::File::open(&f.disk).await?;
    disk.seek(std::io::SeekFrom::Start(start)).await?;
    let limit = cut.unwrap_or(length).min(length);
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let started = tokio::time::Instant::now();
    let mut stalled = std::time::Duration::ZERO;
    let result = async {
        while sent < limit {
            let want = usize::try_from((limit - sent).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = disk.read(&mut buf[..want]).await?;
            if n == 0 {
                break;
            }
            // The flipped byte: the file's middle, whatever range is asked.
            let middle = f.size / 2;
            let at = start + sent;
            if corrupt && (at..at + n as u64).contains(&middle) {
                let i = usize::try_from(middle - at).unwrap_or(0);
                buf[i] ^= 0xff;
            }
            stream.write_all(&buf[..n]).await?;
            sent += n as u64;
            counter.send_modify(|c| *c += n as u64);
            let total = *counter.borrow();
            let mut held = {
                let mut s = state.lock().expect("hub state");
                if s.hold_at.is_some_and(|at| total >= at) {
                    s.hold_at = None;
                    s.held.send_replace(true);
                }
                s.held.subscribe()
            };
            if *held.borrow_and_update() {
                let since = tokio::time::Instant::now();
                let _ = held.wait_for(|h| !h).await;
                stalled += since.elapsed();
            }
            if let Some(rate) = rate.filter(|r| *r > 0) {
                // Pacing, as a slow link would: the body may be `sent` bytes along by now
                // (time held not counted, so a release is no burst).
                let due = std::time::Duration::from_secs_f64(sent as f64 / rate as f64);
                tokio::time::sleep_until(started + stalled + due).await;
            }
        }
        std::io::Result::Ok(())
    }
    .await;
    state.lock().expect("hub state").log.push(Access {
        path: path.into(),
        start,
        sent,
        authorized: asked.authorized,
    });
    result?;
    stream.shutdown().await
}
