//! One request, whatever the transport: partitions, the routes, and the response body
//! (whole, or streaming for watches).

use std::sync::{Arc, Mutex};

use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use crate::{
    State,
    generic::failure_reply,
    routes::{self, Outcome},
    store::Failure,
    watch,
};

/// The error of refused requests and of cut watch bodies. A concrete type, not a boxed
/// trait object: hyper's `Into<Box<dyn Error>>` bound on a boxed error trips rustc's
/// higher-ranked lifetime check when the connection future is spawned.
pub(crate) type TransportError = std::io::Error;

/// The response body both transports send: whole, or a watch's stream.
pub type ResBody = http_body_util::combinators::UnsyncBoxBody<Bytes, TransportError>;

/// How a partitioned client ([`crate::FakeCluster::partition_with`]) is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Requests fail at once with a transport error, as on a refused or reset connection
    /// (over TLS the connection is closed without an answer).
    Refuse,
    /// Requests get `503 Service Unavailable`, as from a load balancer with no apiserver.
    Unavailable,
    /// Requests get no answer until the client is healed; then they fail with a transport
    /// error, as a connection lost in a partition. They never reach the store.
    Hang,
}

/// The transport error a partitioned client's requests (and open watches) end with.
pub(crate) fn cut_off(client: &str) -> TransportError {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        format!("fake: client {client:?} is partitioned from the apiserver"),
    )
}

/// A whole body.
pub(crate) fn full(bytes: Vec<u8>) -> ResBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Answers one request from `client` (named, or `None`), or fails it like a transport would.
pub(crate) async fn call(
    shared: Arc<Mutex<State>>,
    client: Option<String>,
    parts: http::request::Parts,
    bytes: Bytes,
) -> Result<Response<ResBody>, TransportError> {
    if let Some(name) = &client {
        match partitioned(&shared, name).await {
            Ok(None) => {}
            Ok(Some(reply)) => return Ok(routes::response(reply, full)),
            Err(error) => return Err(error),
        }
    }
    match routes::handle(&shared, client.as_deref(), &parts, &bytes) {
        Outcome::Reply(reply) => Ok(routes::response(reply, full)),
        Outcome::Watch(plan) => Ok(Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(watch::body(shared, plan))
            .expect("watch response")),
    }
}

/// Fails (or holds, then fails) the request when `name` is partitioned; `Some` is the 503
/// answer of [`Partition::Unavailable`].
async fn partitioned(
    shared: &Mutex<State>,
    name: &str,
) -> Result<Option<routes::Reply>, TransportError> {
    let (mode, mut changes) = {
        let state = lock(shared);
        (state.partitions.get(name).copied(), state.store.subscribe())
    };
    match mode {
        None => Ok(None),
        Some(Partition::Refuse) => Err(cut_off(name)),
        Some(Partition::Unavailable) => {
            let failure = Failure::new(
                503,
                "ServiceUnavailable",
                format!("fake: client {name:?} is partitioned from the apiserver"),
            );
            Ok(Some(failure_reply(&failure)))
        }
        Some(Partition::Hang) => {
            loop {
                changes.borrow_and_update();
                if lock(shared).partitions.get(name) != Some(&Partition::Hang) {
                    break;
                }
                if changes.changed().await.is_err() {
                    break;
                }
            }
            Err(cut_off(name))
        }
    }
}

pub(crate) fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().expect("fake state lock poisoned")
}
