//! Certificates: `kubegrid certs check|renew|rotate-ca` and the operator's watch. Every
//! certificate a cluster depends on is read from the hosts and compared with the journal;
//! renewal re-signs the same public keys under the same CA, one Node at a time; a CA rotation
//! moves every reader through a trust bundle of the old and new CA (docs/certificates.md).

mod api;
pub mod catalog;
mod drive;
pub mod inventory;
mod renew;
mod report;
mod roll;
mod rotate;
pub mod rotation;

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

pub use api::with_ca_data;
pub(crate) use drive::drive;

pub use report::{
    CertRef, CertRow, CertsReport, Flagged, JournalMatch, NodeCerts, Renewed, Restart,
    RotationReport,
};

/// The playbook name that makes [`crate::operation::execute`] run a certificates operation.
pub const PLAYBOOK: &str = "certs";

/// What a certificates operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertsAction {
    /// Read and compare only; changes nothing.
    Check {
        /// Certificates expiring within this many days are reported as expiring.
        warn_days: u32,
    },
    /// Re-sign leaves under the CA that signed them, then restart their readers.
    Renew {
        /// Catalog names to renew; empty renews every leaf kubegrid holds the CA of.
        only: Vec<String>,
    },
    /// Replace one CA, with every reader trusting both during the change.
    RotateCa {
        /// The CA.
        ca: CaKind,
    },
}

impl CertsAction {
    /// `check`, `renew` or `rotate-ca`.
    pub fn name(&self) -> &'static str {
        match self {
            CertsAction::Check { .. } => "check",
            CertsAction::Renew { .. } => "renew",
            CertsAction::RotateCa { .. } => "rotate-ca",
        }
    }
}

/// How a certificates operation runs.
#[derive(Debug, Clone)]
pub struct CertsOptions {
    /// What it does.
    pub action: CertsAction,
}

impl Default for CertsOptions {
    fn default() -> Self {
        CertsOptions {
            action: CertsAction::Check { warn_days: 30 },
        }
    }
}

/// A CA (or the service-account key) that `rotate-ca` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaKind {
    /// External etcd's CA (`etcd-ca` in the journal).
    Etcd,
    /// The cluster CA (`kubernetes-ca`).
    Kubernetes,
    /// The front-proxy (aggregation layer) CA.
    FrontProxy,
    /// The service-account token signing key.
    ServiceAccount,
}

impl CaKind {
    /// Every kind, in the order `--ca` lists them.
    pub const ALL: [CaKind; 4] = [
        CaKind::Etcd,
        CaKind::Kubernetes,
        CaKind::FrontProxy,
        CaKind::ServiceAccount,
    ];

    /// The `--ca` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CaKind::Etcd => "etcd",
            CaKind::Kubernetes => "kubernetes",
            CaKind::FrontProxy => "front-proxy",
            CaKind::ServiceAccount => "service-account",
        }
    }

    /// The journal's name for this CA (or key).
    pub fn journal_name(self) -> &'static str {
        match self {
            CaKind::Etcd => "etcd-ca",
            CaKind::Kubernetes => "kubernetes-ca",
            CaKind::FrontProxy => "front-proxy-ca",
            CaKind::ServiceAccount => "service-account",
        }
    }
}

impl fmt::Display for CaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a CA kubegrid rotates; expected one of etcd, kubernetes, front-proxy, service-account"
                )
            })
    }
}

/// Leaf validity for what kubegrid issues (`spec.certificates.validity`).
pub(crate) fn validity(run: &crate::operation::Run) -> Duration {
    Duration::from_secs(
        run.req
            .context
            .kubernetes
            .as_ref()
            .map_or(8760 * 3600, |k| k.cert_validity_secs),
    )
}

/// CA validity for what kubegrid issues (`spec.certificates.caValidity`).
pub(crate) fn ca_validity(run: &crate::operation::Run) -> Duration {
    Duration::from_secs(
        run.req
            .context
            .kubernetes
            .as_ref()
            .map_or(87600 * 3600, |k| k.ca_validity_secs),
    )
}
