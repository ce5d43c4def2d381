//! `api-readyz`: the apiserver reports itself ready.

use kube::Client;

use super::{API_READYZ, CheckOptions, CheckResult, timed};
use crate::{
    error::describe,
    poll::{Attempt, poll_until},
};

/// Checks that `GET /readyz` answers `ok`, retrying until
/// [`CheckOptions::readyz_timeout`] because the apiserver may still be starting.
pub async fn check_api_readyz(client: &Client, opts: &CheckOptions) -> CheckResult {
    timed(API_READYZ, async {
        let mut attempts = 0_u32;
        let outcome = poll_until(opts.readyz_timeout, opts.poll_interval, || {
            attempts += 1;
            let client = client.clone();
            async move {
                let request = match http::Request::get("/readyz").body(Vec::new()) {
                    Ok(request) => request,
                    Err(err) => {
                        return Attempt::Retry(format!("could not build the request: {err}"));
                    }
                };
                match client.request_text(request).await {
                    Ok(text) if text.trim() == "ok" => Attempt::Done(()),
                    Ok(text) => Attempt::Retry(format!("answered {:?}", text.trim())),
                    Err(err) => Attempt::Retry(describe(&err)),
                }
            }
        })
        .await;
        match outcome {
            Ok(()) => Ok(format!("/readyz answered ok (attempt {attempts})")),
            Err(last) => Err(format!(
                "/readyz did not answer ok within {:?} ({attempts} attempts); last answer: {last}; \
                 expected \"ok\"",
                opts.readyz_timeout
            )),
        }
    })
    .await
}
