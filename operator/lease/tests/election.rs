//! Leader election against the fake apiserver: acquiring, following, losing the lead when
//! cut off, racing for a free Lease, and handing over on release. Replicas are in-process
//! `elect` tasks with named clients, so the fake can partition one of them.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use kubegrid_fake_apiserver::{FakeCluster, Partition};
use kubegrid_lease::{self as leader, Error, LeaseConfig, Result};
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

const NAMESPACE: &str = "kubegrid";
const LEASE: &str = "kubegrid-operator";
const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/kubegrid/leases";
/// How long any awaited condition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Short timing: a cut-off leader stops within 2 × 250 ms, well inside the 1 s lease.
fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(1),
        renew_interval: Duration::from_millis(250),
        retry_interval: Duration::from_millis(50),
        ..LeaseConfig::new(NAMESPACE, LEASE, identity)
    }
}

/// Leadership transitions of every replica: when, who, leading or not.
type Log = Arc<Mutex<Vec<(Instant, String, bool)>>>;

/// One operator replica's election, with its transitions recorded in a shared log.
struct Replica {
    id: String,
    rx: watch::Receiver<bool>,
    election: JoinHandle<Result<()>>,
    recorder: JoinHandle<()>,
    log: Log,
}

impl Replica {
    fn start(fake: &FakeCluster, cfg: LeaseConfig, log: &Log) -> Self {
        let id = cfg.identity.clone();
        let (tx, rx) = watch::channel(false);
        let election = tokio::spawn(leader::elect(fake.client_as(&id), cfg, tx));
        let (mut seen, who, shared) = (rx.clone(), id.clone(), Arc::clone(log));
        let recorder = tokio::spawn(async move {
            // Ends once the election is gone and every value it sent has been recorded.
            while seen.changed().await.is_ok() {
                let leading = *seen.borrow_and_update();
                shared
                    .lock()
                    .unwrap()
                    .push((Instant::now(), who.clone(), leading));
            }
        });
        Self {
            id,
            rx,
            election,
            recorder,
            log: Arc::clone(log),
        }
    }

    /// Waits until the replica's leadership is `leading`; returns when that was seen.
    async fn until(&mut self, leading: bool) -> Instant {
        let what = format!("{} to lead: {leading}", self.id);
        let changed = within(&what, self.rx.wait_for(|now| *now == leading)).await;
        changed.map(drop).expect("the election is running");
        Instant::now()
    }

    fn leading(&self) -> bool {
        *self.rx.borrow()
    }

    /// Stops the replica as a shutdown does: once this returns it no longer acts, and the
    /// log says so.
    async fn stop(self) {
        self.election.abort();
        let ended = self.election.await;
        assert!(ended.as_ref().is_err_and(|e| e.is_cancelled()), "{ended:?}");
        self.recorder.await.expect("recorder");
        let mut log = self.log.lock().unwrap();
        let last = log.iter().rev().find(|(_, id, _)| *id == self.id);
        if last.is_some_and(|(_, _, leading)| *leading) {
            log.push((Instant::now(), self.id.clone(), false));
        }
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}

fn lease(fake: &FakeCluster) -> Value {
    fake.get_object("coordination.k8s.io/v1", "Lease", NAMESPACE, LEASE)
        .expect("the Lease exists")
}

fn holder(fake: &FakeCluster) -> Option<String> {
    lease(fake)["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

fn time_field(lease: &Value, field: &str) -> Timestamp {
    lease["spec"][field]
        .as_str()
        .unwrap_or_else(|| panic!("spec.{field} in {lease}"))
        .parse()
        .expect("an RFC 3339 time")
}

/// Waits until `n` more writes reached the fake (the Lease is its only object here).
async fn writes(fake: &FakeCluster, n: u64) {
    let target = fake.resource_version() + n;
    within(
        &format!("{n} more Lease writes"),
        fake.wait_for(|f| (f.resource_version() >= target).then_some(())),
    )
    .await;
}

/// Waits until `client` has read the Lease at least once, i.e. is observing it. Reads do
/// not change the store, but the leader's renewals wake the wait often enough.
async fn observing(fake: &FakeCluster, client: &str) {
    let has_read = |f: &FakeCluster| {
        let requests = f.requests_from(client);
        requests.iter().any(|r| r.starts_with("GET")).then_some(())
    };
    within(
        &format!("{client} to read the Lease"),
        fake.wait_for(has_read),
    )
    .await;
}

/// Fails when two replicas were leading at the same instant.
fn assert_one_leader_at_a_time(log: &Log) {
    let mut events = log.lock().unwrap().clone();
    // At equal instants a step down sorts before a step up.
    events.sort_by_key(|(at, _, leading)| (*at, *leading));
    let mut leading = BTreeSet::new();
    for (at, id, up) in &events {
        if *up {
            assert!(
                leading.iter().all(|other| other == id),
                "{id} started leading at {at:?} while {leading:?} led; log: {events:#?}"
            );
            leading.insert(id.clone());
        } else {
            leading.remove(id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_acquires_and_keeps_renewing() {
    let fake = FakeCluster::new();
    let log = Log::default();
    let mut a = Replica::start(&fake, config("a"), &log);
    a.until(true).await;
    let acquired = lease(&fake);
    assert_eq!(holder(&fake).as_deref(), Some("a"));
    assert_eq!(acquired["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(acquired["spec"]["leaseTransitions"], 0);

    writes(&fake, 3).await;
    let renewed = lease(&fake);
    assert!(time_field(&renewed, "renewTime") > time_field(&acquired, "renewTime"));
    assert_eq!(
        renewed["spec"]["acquireTime"],
        acquired["spec"]["acquireTime"]
    );
    assert!(a.leading());
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_follows_while_the_first_renews() {
    let fake = FakeCluster::new();
    let log = Log::default();
    let mut a = Replica::start(&fake, config("a"), &log);
    a.until(true).await;
    let b = Replica::start(&fake, config("b"), &log);
    observing(&fake, "b").await;
    // Ten renewals span 2.5 lease durations: b must never see the lease expire.
    writes(&fake, 10).await;
    assert!(a.leading() && !b.leading());
    assert!(log.lock().unwrap().iter().all(|(_, id, _)| id == "a"));
    let b_requests = fake.requests_from("b");
    assert!(
        b_requests.iter().all(|r| r.starts_with("GET")),
        "a follower of a live lease only reads: {b_requests:?}"
    );
    assert_eq!(holder(&fake).as_deref(), Some("a"));
    b.stop().await;
    a.stop().await;
}

async fn partitioned_leader_hands_over_after_the_lease(how: Partition) {
    let fake = FakeCluster::new();
    let log = Log::default();
    let mut a = Replica::start(&fake, config("a"), &log);
    a.until(true).await;
    let mut b = Replica::start(&fake, config("b"), &log);
    observing(&fake, "b").await;

    let cut_at = Instant::now();
    fake.partition_with("a", how);
    let a_stopped = a.until(false).await;
    // a cannot write any more: this is the record b has to wait out.
    let last = lease(&fake);
    assert_eq!(last["spec"]["holderIdentity"], "a");
    let b_started = b.until(true).await;

    assert!(a_stopped < b_started, "a stopped before b started");
    assert!(
        a_stopped - cut_at < config("a").lease_duration,
        "a stopped at its next renewal ({:?} after the cut), before its lease could expire",
        a_stopped - cut_at
    );
    let taken = lease(&fake);
    assert_eq!(taken["spec"]["holderIdentity"], "b");
    assert_eq!(taken["spec"]["leaseTransitions"], 1);
    let waited = time_field(&taken, "acquireTime").duration_since(time_field(&last, "renewTime"));
    assert!(
        waited >= k8s_openapi::jiff::SignedDuration::from_secs(1),
        "b took over {waited:?} after a's last renewal, before the 1 s lease expired"
    );

    // Healed, a finds b renewing and follows.
    fake.heal("a");
    writes(&fake, 6).await;
    assert!(!a.leading() && b.leading());
    assert_one_leader_at_a_time(&log);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_leader_stops_at_once_and_the_other_waits_out_the_lease() {
    partitioned_leader_hands_over_after_the_lease(Partition::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_leader_stops_at_its_renewal_deadline() {
    partitioned_leader_hands_over_after_the_lease(Partition::Hang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_renewal_drops_leadership_before_retrying() {
    let fake = FakeCluster::new();
    let log = Log::default();
    let mut a = Replica::start(&fake, config("a"), &log);
    a.until(true).await;
    fake.fail_next("PUT", LEASE_PATH, 409, 1);
    a.until(false).await;
    // Nobody else wrote the Lease: a reads it back as its own and takes it again.
    a.until(true).await;
    a.stop().await;
    // Read after `stop`: by then every transition has been recorded (the last one by stop).
    let transitions: Vec<bool> = log.lock().unwrap().iter().map(|e| e.2).collect();
    assert_eq!(transitions, [true, false, true, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_candidates_never_lead_at_the_same_time() {
    let fake = FakeCluster::new();
    let log = Log::default();
    let mut contended = 0;
    for round in 0..24 {
        // Absent, released (no holder), or held by a replica that died long ago.
        match round % 3 {
            0 => {
                fake.delete_object("coordination.k8s.io/v1", "Lease", NAMESPACE, LEASE);
            }
            holder => {
                fake.put(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": { "name": LEASE, "namespace": NAMESPACE },
                "spec": {
                    "holderIdentity": if holder == 1 { "" } else { "ghost" },
                    "leaseDurationSeconds": 1,
                    "renewTime": "2020-01-01T00:00:00.000000Z",
                },
                }));
            }
        }
        let mark = fake.state().client_requests.len();
        let mut a = Replica::start(&fake, config("a"), &log);
        let mut b = Replica::start(&fake, config("b"), &log);
        within("a leader", async {
            tokio::select! {
                _ = a.until(true) => {}
                _ = b.until(true) => {}
            }
        })
        .await;
        // The winner renews twice; the loser keeps trying meanwhile.
        writes(&fake, 2).await;
        assert!(
            a.leading() != b.leading(),
            "round {round}: exactly one leads"
        );
        let winner = holder(&fake).expect("a holder");
        assert!(winner == "a" || winner == "b", "round {round}: {winner}");
        let writers: BTreeSet<String> = fake.state().client_requests[mark..]
            .iter()
            .filter(|(_, r)| r.starts_with("PUT") || r.starts_with("POST"))
            .map(|(client, _)| client.clone())
            .collect();
        contended += usize::from(writers.len() == 2);
        a.stop().await;
        b.stop().await;
        assert_one_leader_at_a_time(&log);
    }
    assert!(
        contended > 0,
        "in no round did both candidates try to write: the race was never run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_hands_over_promptly() {
    // A long lease: a handover that waited for expiry would take 4 s.
    let slow = |id: &str| LeaseConfig {
        lease_duration: Duration::from_secs(4),
        ..config(id)
    };
    let fake = FakeCluster::new();
    let log = Log::default();
    let mut a = Replica::start(&fake, slow("a"), &log);
    a.until(true).await;
    let mut b = Replica::start(&fake, slow("b"), &log);
    observing(&fake, "b").await;

    // A replica that does not hold the Lease releases nothing.
    leader::release(&fake.client(), &slow("b"))
        .await
        .expect("release by a follower");
    assert_eq!(holder(&fake).as_deref(), Some("a"));
    assert!(a.leading());

    let shutdown = Instant::now();
    a.stop().await;
    leader::release(&fake.client(), &slow("a"))
        .await
        .expect("release");
    let took_over = b.until(true).await - shutdown;
    assert!(
        took_over < Duration::from_secs(2),
        "b took {took_over:?}; it should not wait for the 4 s lease to expire"
    );
    assert_eq!(holder(&fake).as_deref(), Some("b"));
    assert_one_leader_at_a_time(&log);
    b.stop().await;
}

#[tokio::test]
async fn settings_that_cannot_keep_one_leader_are_refused() {
    let fake = FakeCluster::new();
    let cfg = LeaseConfig {
        lease_duration: Duration::from_millis(500),
        ..config("a")
    };
    let (tx, _rx) = watch::channel(false);
    let err = leader::elect(fake.client(), cfg, tx)
        .await
        .expect_err("a 500 ms lease with 250 ms renewals");
    assert!(matches!(err, Error::ConfigureLease { .. }), "{err:?}");
    assert!(err.to_string().contains("twice renew_interval"), "{err}");
    assert!(fake.state().requests.is_empty(), "nothing was written");
}
