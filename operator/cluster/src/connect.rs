//! Building a kube client from the admin kubeconfig that kubegrid generated.

use std::sync::Once;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::error::{Error, Result};

/// Installs rustls' ring provider as the process default, once.
///
/// kube's rustls backend asks for the process-wide provider; without one
/// (kube is built without aws-lc-rs here) building a TLS client panics.
/// Another part of the process may already have installed one, which is fine.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An Err means a provider is already installed, which is all we need.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds a client from kubeconfig text held in memory.
///
/// The kubeconfig must embed its certificates (`*-data` fields), as the one
/// kubegrid writes does; file references would resolve against the current
/// directory of the engine, not of the host the cluster was installed on.
pub async fn connect(kubeconfig_yaml: &str) -> Result<Client> {
    install_crypto_provider();
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml)
        .map_err(|source| Error::ParseKubeconfig { source })?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::LoadKubeconfig { source })?;
    let server = config.cluster_url.to_string();
    Client::try_from(config).map_err(|source| Error::BuildClient { server, source })
}
