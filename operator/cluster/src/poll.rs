//! Waiting for a cluster condition with a deadline.

use std::{future::Future, time::Duration};

use tokio::time::{Instant, sleep, timeout_at};

/// The outcome of one look at the cluster.
pub(crate) enum Attempt<T> {
    /// The condition holds; stop waiting.
    Done(T),
    /// Not yet; the text says what was seen, for the failure detail.
    Retry(String),
}

/// Each attempt may run this long even when the deadline is closer, so the
/// last look at the deadline is a real request rather than an instant timeout.
const ATTEMPT_FLOOR: Duration = Duration::from_secs(2);

/// Calls `attempt` until it reports done or `timeout` has passed.
///
/// Attempts are spaced by `interval` (shortened so the last one lands on the
/// deadline). At least one attempt always runs, and one runs at the deadline.
/// On timeout the error is the reason given by the last attempt.
pub(crate) async fn poll_until<T, F, Fut>(
    timeout: Duration,
    interval: Duration,
    mut attempt: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let attempt_deadline = deadline.max(Instant::now() + ATTEMPT_FLOOR);
        let outcome = timeout_at(attempt_deadline, attempt())
            .await
            .unwrap_or_else(|_| Attempt::Retry("the apiserver did not answer in time".into()));
        let reason = match outcome {
            Attempt::Done(value) => return Ok(value),
            Attempt::Retry(reason) => reason,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(reason);
        }
        sleep(interval.min(deadline - now)).await;
    }
}
