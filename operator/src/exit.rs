//! Exit codes of the `kubegrid` command, documented in README.md.

/// Success.
pub const OK: u8 = 0;
/// The operation failed while acting (a command on the machine or a host failed).
pub const FAILED: u8 = 1;
/// Invalid input: bad flags, an unknown host name, an invalid spec. Nothing was changed.
pub const USAGE: u8 = 2;
/// The machine cannot do this as it is: not root, a missing program, an address collision.
/// Nothing was changed.
pub const ENVIRONMENT: u8 = 3;
/// Hosts did not become ready in time.
pub const TIMEOUT: u8 = 4;
/// Preflight found problems on some host. Nothing was changed.
pub const PREFLIGHT: u8 = 5;
/// A host could not be reached, refused authentication, or presented a changed host key.
/// Nothing was changed.
pub const UNREACHABLE: u8 = 6;
