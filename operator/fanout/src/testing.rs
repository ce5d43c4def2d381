//! A TEST-ONLY peer that claims every piece and serves garbage of the right length: the
//! "bad peer" of the fault tests (this crate's and the lab e2e's). It is compiled only with
//! the `test-liar` feature, which no product build enables, and it is a separate server
//! speaking the crate's HTTP surface: the real [`crate::Node`] has no corruption hook.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::{Bitfield, PieceManifest};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A running liar; it stops when its runtime does.
#[derive(Debug)]
pub struct Liar {
    /// Where it listens.
    pub addr: SocketAddr,
    served: Arc<AtomicUsize>,
}

impl Liar {
    /// Pieces it has answered with garbage.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

/// Starts a liar for `manifest`'s blob on `listen`.
pub async fn start(manifest: Arc<PieceManifest>, listen: SocketAddr) -> Liar {
    let listener = TcpListener::bind(listen).await.expect("bind liar");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (manifest, count) = (manifest.clone(), count.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (manifest, count) = (manifest.clone(), count.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let resp = if path.ends_with("/have") {
                            Response::builder()
                                .header("x-fanout-version", "1")
                                .body(Full::new(Bytes::from(
                                    Bitfield::full(manifest.piece_count()).to_bytes(),
                                )))
                        } else {
                            let range = req
                                .headers()
                                .get("range")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.strip_prefix("bytes="))
                                .and_then(|v| v.split_once('-'))
                                .and_then(|(a, b)| {
                                    Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
                                });
                            match range {
                                Some((a, b)) => {
                                    count.fetch_add(1, Ordering::Relaxed);
                                    Response::builder()
                                        .status(StatusCode::PARTIAL_CONTENT)
                                        .body(Full::new(Bytes::from(vec![
                                            0x5a;
                                            (b - a + 1) as usize
                                        ])))
                                }
                                None => Response::builder()
                                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                                    .body(Full::new(Bytes::new())),
                            }
                        };
                        Ok::<_, Infallible>(resp.expect("response"))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Liar { addr, served }
}
