//! `spec.etcd` and `spec.upgrade`: the etcd release line, and how many Nodes an upgrade takes
//! down at once. The CRD schema holds the same bounds (`rules::etcd_line`, the range on
//! `maxUnavailable`).

use super::{Checker, Subject};
use crate::version::{MAX_UPGRADE_UNAVAILABLE, SUPPORTED_ETCD_LINES};

impl Checker<'_> {
    /// Checks `spec.etcd.version` and `spec.upgrade.maxUnavailable`.
    pub(super) fn etcd_and_upgrade(&mut self, at: &Subject) {
        let spec = &self.manifest.cluster().spec;
        if let Some(etcd) = &spec.etcd
            && !SUPPORTED_ETCD_LINES.contains(&etcd.version.as_str())
        {
            let seen = crate::text::excerpt(&etcd.version, 40);
            self.report(
                at,
                "spec.etcd.version",
                format!("`{seen}`"),
                format!(
                    "an etcd release line, one of {} (the bundle pins the patch release)",
                    SUPPORTED_ETCD_LINES.join(", ")
                ),
            );
        }
        if let Some(n) = spec.upgrade.as_ref().and_then(|u| u.max_unavailable)
            && !(1..=MAX_UPGRADE_UNAVAILABLE).contains(&n)
        {
            self.report(
                at,
                "spec.upgrade.maxUnavailable",
                n.to_string(),
                format!("a number of Nodes from 1 to {MAX_UPGRADE_UNAVAILABLE}"),
            );
        }
    }
}
