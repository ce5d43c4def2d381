//! Watch responses: a body that streams one JSON event per line as changes happen.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use serde_json::{Value, json};
use tokio::{sync::watch, time::Instant};

use crate::{
    State,
    kinds::Resource,
    select::Selector,
    service::{ResBody, TransportError, cut_off},
};

/// Which objects a watch (or list) is about.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub resource: Resource,
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: Selector,
}

impl Filter {
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.matches_labels(object)
            && self.fields.matches_fields(object)
    }
}

/// A watch as the routes set it up, before its body streams.
#[derive(Debug)]
pub(crate) struct WatchPlan {
    pub filter: Filter,
    /// Events to send before any change (synthetic ADDED events, a bookmark).
    pub initial: Vec<Value>,
    /// Changes after this resourceVersion are sent.
    pub cursor: u64,
    /// `timeoutSeconds`: the stream ends after this long.
    pub timeout: Duration,
    /// Send only metadata (`PartialObjectMetadata`).
    pub partial: bool,
    /// The named client asking, whose partition cuts the stream.
    pub client: Option<String>,
    /// Wakes the stream on every change; subscribed while the request held the lock, so
    /// no change after the plan was made is missed.
    pub changes: watch::Receiver<u64>,
}

/// A watch event line's JSON.
pub(crate) fn event(kind: &str, object: &Value, partial: bool) -> Value {
    let object = if partial {
        partial_metadata(object)
    } else {
        object.clone()
    };
    json!({ "type": kind, "object": object })
}

/// The `PartialObjectMetadata` form of `object`.
pub(crate) fn partial_metadata(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object["metadata"],
    })
}

/// The streaming body of a watch that follows `plan` on `shared`.
pub(crate) fn body(shared: Arc<Mutex<State>>, plan: WatchPlan) -> ResBody {
    let deadline = Instant::now() + plan.timeout;
    let pending: VecDeque<Value> = plan.initial.iter().cloned().collect();
    let stream = Stream {
        shared,
        plan,
        pending,
        deadline,
        done: false,
    };
    let frames = futures::stream::unfold(stream, |mut stream| async move {
        let frame = stream.next().await?;
        Some((frame, stream))
    });
    StreamBody::new(frames).boxed_unsync()
}

struct Stream {
    shared: Arc<Mutex<State>>,
    plan: WatchPlan,
    pending: VecDeque<Value>,
    deadline: Instant,
    done: bool,
}

impl Stream {
    /// The next frame: a pending event, or one that happens before the deadline.
    async fn next(&mut self) -> Option<Result<Frame<Bytes>, TransportError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                let mut line = event.to_string().into_bytes();
                line.push(b'\n');
                return Some(Ok(Frame::data(Bytes::from(line))));
            }
            if self.done {
                return None;
            }
            // Marks what is seen now, so `changed` below wakes for anything later.
            self.plan.changes.borrow_and_update();
            if let Err(error) = self.collect() {
                self.done = true;
                return Some(Err(error));
            }
            if !self.pending.is_empty() {
                continue;
            }
            tokio::select! {
                changed = self.plan.changes.changed() => {
                    // The fake is gone: nothing more will happen.
                    if changed.is_err() {
                        self.done = true;
                    }
                }
                () = tokio::time::sleep_until(self.deadline) => self.done = true,
            }
        }
    }

    /// Queues the changes after the cursor that the watch selects.
    fn collect(&mut self) -> Result<(), TransportError> {
        let state = self.shared.lock().expect("fake state lock poisoned");
        if let Some(name) = &self.plan.client
            && state.partitions.contains_key(name)
        {
            return Err(cut_off(name));
        }
        let store = &state.store;
        let Some(changes) = store.changes_since(self.plan.cursor) else {
            let message = format!(
                "too old resource version: {} ({})",
                self.plan.cursor,
                store.oldest_revision()
            );
            self.pending.push_back(json!({
                "type": "ERROR",
                "object": crate::objects::status_error(410, "Expired", &message),
            }));
            self.done = true;
            return Ok(());
        };
        let held = state.held_watches.get(&self.plan.filter.resource);
        for change in changes {
            // A held change and everything after it wait for the release.
            if held.is_some_and(|after| change.revision > *after) {
                self.plan.cursor = change.revision - 1;
                return Ok(());
            }
            if change.key.resource == self.plan.filter.resource
                && self.plan.filter.matches(&change.object)
            {
                self.pending.push_back(event(
                    change.kind.as_str(),
                    &change.object,
                    self.plan.partial,
                ));
            }
        }
        self.plan.cursor = store.revision();
        Ok(())
    }
}
