//! The test bed every reconciler scenario runs on: the API (the TEST STAND-IN alone, or
//! kubegrid's Clusters and Nodes on a real API server with everything else on the stand-in),
//! the journal's folder, the scripted runner's shared state, and the operator's replicas.
//!
//! On the real server ([`Backend::Real`]) a replica's one `kube::Client` routes kubegrid.io
//! requests to the real server and Secrets, Events and Leases to the fake
//! (`RealApiServer::routed_client`), and the harness's mirror copies the real Clusters and
//! Nodes into the fake, so a scenario reads and waits on them with the fake's helpers either
//! way. Its writes to Clusters and Nodes go through [`Bed::put`] and [`Bed::delete_object`],
//! which reach whichever server holds them.

use std::{
    ops::Deref,
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{
    Api,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::ApiResource,
};
use kubegrid_controller::{
    Backoff, Context, Scope, Settings, health::Probes, leader::LeaseConfig, metrics::Metrics,
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_journal::Journal;
use kubegrid_real_apiserver::{Mirror, RealApiServer, mirror::kubegrid_resources};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::{
    common::{API, PATIENCE, bundle_manifest, cluster, within},
    scripted::{Call, Plan, ScriptedRunner},
};

/// Runs each scenario `async fn NAME(backend: Backend)` twice, as the tests
/// `NAME::on_the_fake` and `NAME::on_the_real_server`. The second is SKIPPED (a line says
/// so) outside CI when the real server is not built, and fails in CI.
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_the_fake() {
                super::$name($crate::bed::Backend::Fake).await;
            }

            #[tokio::test]
            async fn on_the_real_server() {
                if let Some(backend) = $crate::bed::Backend::real(stringify!($name)).await {
                    super::$name(backend).await;
                }
            }
        }
    )+};
}

/// Where a scenario's Clusters and Nodes live.
pub enum Backend {
    /// On the TEST STAND-IN, with everything else.
    Fake,
    /// On a real API server; Secrets, Events and Leases stay on the stand-in.
    Real(Box<RealApiServer>),
}

impl Backend {
    /// A real API server for test `test`, or `None` (the test is SKIPPED) outside CI when
    /// it is not built.
    pub async fn real(test: &str) -> Option<Self> {
        RealApiServer::for_test(test)
            .await
            .map(|server| Self::Real(Box::new(server)))
    }
}

/// The real server of a bed and the mirror of its Clusters and Nodes.
struct Real {
    // Declared first: the mirror's watches stop before the server does.
    mirror: Mirror,
    server: Box<RealApiServer>,
}

/// Everything a scenario shares between replicas. It derefs to the fake, whose helpers
/// (`get_object`, `wait_for`, ...) see the Clusters and Nodes wherever they live.
pub struct Bed {
    /// The stand-in API (with the mirror's copies of the real Clusters and Nodes).
    pub fake: FakeCluster,
    real: Option<Real>,
    /// The journal's directory.
    pub dir: tempfile::TempDir,
    /// Every runner call.
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// Opens the runners' halfway gate.
    pub gate: watch::Sender<bool>,
    /// Which hosts fail.
    pub plan: Arc<Plan>,
    /// Bumped whenever a call starts or ends.
    pub tick: Arc<watch::Sender<u64>>,
    /// The kubelet version the scripted upgrades left on each Node.
    pub upgraded: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    /// Every upgrade step the scripted runners ran, in order.
    pub steps_run: Arc<Mutex<Vec<String>>>,
    /// The scripted certificates operations.
    pub certs: Arc<crate::scripted_certs::CertsScript>,
}

impl Drop for Bed {
    /// The real server warns about each unknown field it prunes from a write, and more: the
    /// operator must write nothing it warns about.
    fn drop(&mut self) {
        if let Some(real) = &self.real
            && !std::thread::panicking()
        {
            let warnings = real.server.routed_warnings();
            assert!(
                warnings.is_empty(),
                "the real server warned the operator: {warnings:#?}"
            );
        }
    }
}

impl Deref for Bed {
    type Target = FakeCluster;

    fn deref(&self) -> &FakeCluster {
        &self.fake
    }
}

impl Bed {
    /// A bed with everything on `fake` whose runs fail as `plan` says and pass the gate only
    /// once opened (`open` opens it from the start).
    pub fn new(fake: FakeCluster, open: bool, plan: Arc<Plan>) -> Self {
        // RUST_LOG=kubegrid_controller=debug shows the reconciler's log lines in failures.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // spec.bundle.source `bundle` resolves against the spec dir, the one bundle root: the
        // operator checks its manifest against the spec; the scripted runner never opens the
        // artifacts.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bundles/bundle")).unwrap();
        std::fs::write(
            dir.path().join("bundles/bundle/manifest.yaml"),
            bundle_manifest(&[]),
        )
        .unwrap();
        Self {
            fake,
            real: None,
            dir,
            calls: Arc::default(),
            gate: watch::channel(open).0,
            plan,
            tick: Arc::new(watch::channel(0).0),
            upgraded: Arc::default(),
            steps_run: Arc::default(),
            certs: Arc::default(),
        }
    }

    /// Like [`Bed::new`], on `backend`: on the real server, kubegrid's CRDs are applied and
    /// the Clusters and Nodes `fake` was seeded with move there (created as a user would),
    /// copied back by the mirror.
    pub async fn on(backend: Backend, fake: FakeCluster, open: bool, plan: Arc<Plan>) -> Self {
        let mut bed = Self::new(fake, open, plan);
        let Backend::Real(server) = backend else {
            return bed;
        };
        server
            .apply_crds(&kubegrid_api::crds())
            .await
            .expect("kubegrid's CRDs apply to the real server");
        for resource in kubegrid_resources() {
            for object in bed.fake.list_objects(API, &resource.kind, None) {
                let (ns, name) = namespace_and_name(&object);
                bed.fake.mirror_remove(API, &resource.kind, &ns, &name);
                create(&server.client(), &resource, object).await;
            }
        }
        let mirror = server
            .mirror(&bed.fake, kubegrid_resources())
            .await
            .expect("the mirror starts");
        bed.real = Some(Real { mirror, server });
        bed
    }

    /// Stores `object` as [`FakeCluster::put`] does, and returns it as stored. A Cluster or
    /// Node on the real server is created there, or changed by a merge patch of what differs
    /// from the copy the scenario read (so the operator's concurrent writes to other fields
    /// stay); the call returns once the copy shows the write.
    pub async fn put(&self, object: Value) -> Value {
        let Some((real, resource)) = self.real_for(&object["kind"]) else {
            return self.fake.put(object);
        };
        let (ns, name) = namespace_and_name(&object);
        match self.fake.get_object(API, &resource.kind, &ns, &name) {
            None => create(&real.server.client(), &resource, object).await,
            Some(read) => patch(&real.server.client(), &resource, &read, object).await,
        }
        self.settle().await;
        self.fake
            .get_object(API, &resource.kind, &ns, &name)
            .unwrap_or(Value::Null)
    }

    /// Deletes an object as [`FakeCluster::delete_object`] does (one with finalizers only
    /// gets a `deletionTimestamp`), on the server that holds it; returns whether it existed.
    pub async fn delete_object(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> bool {
        let Some((real, resource)) = self.real_for(&json!(kind)).filter(|_| api_version == API)
        else {
            return self.fake.delete_object(api_version, kind, ns, name);
        };
        let api: Api<DynamicObject> = Api::namespaced_with(real.server.client(), ns, &resource);
        let existed = match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(e) => panic!("delete of {kind} {ns}/{name} on the real server failed: {e}"),
        };
        self.settle().await;
        existed
    }

    /// On the real server, brings the mirror's copies up to the server's current state, so
    /// that what a scenario reads next is as recent as what it waited for; nothing on the
    /// fake alone.
    pub async fn settle(&self) {
        if let Some(real) = &self.real {
            real.mirror
                .sync()
                .await
                .expect("the mirror lists the real server");
        }
    }

    /// The real server and the resource of a `kind` it holds, on the real backend.
    fn real_for(&self, kind: &Value) -> Option<(&Real, ApiResource)> {
        let real = self.real.as_ref()?;
        let resource = kubegrid_resources()
            .into_iter()
            .find(|r| *kind == r.kind.as_str())?;
        Some((real, resource))
    }

    /// A replica named `name`, with a fast backoff.
    pub async fn replica(&self, name: &str) -> Replica {
        let journal = Journal::open(&self.dir.path().join("journal.db"))
            .await
            .unwrap();
        let runner = ScriptedRunner {
            replica: name.into(),
            calls: Arc::clone(&self.calls),
            gate: self.gate.subscribe(),
            plan: Arc::clone(&self.plan),
            tick: Arc::clone(&self.tick),
            upgraded: Arc::clone(&self.upgraded),
            steps_run: Arc::clone(&self.steps_run),
            certs: Arc::clone(&self.certs),
        };
        let metrics = Arc::new(Metrics::new());
        let client = match &self.real {
            Some(real) => real.server.routed_client(&self.fake, Some(name)),
            None => self.fake.client_as(name),
        };
        let ctx = Context::new(
            client,
            journal,
            Arc::new(runner),
            Arc::clone(&metrics),
            Arc::new(Probes::default()),
            Settings {
                work_dir: self.dir.path().join(format!("work-{name}")),
                spec_dir: self.dir.path().join("bundles"),
                bundle_roots: vec![self.dir.path().join("bundles")],
                backoff: Backoff {
                    base: Duration::from_millis(100),
                    cap: Duration::from_millis(400),
                },
            },
            name,
        );
        Replica {
            ctx: Arc::new(ctx),
            metrics,
        }
    }

    /// Runs replica `name` (election and controller) until the returned sender is dropped or
    /// sent to.
    pub async fn start(
        &self,
        name: &str,
        lease: Duration,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
        Arc<Metrics>,
    ) {
        let r = self.replica(name).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cfg = LeaseConfig {
            namespace: "kubegrid-system".into(),
            name: "kubegrid-operator".into(),
            identity: name.into(),
            lease_duration: lease,
            renew_interval: lease / 4,
            retry_interval: lease / 8,
        };
        let handle = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            kubegrid_controller::run(r.ctx, Scope::All, cfg, shutdown)
                .await
                .unwrap();
        });
        (stop, handle, r.metrics)
    }

    /// Waits until `check` finds something in the calls, failing the test after
    /// [`PATIENCE`].
    pub async fn calls_until<T>(
        &self,
        what: &str,
        mut check: impl FnMut(&[Call]) -> Option<T>,
    ) -> T {
        let mut tick = self.tick.subscribe();
        within(what, async {
            loop {
                tick.borrow_and_update();
                if let Some(found) = check(&self.calls()) {
                    return found;
                }
                let _ = tick.changed().await;
            }
        })
        .await
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// One operator replica: a Context on a named client of the bed's API.
pub struct Replica {
    /// Its context.
    pub ctx: Arc<Context>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
}

/// Waits for `check` on the bed's objects, failing the test after [`PATIENCE`] with `what`;
/// on the real server, the copies are then brought up to date (see [`Bed::settle`]).
pub async fn eventually<T>(
    bed: &Bed,
    what: &str,
    check: impl FnMut(&FakeCluster) -> Option<T>,
) -> T {
    let found = match tokio::time::timeout(PATIENCE, bed.fake.wait_for(check)).await {
        Ok(v) => v,
        Err(_) => panic!(
            "timed out waiting for: {what}\ncluster: {:#}",
            cluster(&bed.fake)
        ),
    };
    bed.settle().await;
    found
}

fn namespace_and_name(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    let text = |field: &str| meta[field].as_str().unwrap_or_default().to_owned();
    (text("namespace"), text("name"))
}

/// Metadata the server sets: a user's create or edit never carries it.
const SERVER_METADATA: [&str; 8] = [
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Creates `object` on the real server as a user would (its status, if any, written through
/// the status subresource afterwards), failing the test with the server's refusal.
async fn create(client: &kube::Client, resource: &ApiResource, mut object: Value) {
    let (ns, name) = namespace_and_name(&object);
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in SERVER_METADATA {
            meta.remove(field);
        }
    }
    let status = object.as_object_mut().and_then(|o| o.remove("status"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, resource);
    let typed: DynamicObject = serde_json::from_value(object).expect("a Kubernetes object");
    api.create(&PostParams::default(), &typed)
        .await
        .unwrap_or_else(|e| panic!("the real server refused {} {ns}/{name}: {e}", resource.kind));
    if let Some(status) = status.filter(|s| !s.is_null()) {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the real server refused the status of {} {ns}/{name}: {e}",
                resource.kind
            )
        });
    }
}

/// Changes what differs between `read` (the copy the scenario edited) and `edited` on the real
/// server: a merge patch of the main resource, another of the status subresource.
async fn patch(client: &kube::Client, resource: &ApiResource, read: &Value, edited: Value) {
    let (ns, name) = namespace_and_name(&edited);
    let mut diff = merge_diff(read, &edited);
    if let Some(meta) = diff.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            meta.remove(field);
        }
    }
    let status = diff.as_object_mut().and_then(|d| d.remove("status"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, resource);
    let refused = |e: kube::Error| -> DynamicObject {
        panic!(
            "the real server refused the edit of {} {ns}/{name}: {e}",
            resource.kind
        )
    };
    if diff.as_object().is_some_and(|d| !d.is_empty()) {
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&diff))
            .await
            .unwrap_or_else(refused);
    }
    if let Some(status) = status {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap_or_else(refused);
    }
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`.
fn merge_diff(from: &Value, to: &Value) -> Value {
    let (Value::Object(from), Value::Object(to)) = (from, to) else {
        return to.clone();
    };
    let mut patch = Map::new();
    for (field, value) in to {
        match from.get(field) {
            Some(old) if old == value => {}
            Some(old) => {
                patch.insert(field.clone(), merge_diff(old, value));
            }
            None => {
                patch.insert(field.clone(), value.clone());
            }
        }
    }
    for field in from.keys().filter(|f| !to.contains_key(*f)) {
        patch.insert(field.clone(), Value::Null);
    }
    Value::Object(patch)
}
