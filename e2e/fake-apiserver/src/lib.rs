//! **TEST STAND-IN for kube-apiserver.** An in-memory Kubernetes API for kubegrid's tests,
//! because no real apiserver runs on the machines the tests use. It is never used by the
//! product: only test code depends on it (`publish = false`).
//!
//! It keeps nodes, pods and namespaces as JSON, answers the REST paths kubegrid-cluster uses,
//! and "runs" the pods the checks create according to rules ([`FakeCluster::rule`]): each
//! read of such a pod moves it one step along Pending → Running → its final phase, so the
//! code under test really waits.
//!
//! Every other resource (kubegrid's Clusters and Nodes, Secrets, ConfigMaps, Events, Leases,
//! ...) lives in a generic object store that answers the operator's traffic like
//! kube-apiserver: get, list and streaming watch (label and field selectors,
//! `resourceVersion`, bookmarks, `sendInitialEvents`), create (`generateName`, 409
//! AlreadyExists), replace (409 Conflict on a stale `metadata.resourceVersion`), merge, apply,
//! strategic-merge and JSON patches, and delete with finalizers. One resourceVersion counter
//! covers all writes; `metadata.generation` moves only when `spec` changes; on resources with
//! a status subresource (kubegrid.io `clusters` and `nodes`, more with
//! [`FakeCluster::enable_status_subresource`]) the main resource and `/status` each change
//! only their part. Errors are `Status` objects. Deliberate simplifications: no field
//! managers (apply and strategic merge patches merge like JSON merge patches), namespaces are
//! not checked on create, and a watch with a selector does not turn an object that stops
//! matching into a DELETED event.
//!
//! Tests seed and inspect objects with [`FakeCluster::put`], [`FakeCluster::get_object`] and
//! [`FakeCluster::list_objects`], wait on changes with [`FakeCluster::wait_for`], and inject
//! failures: [`FakeCluster::client_as`] makes a named client (over TLS a client is named by
//! its certificate's common name, or else its bearer token) that [`FakeCluster::partition`]
//! cuts off until [`FakeCluster::heal`], [`FakeCluster::fail_next`] fails matching
//! requests with a status code, and [`FakeCluster::hold_watches`] holds a resource's watch
//! events back (a lagging watch) until [`FakeCluster::release_watches`].
//!
//! A test that keeps kubegrid's Clusters and Nodes on a real API server (the
//! `kubegrid-real-apiserver` harness) has them copied in unchanged by the harness's mirror
//! ([`FakeCluster::mirror_put`], [`FakeCluster::mirror_remove`]), so the same helpers and
//! waiters see them.
//!
//! Two ways in:
//! - [`FakeCluster::client`]: a `kube::Client` whose requests never leave the process;
//! - [`serve_tls`] / [`serve_mutual_tls`]: the same API over HTTPS on a socket, for a
//!   `kubegrid` binary that connects with a kubeconfig like it would to a real cluster;
//!   [`serve_mutual_tls_files`] reads its certificate, key and client CA bundle from files on
//!   every handshake, to follow a certificate renewal or CA rotation that rewrites them.

mod error;
mod generic;
mod hooks;
mod kinds;
mod mirror;
mod objects;
mod routes;
mod seed;
mod select;
mod service;
mod store;
mod tls;
mod watch;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
};

use http::Request;
use kube::client::Body;
use serde_json::Value;

pub use self::{
    error::{Error, Result},
    objects::{node, owned_pod, system_pod},
    seed::{NSLOOKUP_OUTPUT, POD_NETWORK_PAGE},
    service::{Partition, ResBody as ResponseBody},
    tls::{
        ServerHandle, common_name, serve_mutual_tls, serve_mutual_tls_files, serve_tls,
        server_config,
    },
};

/// What a created pod does once "started", chosen by the first rule whose
/// needle occurs in its command line (arguments joined by spaces).
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Runs to completion with this phase and log.
    Exit {
        /// Whether it ends Succeeded (else Failed).
        succeed: bool,
        /// What `kubectl logs` shows afterwards.
        log: String,
    },
    /// Keeps running, becomes Ready and serves `page` on its pod IP.
    Serve {
        /// The body the server returns.
        page: String,
    },
    /// Fetches the URL that ends its command: succeeds with the page when a
    /// serving pod on another node has that IP and `network_up` is set,
    /// fails like busybox wget otherwise.
    Fetch {
        /// Whether pods on different nodes can reach each other.
        network_up: bool,
    },
}

/// A created pod's progress through its script.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub behaviour: Option<Behaviour>,
    pub step: u8,
}

/// One accepted merge patch of a Node.
#[derive(Debug, Clone)]
pub struct NodePatch {
    /// When it was applied.
    pub at: std::time::SystemTime,
    /// The Node's name.
    pub node: String,
    /// The merge patch.
    pub body: Value,
}

/// Everything the fake knows, shared with the service.
#[derive(Debug, Default)]
pub struct State {
    /// Nodes by name.
    pub nodes: BTreeMap<String, Value>,
    /// Pods by `(namespace, name)`.
    pub pods: BTreeMap<(String, String), Value>,
    /// Namespaces that exist.
    pub namespaces: BTreeSet<String>,
    /// Behaviour of created pods: the first `(needle, behaviour)` whose needle is in the
    /// pod's command line applies.
    pub rules: Vec<(String, Behaviour)>,
    /// `/readyz` answers 500 this many times before `ok`.
    pub readyz_failures: usize,
    /// `/readyz` never answers `ok`.
    pub readyz_down: bool,
    /// Eviction refusals (429) per `namespace/name`: `None` refuses forever.
    pub eviction_blocks: BTreeMap<String, Option<usize>>,
    /// Evictions answered 500 (several budgets match the pod), per `namespace/name`.
    pub eviction_errors: BTreeSet<String>,
    /// Pod creations refused with 403 as in a namespace whose `default`
    /// ServiceAccount does not exist yet.
    pub pod_create_refusals: usize,
    /// Accepted merge patches of Nodes (cordons, uncordons, labels, annotations), in order,
    /// with the time each was applied, for tests that order them against host events.
    pub node_patches: Vec<NodePatch>,
    /// Accepted evictions: `namespace/name` and the request body.
    pub evictions: Vec<(String, Value)>,
    /// Every request that reached the API as `METHOD path?query` (a partitioned client's
    /// requests never do).
    pub requests: Vec<String>,
    /// Pod bodies as the client posted them.
    pub created_pods: Vec<Value>,
    /// TLS handshakes completed by [`serve_tls`] / [`serve_mutual_tls`].
    pub tls_connections: usize,
    /// TLS handshakes that failed, with the reason (e.g. no or a foreign client certificate).
    pub tls_errors: Vec<String>,
    /// Requests of named clients as `(client, "METHOD path?query")`: in-process ones from
    /// [`FakeCluster::client_as`], and over TLS those named by their client certificate's
    /// common name or else their bearer token.
    pub client_requests: Vec<(String, String)>,
    pub(crate) store: store::Store,
    pub(crate) partitions: BTreeMap<String, Partition>,
    /// Resources whose watch events after a resourceVersion are held back.
    pub(crate) held_watches: BTreeMap<kinds::Resource, u64>,
    pub(crate) failures: Vec<routes::InjectedFailure>,
    pub(crate) scripts: BTreeMap<(String, String), Script>,
    pub(crate) logs: BTreeMap<(String, String), String>,
    pub(crate) counter: u64,
}

/// A fake cluster; clone it to keep a handle for assertions.
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
}

impl FakeCluster {
    /// An empty cluster with the namespaces every cluster has.
    pub fn new() -> Self {
        let fake = Self::default();
        fake.state()
            .namespaces
            .extend(["default".into(), "kube-system".into()]);
        fake
    }

    /// Locks the state for reading or changing it directly.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state lock poisoned")
    }

    /// Adds (or replaces) a Node, e.g. one made with [`node`].
    pub fn add_node(&self, node: Value) -> &Self {
        let name = node["metadata"]["name"]
            .as_str()
            .expect("node name")
            .to_owned();
        self.state().nodes.insert(name, node);
        self
    }

    /// Adds (or replaces) a Pod, e.g. one made with [`system_pod`].
    pub fn add_pod(&self, pod: Value) -> &Self {
        let key = objects::key_of(&pod);
        self.state().pods.insert(key, pod);
        self
    }

    /// Appends a rule: created pods whose command line contains `needle` behave so.
    pub fn rule(&self, needle: &str, behaviour: Behaviour) -> &Self {
        self.state().rules.push((needle.into(), behaviour));
        self
    }

    /// Requests whose `METHOD path` starts with `prefix`.
    pub fn requests_matching(&self, prefix: &str) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Names of the pods in `namespace`.
    pub fn pod_names(&self, namespace: &str) -> Vec<String> {
        let state = self.state();
        state
            .pods
            .keys()
            .filter(|(ns, _)| ns == namespace)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// A kube client whose every request this fake answers in process.
    pub fn client(&self) -> kube::Client {
        self.make_client(None)
    }

    /// Like [`FakeCluster::client`], but named `name`: [`FakeCluster::partition`] can cut it
    /// off, and its requests are also listed in [`State::client_requests`].
    pub fn client_as(&self, name: &str) -> kube::Client {
        self.make_client(Some(name.to_owned()))
    }

    fn make_client(&self, name: Option<String>) -> kube::Client {
        kube::Client::new(self.service(name), "default")
    }

    /// The tower service behind [`FakeCluster::client`] (named `name` as by
    /// [`FakeCluster::client_as`] when given), for a client that puts layers in front of the
    /// fake, such as one that routes some groups to a real API server.
    pub fn service(
        &self,
        name: Option<String>,
    ) -> impl tower::Service<
        Request<Body>,
        Response = http::Response<ResponseBody>,
        Error = std::io::Error,
        Future = impl Future<Output = std::result::Result<http::Response<ResponseBody>, std::io::Error>>
                 + Send
                 + 'static,
    > + Clone
    + Send
    + 'static {
        let state = Arc::clone(&self.state);
        tower::service_fn(move |request: Request<Body>| {
            let state = Arc::clone(&state);
            let name = name.clone();
            async move {
                let (parts, body) = request.into_parts();
                match body.collect_bytes().await {
                    Ok(bytes) => service::call(state, name, parts, bytes).await,
                    Err(e) => Ok(routes::response(
                        routes::bad_request(&format!("unreadable request body: {e}")),
                        service::full,
                    )),
                }
            }
        })
    }

    pub(crate) fn shared(&self) -> Arc<Mutex<State>> {
        Arc::clone(&self.state)
    }
}
