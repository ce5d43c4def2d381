//! Small version helpers shared by the rules.

use semver::Version;

/// `major.minor` of a version, for messages ("1.32").
pub fn line(v: &Version) -> String {
    format!("{}.{}", v.major, v.minor)
}

/// True when `a` and `b` are on the same `major.minor` line.
pub fn same_line(a: &Version, b: &Version) -> bool {
    a.major == b.major && a.minor == b.minor
}

/// The newest release (no pre-release tag) of `major.minor` among `available`.
pub fn newest_of_line(available: &[Version], major: u64, minor: u64) -> Option<Version> {
    available
        .iter()
        .filter(|v| v.major == major && v.minor == minor && v.pre.is_empty())
        .max()
        .cloned()
}

/// The lowest of some optional versions, ignoring unknown ones.
pub fn lowest<'a>(versions: impl Iterator<Item = &'a Option<Version>>) -> Option<Version> {
    versions.flatten().min().cloned()
}

/// `v` as text, or "unknown".
pub fn show(v: Option<&Version>) -> String {
    v.map_or_else(|| "unknown".to_owned(), Version::to_string)
}
