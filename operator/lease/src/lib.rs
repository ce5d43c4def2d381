//! Leader election over a `coordination.k8s.io/v1` Lease, so that one replica acts at a
//! time: the operator's leader, and the model cache's one coordinator per model.
//!
//! Every write to the Lease is a compare-and-swap: a create when it is absent, or a replace
//! carrying the `metadata.resourceVersion` that was read, which the apiserver refuses with
//! 409 Conflict when anyone wrote in between. Two candidates can therefore never both win
//! the same Lease version (the popular `kube-leader-election` crate patches without that
//! precondition and can yield two leaders).
//!
//! Timing, after client-go: the leader renews every `renew_interval`, each renewal sent
//! `renew_interval` after the previous successful one was sent and given `renew_interval`
//! to answer; the first one that fails, for any reason, ends its leadership at once. A
//! follower takes the Lease only when the holder is empty, or when it has seen the same
//! record unchanged for a whole lease duration on its own monotonic clock (never by
//! comparing `renewTime` with its wall clock, which may be skewed). With `lease_duration`
//! above twice `renew_interval`, a leader cut off after its last successful renewal sent at
//! `t` stops by `t + 2 × renew_interval`, before any follower can take over at the earliest
//! `t + lease_duration`.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
};
use tokio::{
    sync::watch,
    time::{Instant, sleep, sleep_until, timeout},
};
use tracing::{debug, info, warn};

mod error;

pub use error::{Error, Result};

/// Settings; defaults: lease 15 s, renew every 5 s, retry (while not leader) every 2 s.
///
/// Times are measured with tokio's clock, so tests may use short durations or a paused
/// runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity in `holderIdentity`; unique per replica (e.g. the pod name).
    pub identity: String,
    /// How long a follower waits, after the Lease last changed, before taking it over.
    pub lease_duration: Duration,
    /// How often the leader renews, and how long one renewal may take.
    pub renew_interval: Duration,
    /// How often a follower tries to acquire.
    pub retry_interval: Duration,
}

impl LeaseConfig {
    /// Settings for Lease `namespace/name` held as `identity`, with the default timing.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            retry_interval: Duration::from_secs(2),
        }
    }

    /// `namespace/name`, for messages.
    fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `leaseDurationSeconds` as written: whole seconds, rounded up, at least 1.
    fn duration_seconds(&self) -> i32 {
        let millis = self.lease_duration.as_millis().div_ceil(1000).max(1);
        i32::try_from(millis).unwrap_or(i32::MAX)
    }

    fn validate(&self) -> Result<()> {
        let problem = if self.namespace.is_empty() || self.name.is_empty() {
            Some("the Lease namespace and name must be set")
        } else if self.identity.is_empty() {
            Some("the identity must be set")
        } else if self.renew_interval.is_zero() || self.retry_interval.is_zero() {
            Some("renew_interval and retry_interval must be above zero")
        } else if self.lease_duration <= self.renew_interval * 2 {
            Some("lease_duration must exceed twice renew_interval")
        } else {
            None
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(Error::ConfigureLease {
                lease: self.lease(),
                problem: format!(
                    "{problem} (got lease {:?}, renew {:?}, retry {:?}, identity {:?})",
                    self.lease_duration, self.renew_interval, self.retry_interval, self.identity
                ),
                hint: "the defaults are lease 15 s, renew 5 s, retry 2 s; a cut-off leader \
                       stops within two renewals, so the lease must last longer than that"
                    .into(),
            }),
        }
    }
}

/// What an election reports to whoever acts on it: `bool` (leading or not), or
/// `Option<i32>`, the Lease's `leaseTransitions` while leading. That count grows with every
/// change of holder, so it serves as an epoch: a holder's epoch is higher than that of
/// every holder before it, and a receiver can fence off answers from an older one.
pub trait Leadership: Clone + PartialEq + Send + Sync + 'static {
    /// The report for a leader at `epoch`, or for no leadership (`None`).
    fn from_epoch(epoch: Option<i32>) -> Self;
}

impl Leadership for bool {
    fn from_epoch(epoch: Option<i32>) -> Self {
        epoch.is_some()
    }
}

impl Leadership for Option<i32> {
    fn from_epoch(epoch: Option<i32>) -> Self {
        epoch
    }
}

/// Runs the election forever. `tx` carries a leading report while this replica leads. A renewal that fails
/// for any reason (409 Conflict on the resourceVersion precondition, a transport error, or no
/// answer within renew_interval) sends false at once ("stops acting immediately") before trying
/// to acquire again. Acquire/renew is a `replace` (PUT) carrying `metadata.resourceVersion`
/// as read (create when absent), so two candidates never both win.
///
/// Returns `Ok(())` when every receiver of `tx` is gone (nobody acts on leadership any
/// more), and an error only for settings that cannot keep one leader at a time. Stop it
/// (drop or abort the task) before [`release`].
pub async fn elect<T: Leadership>(
    client: Client,
    cfg: LeaseConfig,
    tx: watch::Sender<T>,
) -> Result<()> {
    cfg.validate()?;
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut candidate = Candidate {
        api: &api,
        cfg: &cfg,
        observed: None,
    };
    set(&tx, None);
    loop {
        if tx.is_closed() {
            return Ok(());
        }
        let Some(mut held) = candidate.try_acquire().await else {
            sleep(cfg.retry_interval).await;
            continue;
        };
        let epoch = held
            .lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0);
        set(&tx, Some(epoch));
        info!(lease = %cfg.lease(), identity = %cfg.identity, epoch, "leading");
        loop {
            sleep_until(held.sent + cfg.renew_interval).await;
            if tx.is_closed() {
                return Ok(());
            }
            match candidate.renew(&held.lease).await {
                Ok(renewed) => held = renewed,
                Err(reason) => {
                    // Before anything else: whoever acts on leadership stops now.
                    set(&tx, None);
                    warn!(lease = %cfg.lease(), identity = %cfg.identity, %reason,
                        "lost leadership: renewal failed");
                    break;
                }
            }
        }
        candidate.observed = None;
        sleep(cfg.retry_interval).await;
    }
}

/// Releases the lease on shutdown (holderIdentity cleared, with the resourceVersion precondition).
///
/// Does nothing when this replica does not hold it. Each request may take `renew_interval`.
/// Stop [`elect`] first, or it may take the Lease again.
pub async fn release(client: &Client, cfg: &LeaseConfig) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let deadline = cfg.renew_interval;
    let lease_name = cfg.lease();
    let timed_out = || Error::ReleaseLease {
        lease: lease_name.clone(),
        reason: format!("no answer within {deadline:?}"),
    };
    // A conflict means the Lease changed since it was read: read it again and decide anew.
    for _ in 0..3 {
        let read = timeout(deadline, api.get_opt(&cfg.name))
            .await
            .map_err(|_| timed_out())?
            .map_err(Error::kube(format!(
                "read Lease {lease_name} to release it"
            )))?;
        let Some(mut lease) = read else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            debug!(lease = %lease_name, holder = ?spec.holder_identity, "not ours to release");
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match timeout(
            deadline,
            api.replace(&cfg.name, &PostParams::default(), &lease),
        )
        .await
        {
            Err(_) => return Err(timed_out()),
            Ok(Ok(_)) => {
                info!(lease = %lease_name, identity = %cfg.identity, "released");
                return Ok(());
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => continue,
            Ok(Err(source)) => {
                return Err(Error::Kube {
                    action: format!("release Lease {lease_name}"),
                    source,
                });
            }
        }
    }
    Err(Error::ReleaseLease {
        lease: lease_name,
        reason: "it changed between each read and write (409 Conflict three times)".into(),
    })
}

/// The Lease as this replica last wrote it, and when that write was sent.
struct Held {
    lease: Lease,
    sent: Instant,
}

/// What one Lease record looks like to a follower: holder, renewTime, resourceVersion.
type Record = (Option<String>, Option<Timestamp>, Option<String>);

struct Candidate<'a> {
    api: &'a Api<Lease>,
    cfg: &'a LeaseConfig,
    /// The record last seen and when it was first seen so, on this replica's clock.
    observed: Option<(Record, Instant)>,
}

impl Candidate<'_> {
    /// One attempt: read the Lease and take it when absent, free, ours or expired.
    async fn try_acquire(&mut self) -> Option<Held> {
        let cfg = self.cfg;
        let lease = match timeout(cfg.renew_interval, self.api.get_opt(&cfg.name)).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(e)) => {
                debug!(lease = %cfg.lease(), error = %e, "cannot read the Lease");
                return None;
            }
            Err(_) => {
                debug!(lease = %cfg.lease(), "no answer reading the Lease");
                return None;
            }
        };
        let Some(lease) = lease else {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.taken_spec(None)),
            };
            let sent = Instant::now();
            let params = PostParams::default();
            let created = timeout(cfg.renew_interval, self.api.create(&params, &fresh)).await;
            return self.written(created, sent, "create");
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (
            holder.clone(),
            spec.renew_time.as_ref().map(|t| t.0),
            lease.resource_version(),
        );
        let now = Instant::now();
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                self.observed = Some((record, now));
                now
            }
        };
        let takeable = match holder.as_deref() {
            None => true,
            Some(me) if me == cfg.identity => true,
            Some(other) => {
                // The holder's own duration counts when it is longer than ours.
                let theirs = spec
                    .lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(Duration::ZERO, Duration::from_secs);
                let expired = now.duration_since(first_seen) > theirs.max(cfg.lease_duration);
                if !expired {
                    debug!(lease = %cfg.lease(), holder = other, "following");
                }
                expired
            }
        };
        if !takeable {
            return None;
        }
        let mut taken = lease.clone();
        taken.spec = Some(self.taken_spec(Some(&spec)));
        let sent = Instant::now();
        let params = PostParams::default();
        let replaced = timeout(
            cfg.renew_interval,
            self.api.replace(&cfg.name, &params, &taken),
        )
        .await;
        self.written(replaced, sent, "take over")
    }

    /// Renews the Lease as last written; `Err` says why it failed.
    async fn renew(&self, held: &Lease) -> Result<Held, String> {
        let mut next = held.clone();
        let spec = next.spec.get_or_insert_with(LeaseSpec::default);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        spec.lease_duration_seconds = Some(self.cfg.duration_seconds());
        let sent = Instant::now();
        let answer = timeout(
            self.cfg.renew_interval,
            self.api
                .replace(&self.cfg.name, &PostParams::default(), &next),
        )
        .await;
        match answer {
            Ok(Ok(lease)) => Ok(Held { lease, sent }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.cfg.renew_interval)),
        }
    }

    /// The spec of a Lease this replica takes, from the `previous` one if any.
    fn taken_spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let previous_holder = previous.and_then(|p| p.holder_identity.as_deref());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        let changed_hands = previous_holder != Some(self.cfg.identity.as_str());
        LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.duration_seconds()),
            acquire_time: if changed_hands {
                Some(now.clone())
            } else {
                previous.and_then(|p| p.acquire_time.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if changed_hands && previous.is_some() {
                transitions.saturating_add(1)
            } else {
                transitions
            }),
            ..previous.cloned().unwrap_or_default()
        }
    }

    /// The outcome of an acquiring write.
    fn written(
        &self,
        answer: Result<kube::Result<Lease>, tokio::time::error::Elapsed>,
        sent: Instant,
        what: &str,
    ) -> Option<Held> {
        let lease = self.cfg.lease();
        match answer {
            Ok(Ok(written)) => Some(Held {
                lease: written,
                sent,
            }),
            Ok(Err(e)) => {
                // 409: another candidate won this version; anything else: try again later.
                debug!(%lease, error = %e, "{what} failed");
                None
            }
            Err(_) => {
                debug!(%lease, "{what}: no answer in time");
                None
            }
        }
    }
}

/// Sets the leadership flag, waking receivers only when it changes.
fn set<T: Leadership>(tx: &watch::Sender<T>, epoch: Option<i32>) {
    let next = T::from_epoch(epoch);
    tx.send_if_modified(|current| {
        let changed = *current != next;
        *current = next;
        changed
    });
}

/// Runs `act` while this replica holds the Lease, until `shutdown` completes: the future
/// `act` returns is dropped the moment leadership is lost (so whatever it was doing stops
/// mid-way) and made anew when it is won again. On shutdown the Lease is released if held,
/// so a standby takes over at once rather than after the lease expires.
pub async fn lead<F, Fut>(
    client: Client,
    cfg: LeaseConfig,
    shutdown: impl Future<Output = ()>,
    mut act: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let (tx, mut leading) = watch::channel(false);
    let mut election = tokio::spawn(elect(client.clone(), cfg.clone(), tx));
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            open = async { leading.wait_for(|l| *l).await.is_ok() } => if !open {
                break ended(&mut election).await;
            },
        }
        info!(lease = %cfg.lease(), identity = %cfg.identity, "leading: acting");
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = act() => warn!(lease = %cfg.lease(), "stopped acting while leading; starting again"),
            open = async { leading.wait_for(|l| !*l).await.is_ok() } => {
                if !open {
                    break ended(&mut election).await;
                }
                warn!(lease = %cfg.lease(), identity = %cfg.identity, "lost the Lease: stopped acting");
            }
        }
    };
    // The election stops first: left running, it could take the Lease again after release.
    election.abort();
    let held = *leading.borrow();
    if held && let Err(e) = release(&client, &cfg).await {
        warn!("releasing the Lease: {e}");
    }
    result
}

async fn ended(election: &mut tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    match election.await {
        Ok(result) => result,
        Err(e) => Err(Error::Election {
            reason: e.to_string(),
        }),
    }
}
