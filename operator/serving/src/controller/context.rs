//! What every reconcile shares.

use std::time::Duration;

use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};

/// Shared by every reconcile.
pub struct Context {
    /// The cluster's API.
    pub client: Client,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// How often an LLMService is reconciled without any change, to repair drift.
    pub resync: Duration,
    /// How long after a failed reconcile it is tried again.
    pub retry: Duration,
    /// The kubegrid image (pinned by digest) the routers of services that scale to zero run;
    /// without it such services are kept at `minReplicas` (see `controller::router`).
    pub router_image: Option<String>,
}

impl Context {
    /// A context whose Events name `identity` as the reporting instance.
    pub fn new(client: Client, identity: &str) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubegrid-serving".into(),
                instance: Some(identity.to_string()),
            },
        );
        Self {
            client,
            recorder,
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(10),
            router_image: None,
        }
    }
}
