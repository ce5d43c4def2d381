//! The `Range` request header, as far as blob downloads use it (RFC 9110 §14).

/// A satisfiable byte range, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte.
    pub end: u64,
}

/// What a `Range` header asks of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// Serve the whole body: the header is malformed or asks for several ranges, which a
    /// server may ignore.
    Whole,
    /// Serve this part (206).
    Part(ByteRange),
    /// No byte of the body is in range (416).
    Unsatisfiable,
}

/// Reads a `Range` header for a body of `size` bytes: `bytes=N-`, `bytes=N-M` (M past the
/// end is cut to the end) and `bytes=-N` (the last N bytes).
pub fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let Some(n) = number(last) else {
                return RangeAsk::Whole;
            };
            if n == 0 || size == 0 {
                return RangeAsk::Unsatisfiable;
            }
            RangeAsk::Part(ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            })
        }
        (false, open) => {
            let Some(start) = number(first) else {
                return RangeAsk::Whole;
            };
            let end = if open {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    _ => return RangeAsk::Whole,
                }
            };
            if start >= size {
                return RangeAsk::Unsatisfiable;
            }
            RangeAsk::Part(ByteRange {
                start,
                end: end.min(size - 1),
            })
        }
        (true, true) => RangeAsk::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> RangeAsk {
        RangeAsk::Part(ByteRange { start, end })
    }

    #[test]
    fn reads_the_forms_blob_downloads_use() {
        assert_eq!(parse_range("bytes=0-", 10), r(0, 9));
        assert_eq!(parse_range("bytes=4-", 10), r(4, 9));
        assert_eq!(parse_range("bytes=4-6", 10), r(4, 6));
        assert_eq!(parse_range("bytes=4-100", 10), r(4, 9));
        assert_eq!(parse_range("bytes=-3", 10), r(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), r(0, 9));
        assert_eq!(parse_range(" bytes= 9 - ", 10), r(9, 9));
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(parse_range("bytes=10-", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), RangeAsk::Unsatisfiable);
    }

    #[test]
    fn anything_else_serves_the_whole_body() {
        for v in [
            "bytes=6-4",
            "bytes=a-",
            "bytes=-",
            "bytes=1-2,4-5",
            "items=0-",
            "bytes=+1-",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(v, 10), RangeAsk::Whole, "{v}");
        }
    }
}
