use std::{net::Ipv4Addr, path::Path};

use kubegrid_agent::{fetch, protocol::BlobHeader, store};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 request on a fresh connection, read until the server closes it.
async fn request(addr: SocketAddr, method: &str, path: &str, range: Option<&str>) -> Answer {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{range}Connection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

fn blob_file(dir: &Path, len: usize) -> (LocalBlob, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 255) as u8).collect();
    let path = dir.join("blob");
    std::fs::write(&path, &data).unwrap();
    let blob = LocalBlob {
        sha256: hex::encode(Sha256::digest(&data)),
        size: len as u64,
        path,
    };
    (blob, data)
}

async fn server_with(blob: &LocalBlob) -> (BlobServer, SocketAddr, String) {
    let mut server = BlobServer::new();
    server.add(blob);
    let addr = server
        .listen(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let path = server
        .base_url(addr)
        .strip_prefix(&format!("http://{addr}"))
        .unwrap()
        .to_string()
        + &blob.sha256;
    (server, addr, path)
}

#[tokio::test]
async fn serves_whole_blobs_and_byte_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (blob, data) = blob_file(dir.path(), 2_000_000);
    let (server, addr, path) = server_with(&blob).await;
    assert_eq!(server.addresses(), [addr]);

    let whole = request(addr, "GET", &path, None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-length"), Some("2000000"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert!(whole.body == data);

    let tail = request(addr, "GET", &path, Some("bytes=1500000-")).await;
    assert_eq!(tail.status, 206);
    assert_eq!(
        tail.header("content-range"),
        Some("bytes 1500000-1999999/2000000")
    );
    assert_eq!(tail.header("content-length"), Some("500000"));
    assert!(tail.body == data[1_500_000..]);

    let middle = request(addr, "GET", &path, Some("bytes=10-19")).await;
    assert_eq!(middle.status, 206);
    assert_eq!(middle.body, data[10..20]);

    let head = request(addr, "HEAD", &path, Some("bytes=5-")).await;
    assert_eq!(head.status, 206);
    assert_eq!(head.header("content-length"), Some("1999995"));
    assert!(head.body.is_empty());

    let past = request(addr, "GET", &path, Some("bytes=2000000-")).await;
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), Some("bytes */2000000"));

    let stats = server.stats();
    assert_eq!(stats.requests, 4, "{stats:?}");
    assert_eq!(stats.resumed, 3, "{stats:?}");
    assert_eq!(stats.bytes, 2_000_000 + 500_000 + 10);
}

#[tokio::test]
async fn refuses_other_tokens_blobs_and_methods() {
    let dir = tempfile::tempdir().unwrap();
    let (blob, _) = blob_file(dir.path(), 10);
    let (server, addr, path) = server_with(&blob).await;
    let wrong_token = format!("/blobs/{}/{}", "0".repeat(32), blob.sha256);
    assert_eq!(request(addr, "GET", &wrong_token, None).await.status, 404);
    let unknown = path.replace(&blob.sha256, &"a".repeat(64));
    assert_eq!(request(addr, "GET", &unknown, None).await.status, 404);
    assert_eq!(request(addr, "GET", "/", None).await.status, 404);
    assert_eq!(request(addr, "DELETE", &path, None).await.status, 405);
    assert_eq!(server.stats(), ServerStats::default());
    // A bundle file that changed size under the server is an error, never short data.
    std::fs::write(&blob.path, b"shorter").unwrap();
    assert_eq!(request(addr, "GET", &path, None).await.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_resumes_a_partial_blob_from_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (blob, data) = blob_file(dir.path(), 3_000_000);
    let (server, addr, path) = server_with(&blob).await;
    let store_dir = dir.path().join("store");
    let partial = store::partial_path(&store_dir, &blob.sha256);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &data[..1_234_567]).unwrap();
    let header = BlobHeader::stdin(blob.sha256.clone(), blob.size);
    let url = format!("http://{addr}{path}");
    let events = tokio::task::spawn_blocking(move || {
        let mut events = Vec::new();
        fetch::fetch(
            &header,
            &url,
            &store_dir,
            &fetch::FetchConfig::default(),
            &mut |e| {
                events.push(e.clone());
                Ok(())
            },
        )
        .map(|_| events)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(
        events.last(),
        Some(Event::BlobStored {
            resumed_from: 1_234_567,
            ..
        })
    ));
    assert!(std::fs::read(dir.path().join("store").join(&blob.sha256)).unwrap() == data);
    assert_eq!(server.stats().resumed, 1);
    assert_eq!(server.stats().bytes, 3_000_000 - 1_234_567);
}

#[tokio::test]
async fn stops_listening_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (blob, _) = blob_file(dir.path(), 10);
    let (server, addr, _) = server_with(&blob).await;
    drop(server);
    // The accept loop ends once the runtime gets to run the abort.
    let mut refused = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "{addr} still accepts connections");
}

#[tokio::test]
async fn finds_the_local_address_towards_a_host() {
    let ip = local_ip_towards("127.0.0.1", 22).await.unwrap();
    assert_eq!(ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
}

#[test]
fn distribution_names() {
    assert_eq!("http".parse(), Ok(Distribution::Http));
    assert_eq!("ssh".parse(), Ok(Distribution::Ssh));
    assert_eq!("p2p".parse(), Ok(Distribution::P2p));
    assert_eq!(Distribution::P2p.as_str(), "p2p");
    assert_eq!(Distribution::default().as_str(), "auto");
    assert_eq!("auto".parse(), Ok(Distribution::Auto));
    assert!(
        "ftp"
            .parse::<Distribution>()
            .unwrap_err()
            .contains("auto, http, ssh or p2p")
    );
}
