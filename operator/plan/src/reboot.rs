//! `reboot:` phases: a controlled reboot that the engine itself carries out (no agent plan),
//! on the hosts the phase selects and where its `when:` holds.
//!
//! ```yaml
//! - name: gpu-reboot
//!   hosts: gpu
//!   reboot: {when: {nouveau_loaded: true}}
//! ```
//!
//! The predicate is what keeps the phase idempotent: it must stop holding once the host has
//! rebooted (a module that was loaded is no longer), or every apply reboots the host again.

use std::time::Duration;

use serde::Deserialize;

use crate::{
    context::{ClusterContext, HostContext},
    predicate::When,
};

/// How long a host may take to come back when the playbook does not say.
pub const DEFAULT_REBOOT_TIMEOUT: Duration = Duration::from_secs(600);

/// `reboot:` as a playbook writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootSpec {
    /// Reboot only the hosts where this holds; absent: every selected host.
    #[serde(default)]
    pub when: Option<When>,
    /// Seconds a host may take from the reboot request until it answers SSH with a new boot
    /// id; 600 when absent.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl RebootSpec {
    /// The reboot one host gets: `None` when the predicate does not hold there.
    pub fn plan_for(&self, cluster: &ClusterContext, host: &HostContext) -> Option<RebootPlan> {
        self.when
            .as_ref()
            .is_none_or(|w| w.eval(cluster, host))
            .then(|| RebootPlan {
                timeout: self
                    .timeout_seconds
                    .map_or(DEFAULT_REBOOT_TIMEOUT, Duration::from_secs),
            })
    }

    /// Rules serde cannot express.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.timeout_seconds {
            Some(0) => Err("`reboot.timeout_seconds` must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// A reboot compiled for one host: the engine reboots it and waits for a new boot id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebootPlan {
    /// How long the host may take to answer again with a new boot id.
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use kubegrid_agent::facts::Facts;

    use super::*;
    use crate::playbook::from_yaml;

    #[test]
    fn the_predicate_decides_which_hosts_reboot() {
        let cluster = ClusterContext::new("c", "2.1").unwrap();
        let host = |os: &str| HostContext {
            name: "h".into(),
            facts: Facts {
                os_id: os.into(),
                ..Facts::default()
            },
            ..Default::default()
        };
        let spec: RebootSpec =
            from_yaml("{when: {os_family: debian}, timeout_seconds: 30}").unwrap();
        assert_eq!(
            spec.plan_for(&cluster, &host("debian")),
            Some(RebootPlan {
                timeout: Duration::from_secs(30)
            })
        );
        assert_eq!(spec.plan_for(&cluster, &host("rhel")), None);
        let always: RebootSpec = from_yaml("{}").unwrap();
        assert_eq!(
            always.plan_for(&cluster, &host("rhel")).map(|p| p.timeout),
            Some(DEFAULT_REBOOT_TIMEOUT)
        );
    }

    #[test]
    fn unknown_keys_and_a_zero_timeout_are_refused() {
        assert!(from_yaml::<RebootSpec>("{if: {os_family: debian}}").is_err());
        let zero: RebootSpec = from_yaml("{timeout_seconds: 0}").unwrap();
        assert!(zero.check().unwrap_err().contains("timeout_seconds"));
    }
}
