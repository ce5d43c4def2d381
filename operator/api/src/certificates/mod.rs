//! `spec.certificates`: how long certificates live, when the operator warns and renews, and
//! how often it reads them from the hosts. [`CertificatePolicy`] is the parsed form;
//! [`problems`] the checks `Manifest::validate` runs, with the floors below.
//!
//! The floors keep a product cluster from issuing certificates that expire before anyone
//! could act on a warning. Tests that watch a renewal happen need certificates that expire
//! in minutes: the environment variable [`SHORT_CERTIFICATES_ENV`] (`=1`) lowers the floors
//! for the process that has it. It is meant for tests only and documented so.

pub mod status;

use std::time::Duration;

use crate::{
    cluster::{DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY},
    text::excerpt,
};

/// Set to `1` in a process's environment, it lowers the floors of `spec.certificates`
/// (validity and caValidity 1m, renewBefore 1m, checkInterval 5s). TEST-ONLY: a cluster
/// with minutes-long certificates is renewed constantly and dies the moment its operator
/// stops.
pub const SHORT_CERTIFICATES_ENV: &str = "KUBEGRID_TEST_SHORT_CERTIFICATES";

/// The Cluster condition that is True while a certificate expires within `warnBefore`.
pub const CERTIFICATES_EXPIRING: &str = "CertificatesExpiring";

/// The Cluster annotation that asks the operator to rotate one CA: `etcd`, `kubernetes`,
/// `front-proxy` or `service-account`. The operator removes it once the rotation finished.
pub const ROTATE_CA_ANNOTATION: &str = "kubegrid.io/rotate-ca";

/// How long before expiry a leaf is renewed when the spec names none (30 days).
pub const DEFAULT_RENEW_BEFORE: &str = "720h";
/// How long before expiry the operator warns when the spec names none (120 days, as k3s
/// and RKE2 do).
pub const DEFAULT_WARN_BEFORE: &str = "2880h";
/// How often the operator reads the certificates on the hosts when the spec names none.
pub const DEFAULT_CHECK_INTERVAL: &str = "24h";

/// The smallest values a product cluster accepts, and what the test override lowers them to.
struct Floors {
    validity: Duration,
    ca_validity: Duration,
    renew_before: Duration,
    check_interval: Duration,
}

const PRODUCT_FLOORS: Floors = Floors {
    validity: Duration::from_secs(24 * 3600),
    ca_validity: Duration::from_secs(48 * 3600),
    // Cluster API's floor for its control plane's rolloutBefore.
    renew_before: Duration::from_secs(7 * 24 * 3600),
    check_interval: Duration::from_secs(60),
};

const TEST_FLOORS: Floors = Floors {
    validity: Duration::from_secs(60),
    ca_validity: Duration::from_secs(60),
    renew_before: Duration::from_secs(60),
    check_interval: Duration::from_secs(5),
};

/// `spec.certificates`, parsed, with its defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificatePolicy {
    /// Leaf certificates' lifetime.
    pub validity: Duration,
    /// CA certificates' lifetime.
    pub ca_validity: Duration,
    /// A leaf expiring within this is renewed (when `auto_renew`).
    pub renew_before: Duration,
    /// A certificate expiring within this raises `CertificatesExpiring` and a Warning Event.
    pub warn_before: Duration,
    /// Whether the operator renews by itself; `false` only warns.
    pub auto_renew: bool,
    /// How often the operator reads the certificates on the hosts.
    pub check_interval: Duration,
}

/// One problem with `spec.certificates`: the field, what was seen, what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    /// `spec.certificates.validity`, ...
    pub field: String,
    /// The value, quoted, and what is wrong with it.
    pub seen: String,
    /// What is accepted.
    pub expected: String,
}

impl std::fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}; expected {}",
            self.field, self.seen, self.expected
        )
    }
}

/// Whether this process's environment carries the test-only override.
pub fn short_certificates_allowed() -> bool {
    std::env::var(SHORT_CERTIFICATES_ENV).is_ok_and(|v| v == "1")
}

/// The policy of `spec` (`None`: no `spec.certificates`), or every problem with it. `short`
/// applies the test-only floors.
pub fn policy(
    spec: Option<&crate::cluster::CertificatesSpec>,
    short: bool,
) -> Result<CertificatePolicy, Vec<PolicyProblem>> {
    let floors = if short { &TEST_FLOORS } else { &PRODUCT_FLOORS };
    let mut problems = Vec::new();
    let mut duration =
        |name: &str, value: Option<&String>, default: &str, floor: Option<Duration>| {
            let field = format!("spec.certificates.{name}");
            let text = value.map_or(default, String::as_str);
            let parsed = match humantime::parse_duration(text) {
                Ok(d) => d,
                Err(_) => {
                    problems.push(PolicyProblem {
                        field,
                        seen: format!("`{}`, which is not a duration", excerpt(text, 40)),
                        expected: "a duration such as 8760h or 365d".into(),
                    });
                    return None;
                }
            };
            if let Some(floor) = floor.filter(|f| parsed < *f) {
                problems.push(PolicyProblem {
                    field,
                    seen: format!(
                        "`{}`, below the floor of {}",
                        excerpt(text, 40),
                        show(floor)
                    ),
                    expected: below_floor_hint(name, floor, short),
                });
                return None;
            }
            Some(parsed)
        };
    let validity = duration(
        "validity",
        spec.and_then(|c| c.validity.as_ref()),
        DEFAULT_CERT_VALIDITY,
        Some(floors.validity),
    );
    let ca_validity = duration(
        "caValidity",
        spec.and_then(|c| c.ca_validity.as_ref()),
        DEFAULT_CA_VALIDITY,
        Some(floors.ca_validity),
    );
    let renew_before = duration(
        "renewBefore",
        spec.and_then(|c| c.renew_before.as_ref()),
        DEFAULT_RENEW_BEFORE,
        Some(floors.renew_before),
    );
    let warn_before = duration(
        "warnBefore",
        spec.and_then(|c| c.warn_before.as_ref()),
        DEFAULT_WARN_BEFORE,
        None,
    );
    let check_interval = duration(
        "checkInterval",
        spec.and_then(|c| c.check_interval.as_ref()),
        DEFAULT_CHECK_INTERVAL,
        Some(floors.check_interval),
    );
    // A leaf renewed as soon as it is issued would be renewed on every check.
    if let (Some(v), Some(r)) = (validity, renew_before)
        && r >= v
    {
        problems.push(PolicyProblem {
            field: "spec.certificates.renewBefore".into(),
            seen: format!(
                "{}, not shorter than validity {}",
                show(r),
                show(v)
            ),
            expected: "a renewBefore shorter than validity, so that a new certificate is not due for renewal the moment it is issued".into(),
        });
    }
    match (
        validity,
        ca_validity,
        renew_before,
        warn_before,
        check_interval,
    ) {
        (
            Some(validity),
            Some(ca_validity),
            Some(renew_before),
            Some(warn_before),
            Some(check_interval),
        ) if problems.is_empty() => Ok(CertificatePolicy {
            validity,
            ca_validity,
            renew_before,
            warn_before,
            auto_renew: spec.and_then(|c| c.auto_renew).unwrap_or(true),
            check_interval,
        }),
        _ => Err(problems),
    }
}

/// What a value below its floor should be, and how tests go lower.
fn below_floor_hint(name: &str, floor: Duration, short: bool) -> String {
    if short {
        format!(
            "{name} of at least {} (the floor under {SHORT_CERTIFICATES_ENV}=1, which is for tests only)",
            show(floor)
        )
    } else {
        format!(
            "{name} of at least {}; shorter values are for tests only: {SHORT_CERTIFICATES_ENV}=1 in the environment of the process that validates the spec (the CLI or the operator) lowers the floor, and must not be set in product use",
            show(floor)
        )
    }
}

/// A duration as a spec writes it: `168h`, `1m`, `5s`.
fn show(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests;
