//! The versions kubegrid can install, kept in one place so the docs, the validation and the
//! bundle builder agree.

use std::ops::RangeInclusive;

/// Kubernetes minor versions (of major 1) that kubegrid installs.
pub const SUPPORTED_KUBERNETES_MINORS: RangeInclusive<u64> = 30..=35;

/// containerd release lines kubegrid configures; the bundle pins the patch release.
pub const SUPPORTED_CONTAINERD_LINES: &[&str] = &["1.6", "1.7", "2.0", "2.1", "2.2"];

/// External etcd release lines kubegrid runs (`spec.etcd.version`); the bundle pins the patch
/// release. 3.4 is below kubeadm's minimum for any supported Kubernetes minor, and is accepted
/// so that such a cluster can be named and upgraded (the upgrade planner says so).
pub const SUPPORTED_ETCD_LINES: &[&str] = &["3.4", "3.5", "3.6"];

/// The most Nodes an upgrade takes down at once (`spec.upgrade.maxUnavailable`).
pub const MAX_UPGRADE_UNAVAILABLE: u32 = 1000;

/// The longest Kubernetes version accepted. The CRD schema carries it as `maxLength`, which
/// bounds what the API server's CEL cost estimate charges for the version's regex rule.
pub const MAX_KUBERNETES_VERSION_LEN: usize = 64;

/// Parses a Kubernetes version such as `v1.31.4` (the leading `v` is optional) and checks
/// that its minor is supported.
///
/// The CRD's CEL rule on `spec.kubernetesVersion` accepts the same language; a test in
/// `tests/api/cel.rs` holds the two to the same verdicts.
///
/// The error is a sentence fragment that says what was wrong, for a validation problem.
pub fn parse_kubernetes_version(text: &str) -> Result<semver::Version, String> {
    if text.len() > MAX_KUBERNETES_VERSION_LEN {
        return Err(format!(
            "a version of {} characters, longer than {MAX_KUBERNETES_VERSION_LEN}",
            text.len()
        ));
    }
    let bare = text.strip_prefix('v').unwrap_or(text);
    let version = semver::Version::parse(bare).map_err(|err| {
        // semver names its integer type ("exceeds u64::MAX"); say it in words.
        let why = err.to_string().replace("exceeds u64::MAX", "is too large");
        format!("`{text}`, which is not a semantic version ({why})")
    })?;
    if version.major != 1 || !SUPPORTED_KUBERNETES_MINORS.contains(&version.minor) {
        return Err(format!("`{text}`, which is not a supported version"));
    }
    Ok(version)
}

/// What a Kubernetes version must look like, for error messages.
pub fn kubernetes_version_expectation() -> String {
    format!(
        "a version like v1.{}.4 with a minor from 1.{} to 1.{}",
        SUPPORTED_KUBERNETES_MINORS.start(),
        SUPPORTED_KUBERNETES_MINORS.start(),
        SUPPORTED_KUBERNETES_MINORS.end()
    )
}

/// The containerd config file format for a release line: `version = 2` for 1.x,
/// `version = 3` for 2.x. `None` for an unsupported line.
pub fn containerd_config_version(line: &str) -> Option<u8> {
    if !SUPPORTED_CONTAINERD_LINES.contains(&line) {
        return None;
    }
    Some(if line.starts_with("1.") { 2 } else { 3 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions_with_and_without_v_parse() {
        assert_eq!(parse_kubernetes_version("v1.31.4").unwrap().minor, 31);
        assert_eq!(parse_kubernetes_version("1.35.0").unwrap().patch, 0);
    }

    #[test]
    fn kubernetes_versions_outside_the_range_are_refused() {
        assert!(parse_kubernetes_version("v1.29.9").is_err());
        assert!(parse_kubernetes_version("v1.36.0").is_err());
        assert!(parse_kubernetes_version("v2.31.0").is_err());
        let err = parse_kubernetes_version("v1.31").unwrap_err();
        assert!(err.contains("not a semantic version"), "{err}");
        let long = format!("v1.31.4+{}", "a".repeat(MAX_KUBERNETES_VERSION_LEN));
        let err = parse_kubernetes_version(&long).unwrap_err();
        assert!(err.contains("longer than 64"), "{err}");
    }

    #[test]
    fn containerd_lines_map_to_config_versions() {
        assert_eq!(containerd_config_version("1.6"), Some(2));
        assert_eq!(containerd_config_version("1.7"), Some(2));
        assert_eq!(containerd_config_version("2.2"), Some(3));
        assert_eq!(containerd_config_version("1.7.24"), None);
        assert_eq!(containerd_config_version("1.5"), None);
    }
}
