//! A byte-rate limit shared by every transfer of one direction of one peer.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// A token bucket in bytes. Callers take what they send or received and sleep off any debt,
/// so concurrent transfers share the rate in the order they asked. A dozen lines did not
/// justify a rate-limiting crate whose unit is requests, not bytes.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// A limit of `bytes_per_sec`, allowing bursts of a quarter second's worth.
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        Self {
            bytes_per_sec: rate,
            burst: rate / 4.0,
            state: Mutex::new((rate / 4.0, Instant::now())),
        }
    }

    /// Accounts for `n` bytes, waiting until the rate allows them.
    pub async fn take(&self, n: usize) {
        let wait = {
            let Ok(mut s) = self.state.lock() else {
                return;
            };
            let now = Instant::now();
            let refill = now.duration_since(s.1).as_secs_f64() * self.bytes_per_sec;
            s.0 = (s.0 + refill).min(self.burst) - n as f64;
            s.1 = now;
            (s.0 < 0.0).then(|| Duration::from_secs_f64(-s.0 / self.bytes_per_sec))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Takes from `limit` when there is one.
pub(crate) async fn take(limit: Option<&RateLimit>, n: usize) {
    if let Some(l) = limit {
        l.take(n).await;
    }
}
