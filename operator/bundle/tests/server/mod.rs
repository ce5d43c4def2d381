//! A loopback HTTP/1.1 server standing in for upstream and for mirrors in tests: it serves
//! files by path, honours `Range: bytes=N-`, and can be told to cut a response part-way or
//! to fail a number of times, and it logs every request. Plain std (one thread per
//! connection, `Connection: close`), so any test crate can include it with
//! `#[path = ".../operator/bundle/tests/server/mod.rs"] mod server;`.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Request path.
    pub path: String,
    /// The start of `Range: bytes=N-`, when the request had one.
    pub range_start: Option<u64>,
}

#[derive(Default)]
struct Route {
    body: Vec<u8>,
    /// Cut the next `cuts` responses after this many body bytes.
    cut_after: usize,
    cuts: usize,
    /// Answer 503 this many more times.
    failures: usize,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    seen: Vec<Seen>,
}

/// The running server; stops when dropped.
pub struct Server {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Starts listening on 127.0.0.1 on a free port.
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        Server { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `body` at `path` (which starts with `/`).
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        let mut state = self.state.lock().unwrap();
        state.routes.entry(path.to_string()).or_default().body = body.into();
    }

    /// The next `times` responses for `path` stop after `after` body bytes (the headers
    /// still announce the full length), like a dropped connection.
    pub fn cut(&self, path: &str, after: usize, times: usize) {
        let mut state = self.state.lock().unwrap();
        let route = state.routes.entry(path.to_string()).or_default();
        route.cut_after = after;
        route.cuts = times;
    }

    /// The next `times` requests for `path` get 503.
    pub fn fail(&self, path: &str, times: usize) {
        let mut state = self.state.lock().unwrap();
        state.routes.entry(path.to_string()).or_default().failures = times;
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The requests for one path.
    pub fn seen_for(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range_start = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range_start = value
                .trim()
                .strip_prefix("bytes=")
                .and_then(|v| v.strip_suffix('-'))
                .and_then(|v| v.parse::<u64>().ok());
        }
    }
    let mut out = conn;
    let response = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen {
            path: path.clone(),
            range_start,
        });
        match state.routes.get_mut(&path) {
            None => Response::status(404, "Not Found"),
            Some(route) if route.failures > 0 => {
                route.failures -= 1;
                Response::status(503, "Service Unavailable")
            }
            Some(route) => {
                let len = route.body.len() as u64;
                let cut = if route.cuts > 0 {
                    route.cuts -= 1;
                    Some(route.cut_after)
                } else {
                    None
                };
                match range_start {
                    Some(start) if start >= len => Response::status(416, "Range Not Satisfiable"),
                    Some(start) => Response {
                        head: format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\n",
                            len - start,
                            len - 1
                        ),
                        body: route.body[usize::try_from(start).unwrap()..].to_vec(),
                        cut,
                    },
                    None => Response {
                        head: format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\n"
                        ),
                        body: route.body.clone(),
                        cut,
                    },
                }
            }
        }
    };
    out.write_all(response.head.as_bytes())?;
    out.write_all(b"Connection: close\r\n\r\n")?;
    match response.cut {
        Some(after) => {
            out.write_all(&response.body[..after.min(response.body.len())])?;
            out.flush()?;
            // Closing with bytes still owed is what a cut connection looks like to a client.
            out.shutdown(std::net::Shutdown::Both)?;
        }
        None => out.write_all(&response.body)?,
    }
    Ok(())
}

struct Response {
    head: String,
    body: Vec<u8>,
    cut: Option<usize>,
}

impl Response {
    fn status(code: u16, reason: &str) -> Response {
        Response {
            head: format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n"),
            body: Vec::new(),
            cut: None,
        }
    }
}
