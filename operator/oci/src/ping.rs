//! Asking a registry whether it is up, the one distribution API call oci-client does not offer.

use std::time::Duration;

use crate::{
    error::{Error, Result},
    registry::{RegistryEndpoint, Transport, Trust, install_crypto_provider},
};

/// How long one ping may take; a registry that is up answers `/v2/` at once.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that `endpoint` answers the distribution API: `GET /v2/` returns 200, or 401 from a
/// registry that wants credentials (it is up all the same). TLS is checked with the endpoint's
/// trust, so a wrong CA fails here as it would on a pull.
pub async fn ping(endpoint: &RegistryEndpoint) -> Result<()> {
    install_crypto_provider();
    let url = match endpoint.transport() {
        Transport::Http => format!("http://{}/v2/", endpoint.host()),
        Transport::Https(_) => format!("https://{}/v2/", endpoint.host()),
    };
    let failed = |problem: String| Error::PingRegistry {
        registry: endpoint.host().to_owned(),
        url: url.clone(),
        problem,
    };
    let certs = |pems: &[Vec<u8>]| {
        pems.iter()
            .map(|pem| reqwest::Certificate::from_pem(pem))
            .collect::<reqwest::Result<Vec<_>>>()
            .map_err(|e| failed(format!("a CA certificate does not parse: {}", chain(&e))))
    };
    let builder = reqwest::Client::builder().timeout(PING_TIMEOUT);
    let builder = match endpoint.transport() {
        Transport::Http | Transport::Https(Trust::System) => builder,
        Transport::Https(Trust::SystemAnd(extra)) => builder.tls_certs_merge(certs(extra)?),
        Transport::Https(Trust::Only(only)) => builder.tls_certs_only(certs(only)?),
    };
    let client = builder
        .build()
        .map_err(|e| failed(format!("cannot set up the HTTP client: {}", chain(&e))))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(chain(&e)))?;
    match response.status().as_u16() {
        200 | 401 => Ok(()),
        other => Err(failed(format!(
            "answered HTTP {other}, expected 200 (or 401) from a registry"
        ))),
    }
}

/// An error and its causes on one line; reqwest's own message alone ("error sending request")
/// hides whether DNS, TCP or TLS failed.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
