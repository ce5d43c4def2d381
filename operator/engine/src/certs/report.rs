//! What `kubegrid certs check|renew|rotate-ca` reports: every certificate found on every
//! Node, how it compares with what the journal issued, and what a renewal or rotation did.

use serde::{Deserialize, Serialize};

use super::CaKind;

/// The certificates part of the operation report (`certs` in `-o json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertsReport {
    /// `check`, `renew` or `rotate-ca`.
    pub action: String,
    /// Certificates expiring within this many days are listed under `expiring`.
    pub warn_days: u32,
    /// What each Node holds, read from the host after any change this run made.
    pub nodes: Vec<NodeCerts>,
    /// The certificate that expires first, across every Node (CAs included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<CertRef>,
    /// Certificates expiring within `warn_days`.
    pub expiring: Vec<CertRef>,
    /// Certificates the journal did not issue as they are (see [`JournalMatch`]).
    pub flagged: Vec<Flagged>,
    /// Certificates this run re-signed.
    pub renewed: Vec<Renewed>,
    /// Leaves a renewal left alone, and why (no CA kubegrid holds signed them, the kubelet's
    /// self-signed serving certificate).
    #[serde(default)]
    pub skipped: Vec<Flagged>,
    /// What this run restarted so that it reads the new files, in order.
    pub restarts: Vec<Restart>,
    /// A CA rotation's progress; absent for check and renew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationReport>,
    /// Why nothing was changed (a Node unreachable, etcd unhealthy); empty when it ran.
    pub blockers: Vec<String>,
    /// Steps after the roll that failed (writing the admin kubeconfig file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The certificates read from one Node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCerts {
    /// Node name.
    pub node: String,
    /// The engine could connect and read its files.
    pub reachable: bool,
    /// Every certificate found, in file order.
    pub certificates: Vec<CertRow>,
}

/// One certificate in a file on a Node (a CA bundle file has one row per certificate).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertRow {
    /// The catalog name (`etcd-server`, `apiserver`, `admin.conf`, ...), or the file's stem.
    pub name: String,
    /// Absolute path on the Node.
    pub file: String,
    /// Where in a kubeconfig the certificate sits
    /// (`users[kubernetes-admin].client-certificate-data`); absent for PEM files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS and IP subject alternative names.
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    /// A CA certificate.
    pub ca: bool,
    /// `sha256:<hex>` of the DER.
    pub fingerprint: String,
    /// How it compares with the journal.
    pub journal: JournalMatch,
    /// Why it is flagged, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

/// How a certificate on a host compares with what kubegrid's journal holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JournalMatch {
    /// The journal issued exactly this certificate.
    Matches,
    /// Not issued by kubegrid itself, but signed by a CA the journal holds (kubeadm's
    /// leaves, the kubelet's client certificate).
    Signed,
    /// The kubelet's own self-signed serving certificate.
    SelfSigned,
    /// Flagged: the journal issued a different certificate for this file.
    Differs,
    /// Flagged: signed by no CA the journal holds.
    #[default]
    Unknown,
}

impl JournalMatch {
    /// Whether `certs check` flags it.
    pub fn flagged(self) -> bool {
        matches!(self, JournalMatch::Differs | JournalMatch::Unknown)
    }
}

/// A certificate named by Node and file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertRef {
    /// Node name.
    pub node: String,
    /// Catalog name.
    pub name: String,
    /// Absolute path on the Node.
    pub file: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days until then.
    pub days_left: i64,
}

/// A flagged certificate and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flagged {
    /// Node name.
    pub node: String,
    /// Catalog name.
    pub name: String,
    /// Absolute path on the Node.
    pub file: String,
    /// What was seen and what was expected.
    pub reason: String,
}

/// A certificate this run re-signed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewed {
    /// Node name.
    pub node: String,
    /// Catalog name.
    pub name: String,
    /// Absolute path on the Node.
    pub file: String,
    /// The old certificate's end of validity, RFC 3339.
    pub old_not_after: String,
    /// The new one's.
    pub new_not_after: String,
}

/// A restart of what reads certificates on one Node, and the wait until it was healthy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restart {
    /// Node name.
    pub node: String,
    /// `etcd`, `control-plane`, `kubelet` or `registry`.
    pub what: String,
    /// Wall time of the restart and the health wait.
    pub duration_ms: u64,
    /// Healthy again.
    pub ok: bool,
}

/// Where a CA rotation stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationReport {
    /// The CA being rotated.
    pub ca: CaKind,
    /// The phase it is in (or `done`).
    pub phase: String,
    /// The phases finished, in order.
    pub completed: Vec<String>,
    /// This run continued a rotation an earlier run began.
    pub resumed: bool,
}
