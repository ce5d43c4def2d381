//! What every reconcile shares.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};
use kubegrid_journal::Journal;

use crate::{health::Probes, metrics::Metrics, runner::Runner};

/// Retry delays after failures: `base`, doubling per consecutive failure, at most `cap`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// Knobs of the reconciler.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where SSH and bundle keys read from Secrets are written (an in-memory volume).
    pub work_dir: PathBuf,
    /// What relative paths in specs (spec.bundle.source) resolve against.
    pub spec_dir: PathBuf,
    /// The directories a Cluster's bundle must lie in (after following symbolic links); a
    /// `spec.bundle.source` anywhere else is refused as an invalid spec, unread.
    pub bundle_roots: Vec<PathBuf>,
    /// Retry delays.
    pub backoff: Backoff,
}

/// Consecutive failures of one Cluster, when the last one happened, and the intent it
/// happened under (`None`: a failure before the intent was known, which holds for any).
#[derive(Debug, Clone)]
struct Failures {
    count: u32,
    at: Instant,
    digest: Option<String>,
}

/// Shared by every reconcile.
pub struct Context {
    /// The management cluster's API.
    pub client: Client,
    /// The journal.
    pub journal: Journal,
    /// Runs operations.
    pub runner: Arc<dyn Runner>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Probe state.
    pub probes: Arc<Probes>,
    /// Knobs.
    pub settings: Settings,
    /// What the certificates watch remembers per Cluster.
    pub certs: crate::certs::Memory,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Context {
    /// A context; `identity` names this replica in Events.
    pub fn new(
        client: Client,
        journal: Journal,
        runner: Arc<dyn Runner>,
        metrics: Arc<Metrics>,
        probes: Arc<Probes>,
        settings: Settings,
        identity: &str,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubegrid-operator".into(),
                instance: Some(identity.to_string()),
            },
        );
        Self {
            client,
            journal,
            runner,
            recorder,
            metrics,
            probes,
            settings,
            certs: crate::certs::Memory::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failure of `cluster` under intent `digest` (`None` when not known) and
    /// returns the delay before the next try.
    pub fn failed(&self, cluster: &str, digest: Option<&str>) -> Duration {
        let mut map = self.failures.lock().expect("failures lock poisoned");
        let entry = map.entry(cluster.to_string()).or_insert(Failures {
            count: 0,
            at: Instant::now(),
            digest: None,
        });
        entry.count = entry.count.saturating_add(1);
        entry.at = Instant::now();
        entry.digest = digest.map(String::from);
        self.settings.backoff.delay(entry.count)
    }

    /// Forgets `cluster`'s failures after a success.
    pub fn succeeded(&self, cluster: &str) {
        self.failures
            .lock()
            .expect("failures lock poisoned")
            .remove(cluster);
    }

    /// How long `cluster` must still wait before trying intent `digest`; `None` when it may
    /// run now. A changed spec does not wait out the failures of the one it replaces.
    pub fn wait_left(&self, cluster: &str, digest: &str) -> Option<Duration> {
        let map = self.failures.lock().expect("failures lock poisoned");
        let f = map.get(cluster)?;
        if f.digest.as_deref().is_some_and(|d| d != digest) {
            return None;
        }
        self.settings
            .backoff
            .delay(f.count)
            .checked_sub(f.at.elapsed())
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(b.delay(1000), Duration::from_secs(60));
    }
}
