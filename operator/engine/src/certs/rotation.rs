//! A CA rotation as a state machine: which phase it is in, which Nodes finished it, what
//! every reader's trust file holds and which CA signs in each phase. Pure; the driver
//! (`rotate.rs`) persists it in the journal after every Node so a killed run resumes.
//!
//! The order is kubeadm's manual CA rotation: readers first trust both CAs, then the leaves
//! move to the new CA, then the old CA is dropped. A trust file lists the signing CA first,
//! since kubeadm, kube-controller-manager and Go take the first certificate of `ca.crt` as the
//! one `ca.key` belongs to.

use serde::{Deserialize, Serialize};

use super::CaKind;

/// A rotation's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The new CA is generated and kept in the journal as `<ca>-next`.
    NewCa,
    /// Every reader trusts old and new; the old CA still signs.
    TrustBoth,
    /// Every leaf is re-signed by the new CA, which now signs; readers still trust both.
    Reissue,
    /// Every reader trusts the new CA only.
    DropOld,
    /// Finished: the journal's `<ca>` is the new CA, `<ca>-previous` the old one.
    Done,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::NewCa,
        Phase::TrustBoth,
        Phase::Reissue,
        Phase::DropOld,
        Phase::Done,
    ];

    /// The phase after this one (`Done` stays).
    pub fn next(self) -> Phase {
        match self {
            Phase::NewCa => Phase::TrustBoth,
            Phase::TrustBoth => Phase::Reissue,
            Phase::Reissue => Phase::DropOld,
            Phase::DropOld | Phase::Done => Phase::Done,
        }
    }

    /// The name reports and the journal use.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::NewCa => "new-ca",
            Phase::TrustBoth => "trust-both",
            Phase::Reissue => "reissue",
            Phase::DropOld => "drop-old",
            Phase::Done => "done",
        }
    }

    /// Whether this phase rolls over the Nodes (writes files and restarts readers).
    pub fn rolls(self) -> bool {
        matches!(self, Phase::TrustBoth | Phase::Reissue | Phase::DropOld)
    }

    /// Which CA signs leaves (and sits first in trust files) during this phase.
    pub fn signer(self) -> Which {
        match self {
            Phase::NewCa | Phase::TrustBoth => Which::Old,
            Phase::Reissue | Phase::DropOld | Phase::Done => Which::New,
        }
    }

    /// Whether leaves signed by the old CA are re-signed by the new one in this phase.
    pub fn reissues(self) -> bool {
        self == Phase::Reissue
    }

    /// Whether the CA key on control-plane Nodes is replaced by the new one in this phase.
    pub fn replaces_key(self) -> bool {
        self == Phase::Reissue
    }
}

/// The old or the new CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The CA being replaced.
    Old,
    /// Its replacement.
    New,
}

/// What a reader's trust file holds in `phase`, given the old and new CA certificates (PEM);
/// `None` when the phase writes no trust file.
pub fn trust(phase: Phase, old: &str, new: &str) -> Option<String> {
    match phase {
        Phase::NewCa | Phase::Done => None,
        Phase::TrustBoth => Some(kubegrid_pki::trust_bundle(old, Some(new))),
        Phase::Reissue => Some(kubegrid_pki::trust_bundle(new, Some(old))),
        Phase::DropOld => Some(kubegrid_pki::trust_bundle(new, None)),
    }
}

/// A rotation in progress, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// The CA.
    pub ca: CaKind,
    /// The phase it is in.
    pub phase: Phase,
    /// Nodes that finished this phase.
    pub done: Vec<String>,
    /// Phases finished, in order.
    pub completed: Vec<Phase>,
}

impl Rotation {
    /// A rotation of `ca` that has not started.
    pub fn begin(ca: CaKind) -> Rotation {
        Rotation {
            ca,
            phase: Phase::NewCa,
            done: Vec::new(),
            completed: Vec::new(),
        }
    }

    /// `node` finished the current phase.
    pub fn node_done(&mut self, node: &str) {
        if !self.done.iter().any(|n| n == node) {
            self.done.push(node.to_string());
        }
    }

    /// The Nodes of `order` that have not finished the current phase, in that order.
    pub fn pending<'a>(&self, order: &'a [String]) -> Vec<&'a String> {
        order
            .iter()
            .filter(|n| !self.done.iter().any(|d| d == *n))
            .collect()
    }

    /// Moves to the next phase.
    pub fn finish_phase(&mut self) {
        if self.phase != Phase::Done {
            self.completed.push(self.phase);
            self.phase = self.phase.next();
            self.done.clear();
        }
    }

    /// The journal's form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the journal's form; `None` for text that is not one.
    pub fn from_json(text: &str) -> Option<Rotation> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "-----BEGIN CERTIFICATE-----\nOLD\n-----END CERTIFICATE-----\n";
    const NEW: &str = "-----BEGIN CERTIFICATE-----\nNEW\n-----END CERTIFICATE-----\n";

    #[test]
    fn new_ca_writes_nothing_and_the_old_ca_signs() {
        let p = Phase::NewCa;
        assert_eq!(trust(p, OLD, NEW), None);
        assert_eq!(p.signer(), Which::Old);
        assert!(!p.rolls() && !p.reissues() && !p.replaces_key());
        assert_eq!(p.next(), Phase::TrustBoth);
    }

    #[test]
    fn trust_both_puts_both_cas_in_every_reader_old_first() {
        let p = Phase::TrustBoth;
        assert_eq!(
            trust(p, OLD, NEW).as_deref(),
            Some(format!("{OLD}{NEW}").as_str())
        );
        assert_eq!(p.signer(), Which::Old);
        assert!(p.rolls() && !p.reissues() && !p.replaces_key());
        assert_eq!(p.next(), Phase::Reissue);
    }

    #[test]
    fn reissue_moves_the_signer_and_leaves_to_the_new_ca_still_trusting_both() {
        let p = Phase::Reissue;
        assert_eq!(
            trust(p, OLD, NEW).as_deref(),
            Some(format!("{NEW}{OLD}").as_str())
        );
        assert_eq!(p.signer(), Which::New);
        assert!(p.rolls() && p.reissues() && p.replaces_key());
        assert_eq!(p.next(), Phase::DropOld);
    }

    #[test]
    fn drop_old_leaves_the_new_ca_alone() {
        let p = Phase::DropOld;
        assert_eq!(trust(p, OLD, NEW).as_deref(), Some(NEW));
        assert_eq!(p.signer(), Which::New);
        assert!(p.rolls() && !p.reissues() && !p.replaces_key());
        assert_eq!(p.next(), Phase::Done);
    }

    #[test]
    fn done_is_final() {
        let p = Phase::Done;
        assert_eq!(trust(p, OLD, NEW), None);
        assert!(!p.rolls());
        assert_eq!(p.next(), Phase::Done);
    }

    #[test]
    fn a_rotation_resumes_with_the_nodes_it_has_not_done() {
        let order: Vec<String> = ["lab-1", "lab-2", "lab-3"].map(String::from).to_vec();
        let mut r = Rotation::begin(CaKind::Etcd);
        r.finish_phase();
        assert_eq!(r.phase, Phase::TrustBoth);
        r.node_done("lab-1");
        r.node_done("lab-1");
        let saved = Rotation::from_json(&r.to_json()).expect("round trip");
        assert_eq!(saved, r);
        assert_eq!(saved.pending(&order), [&order[1], &order[2]]);
        let mut r = saved;
        r.finish_phase();
        assert_eq!(r.phase, Phase::Reissue);
        assert!(r.done.is_empty());
        assert_eq!(r.completed, [Phase::NewCa, Phase::TrustBoth]);
        r.finish_phase();
        r.finish_phase();
        r.finish_phase();
        assert_eq!(r.phase, Phase::Done);
        assert_eq!(r.completed.len(), 4);
    }

    #[test]
    fn phases_never_skip_a_step() {
        for pair in Phase::ALL.windows(2) {
            assert_eq!(pair[0].next(), pair[1]);
        }
        // At no phase does a reader trust only a CA that has not signed every leaf it sees:
        // the new CA alone only after the leaves were re-signed.
        let alone_new = Phase::ALL
            .into_iter()
            .filter(|p| trust(*p, OLD, NEW).as_deref() == Some(NEW));
        for p in alone_new {
            assert!(p > Phase::Reissue, "{p:?}");
        }
    }
}
