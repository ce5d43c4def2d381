//! `spec.certificates`: durations, and the floors below which a product cluster refuses
//! them (lowered only by the test-only `KUBEGRID_TEST_SHORT_CERTIFICATES=1`, see
//! `crate::certificates`). No CEL rule mirrors the floors: the API server cannot see the
//! environment that lowers them for tests, so this check is the one that counts.

use super::{Checker, Subject};
use crate::certificates::{policy, short_certificates_allowed};

impl Checker<'_> {
    /// Reports every problem with `spec.certificates`.
    pub(super) fn certificates(&mut self, at: &Subject) {
        let spec = self.manifest.cluster().spec.certificates.as_ref();
        if let Err(problems) = policy(spec, short_certificates_allowed()) {
            for p in problems {
                self.report(at, &p.field, p.seen, p.expected);
            }
        }
    }
}
