//! The russh client handler: host key pinning.

use std::sync::{Arc, Mutex};

use russh::{
    client,
    keys::{HashAlg, PublicKeyOrCertificate},
};

use super::HostKey;

/// What happened to the host key during one handshake.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyOutcome {
    /// The key matched its pin, or there was no pin yet (first contact).
    pub accepted: Option<HostKey>,
    /// The pinned key and the different one offered.
    pub refused: Option<(HostKey, HostKey)>,
}

/// Pin state shared between the handler (which russh owns) and the connect code.
#[derive(Debug)]
pub(crate) struct Pinning {
    host: String,
    pinned: Option<HostKey>,
    outcome: KeyOutcome,
}

impl Pinning {
    pub(crate) fn new(host: String, pinned: Option<HostKey>) -> Self {
        Pinning {
            host,
            pinned,
            outcome: KeyOutcome::default(),
        }
    }

    pub(crate) fn outcome(&self) -> KeyOutcome {
        self.outcome.clone()
    }

    fn check(&mut self, offered: HostKey) -> bool {
        match &self.pinned {
            Some(pin) if pin.fingerprint != offered.fingerprint => {
                tracing::warn!(host = %self.host, pinned = %pin.fingerprint, offered = %offered.fingerprint, "host key changed");
                self.outcome.refused = Some((pin.clone(), offered));
                false
            }
            _ => {
                self.outcome.accepted = Some(offered);
                true
            }
        }
    }
}

/// The handler russh calls during the handshake.
pub(crate) struct KeyCheck {
    pinning: Arc<Mutex<Pinning>>,
}

impl KeyCheck {
    pub(crate) fn new(pinning: Arc<Mutex<Pinning>>) -> Self {
        KeyCheck { pinning }
    }
}

impl client::Handler for KeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            // A host certificate is pinned by the key it certifies.
            PublicKeyOrCertificate::Certificate(cert) => {
                russh::keys::PublicKey::new(cert.public_key().clone(), "")
            }
        };
        let offered = HostKey {
            algorithm: key.algorithm().as_str().to_string(),
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        };
        let ok = self
            .pinning
            .lock()
            .map(|mut p| p.check(offered))
            .unwrap_or(false);
        Ok(ok)
    }
}
