use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
};

use super::*;
use crate::{fsutil::sha256_hex, store::partial_path};

/// What the test server does with one connection.
#[derive(Clone, Copy)]
enum Step {
    /// Answers the request properly (206 for a Range, 200 otherwise).
    Serve,
    /// Answers properly, but closes the connection after this many body bytes.
    CutAfter(usize),
    /// Sends the headers, then nothing, keeping the connection open.
    Stall,
    /// Answers with this status and no body.
    Status(u16),
}

/// A one-thread HTTP server that answers each connection with the next step and records
/// the Range start of every request (0 when it had none).
struct Server {
    url: String,
    ranges: Arc<Mutex<Vec<u64>>>,
}

fn serve(data: Vec<u8>, steps: Vec<Step>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/blobs/t/x", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    thread::spawn(move || {
        let mut stalled: Vec<TcpStream> = Vec::new();
        for step in steps {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let start = read_range(&conn);
            seen.lock().unwrap().push(start);
            let body = &data[start as usize..];
            let head = |status: &str, len: usize| {
                let range = if start > 0 {
                    format!(
                        "Content-Range: bytes {start}-{}/{}\r\n",
                        data.len() - 1,
                        data.len()
                    )
                } else {
                    String::new()
                };
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {len}\r\n{range}Connection: close\r\n\r\n"
                )
            };
            let status = if start > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            match step {
                Step::Serve => {
                    let _ = conn.write_all(head(status, body.len()).as_bytes());
                    let _ = conn.write_all(body);
                }
                Step::CutAfter(n) => {
                    let _ = conn.write_all(head(status, body.len()).as_bytes());
                    let _ = conn.write_all(&body[..n]);
                }
                Step::Stall => {
                    let _ = conn.write_all(head(status, body.len()).as_bytes());
                    stalled.push(conn);
                }
                Step::Status(code) => {
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 {code} No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                }
            }
        }
    });
    Server { url, ranges }
}

fn read_range(conn: &TcpStream) -> u64 {
    let mut reader = BufReader::new(conn);
    let mut start = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return start;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            start = v.trim().trim_end_matches('-').parse().unwrap();
        }
    }
}

fn quick() -> FetchConfig {
    FetchConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(300),
        stall_limit: Duration::from_secs(10),
        backoff_first: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        progress_every: Duration::ZERO,
    }
}

fn blob(n: usize) -> (Vec<u8>, BlobHeader) {
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 253) as u8).collect();
    let header = BlobHeader::stdin(sha256_hex(&data), data.len() as u64);
    (data, header)
}

fn run(
    header: &BlobHeader,
    url: &str,
    store: &Path,
    cfg: &FetchConfig,
) -> (Result<PathBuf>, Vec<Event>) {
    let mut events = Vec::new();
    let result = fetch(header, url, store, cfg, &mut |e| {
        events.push(e.clone());
        Ok(())
    });
    (result, events)
}

#[test]
fn a_cut_connection_resumes_with_a_range_request() {
    let (data, header) = blob(3 << 20);
    let server = serve(data.clone(), vec![Step::CutAfter(1 << 20), Step::Serve]);
    let store = tempfile::tempdir().unwrap();
    let (result, events) = run(&header, &server.url, store.path(), &quick());
    let path = result.unwrap();
    assert_eq!(fs::read(path).unwrap(), data);
    assert_eq!(*server.ranges.lock().unwrap(), [0, 1 << 20]);
    assert!(matches!(events[0], Event::BlobStarted { have: 0, .. }));
    assert!(
        events.iter().any(
            |e| matches!(e, Event::BlobRetry { attempt: 1, received, .. } if *received == 1 << 20)
        ),
        "{events:?}"
    );
    match events.last().unwrap() {
        Event::BlobStored {
            resumed_from,
            retries,
            size,
            ..
        } => {
            assert_eq!((*resumed_from, *retries, *size), (1 << 20, 1, 3 << 20));
        }
        other => panic!("last event {other:?}"),
    }
    assert!(!partial_path(store.path(), &header.sha256).exists());
}

#[test]
fn a_read_that_stalls_times_out_and_resumes() {
    let (data, header) = blob(64 << 10);
    let server = serve(
        data.clone(),
        vec![Step::CutAfter(1000), Step::Stall, Step::Serve],
    );
    let store = tempfile::tempdir().unwrap();
    let (result, events) = run(&header, &server.url, store.path(), &quick());
    assert_eq!(fs::read(result.unwrap()).unwrap(), data);
    assert_eq!(*server.ranges.lock().unwrap(), [0, 1000, 1000]);
    let retries = events
        .iter()
        .filter(|e| matches!(e, Event::BlobRetry { .. }))
        .count();
    assert_eq!(retries, 2, "{events:?}");
}

#[test]
fn bytes_kept_from_an_earlier_run_are_hashed_and_not_fetched_again() {
    let (data, header) = blob(100_000);
    let store = tempfile::tempdir().unwrap();
    let partial = partial_path(store.path(), &header.sha256);
    fs::create_dir_all(partial.parent().unwrap()).unwrap();
    fs::write(&partial, &data[..60_000]).unwrap();
    let server = serve(data.clone(), vec![Step::Serve]);
    let (result, events) = run(&header, &server.url, store.path(), &quick());
    assert_eq!(fs::read(result.unwrap()).unwrap(), data);
    assert_eq!(*server.ranges.lock().unwrap(), [60_000]);
    assert!(matches!(events[0], Event::BlobStarted { have: 60_000, .. }));
    assert!(matches!(
        events.last(),
        Some(Event::BlobStored {
            resumed_from: 60_000,
            retries: 0,
            ..
        })
    ));
}

#[test]
fn wrong_bytes_are_refused_and_the_partial_deleted() {
    let (data, header) = blob(10_000);
    let mut bad = data.clone();
    bad[5000] ^= 1;
    let server = serve(bad.clone(), vec![Step::Serve]);
    let store = tempfile::tempdir().unwrap();
    let (result, _) = run(&header, &server.url, store.path(), &quick());
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(&header.sha256) && err.contains(&sha256_hex(&bad)),
        "{err}"
    );
    assert!(!partial_path(store.path(), &header.sha256).exists());
    assert!(!store.path().join(&header.sha256).exists());
}

#[test]
fn a_refusal_is_not_retried() {
    let (data, header) = blob(10);
    let server = serve(data, vec![Step::Status(404)]);
    let store = tempfile::tempdir().unwrap();
    let (result, events) = run(&header, &server.url, store.path(), &quick());
    let err = result.unwrap_err();
    assert!(matches!(err, Error::FetchRefused { .. }), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    assert!(!events.iter().any(|e| matches!(e, Event::BlobRetry { .. })));
}

#[test]
fn no_progress_until_the_stall_limit_gives_up_and_keeps_the_bytes() {
    let (data, header) = blob(50_000);
    // One cut response, then nothing listens any more: every connect is refused.
    let server = serve(data, vec![Step::CutAfter(20_000)]);
    let store = tempfile::tempdir().unwrap();
    let cfg = FetchConfig {
        stall_limit: Duration::from_millis(300),
        ..quick()
    };
    let (result, events) = run(&header, &server.url, store.path(), &cfg);
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::FetchGaveUp {
                received: 20_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&header.sha256), "{err}");
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, Event::BlobRetry { .. }))
            .count()
            >= 2
    );
    let kept = fs::metadata(partial_path(store.path(), &header.sha256)).unwrap();
    assert_eq!(kept.len(), 20_000);
}

#[test]
fn a_failing_event_sink_stops_the_fetch() {
    let (data, header) = blob(10);
    let server = serve(data, vec![Step::Serve]);
    let store = tempfile::tempdir().unwrap();
    let err = fetch(&header, &server.url, store.path(), &quick(), &mut |_| {
        Err(Error::WriteEvent {
            source: io::ErrorKind::BrokenPipe.into(),
        })
    })
    .unwrap_err();
    assert!(matches!(err, Error::WriteEvent { .. }), "{err}");
}
