//! The HTTP surface peers speak, shared by the server and the client.
//!
//! - `GET /fanout/<token>/<sha256>/have[?after=<version>]`: the pieces the peer has verified,
//!   as a [`Bitfield`](crate::Bitfield) in its wire form, with the `x-fanout-version` header.
//!   With `after`, the answer waits (up to [`LONG_POLL`]) until the version moves past it, so
//!   peers learn of new pieces without polling on a timer.
//! - `GET /fanout/<token>/<sha256>/data` with `Range: bytes=<start>-<end>` covering exactly
//!   one piece: 206 with the piece, only once the peer has verified it; 404 if it has not;
//!   503 when the seed declines a piece it already sent while first copies are pending.
//!
//! A wrong token or an unknown blob is 404, so a scanner learns nothing. The token is random
//! per operation and travels with the peer list, never in a URL that a log keeps past it.

use std::time::Duration;

/// The header carrying a have-set's version.
pub const VERSION_HEADER: &str = "x-fanout-version";

/// The longest a have request waits for news.
pub const LONG_POLL: Duration = Duration::from_secs(10);

/// The path of blob `sha256`'s `what` (`have` or `data`) under `token`.
pub fn path(token: &str, sha256: &str, what: &str) -> String {
    format!("/fanout/{token}/{sha256}/{what}")
}

/// Splits a request path into token, blob and what.
pub fn split(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/fanout/")?;
    let mut parts = rest.split('/');
    let (token, blob, what) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some((token, blob, what))
}

/// Reads `bytes=<start>-<end>` (inclusive end); nothing else is accepted.
pub fn parse_range(value: &str) -> Option<(u64, u64)> {
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then_some((start, end))
}

/// Reads `after=<n>` from a query string.
pub fn parse_after(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .and_then(|v| v.parse().ok())
}

/// Whether two tokens are equal, comparing every byte so the time taken does not tell how
/// much of a guess was right.
pub fn token_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_back_into_their_parts() {
        let p = path("t0k", "ab", "have");
        assert_eq!(split(&p), Some(("t0k", "ab", "have")));
        assert_eq!(split("/fanout/t/b/have/x"), None);
        assert_eq!(split("/blobs/t/b"), None);
    }

    #[test]
    fn only_closed_byte_ranges_parse() {
        assert_eq!(parse_range("bytes=0-9"), Some((0, 9)));
        assert_eq!(parse_range("bytes=5-"), None);
        assert_eq!(parse_range("bytes=9-0"), None);
        assert_eq!(parse_range("items=0-9"), None);
        assert_eq!(parse_after(Some("after=7")), Some(7));
        assert_eq!(parse_after(Some("x=1&after=3")), Some(3));
        assert_eq!(parse_after(None), None);
        assert!(token_eq("abc", "abc"));
        assert!(!token_eq("abc", "abd"));
        assert!(!token_eq("abc", "ab"));
    }
}
