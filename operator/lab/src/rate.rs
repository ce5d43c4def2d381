//! Link rates as `lab up --link-rate` and `lab shape --rate` take them: tc's rate syntax
//! for bits per second, and the tbf parameters each rate gets.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The lowest rate accepted: below it SSH logins and the engine's own traffic time out
/// before a benchmark can say anything.
const MIN_BITS: u64 = 1_000_000;

/// The highest rate accepted: far above what a veth pair moves on one machine, so tbf
/// would no longer be the bottleneck.
const MAX_BITS: u64 = 100_000_000_000;

/// tc's unit suffixes for bits per second (matched case-insensitively, as tc does).
const BIT_UNITS: &[(&str, u64)] = &[
    ("bit", 1),
    ("kbit", 1_000),
    ("mbit", 1_000_000),
    ("gbit", 1_000_000_000),
];

/// tc's suffixes for *bytes* per second. `10mbps` is 80 Mbit/s to tc, which is easy to
/// misread, so they are refused with the rate in bits.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("bps", 8),
    ("kbps", 8_000),
    ("mbps", 8_000_000),
    ("gbps", 8_000_000_000),
];

/// What a rate must look like, for error messages.
const EXPECTED: &str = "expected bits per second in tc's syntax: a number with kbit, mbit or gbit (50mbit, 1.5gbit, 2500kbit), or a bare number of bit/s (2000000)";

/// How long a packet may wait in a tbf queue before it is dropped (tbf's `latency`).
///
/// It sizes the queue (`limit = rate × latency + burst`). 50 ms is the order of a real
/// shared link's buffering: enough that TCP keeps the link busy through its backoffs
/// without tail-drop storms at every rate from 1mbit up, and small enough that an
/// interactive SSH command queued behind a bulk transfer waits at most ~50 ms more.
pub(crate) const TBF_LATENCY: &str = "50ms";

/// The smallest tbf bucket: one full GSO/TSO packet (64 KiB), which veth and the bridge
/// pass whole. A smaller bucket makes tbf split every such packet in software.
const MIN_BURST: u64 = 64 * 1024;

/// Ticks per second of the coarsest timer a tbf may have to refill from (Debian's
/// `CONFIG_HZ=250`); see [`LinkRate::burst_bytes`].
const HZ: u64 = 250;

/// A link rate in bits per second, written and read as tc writes it (`50mbit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LinkRate(u64);

impl LinkRate {
    /// The rate in bits per second.
    pub fn bits_per_second(self) -> u64 {
        self.0
    }

    /// tbf's bucket size in bytes: `max(64 KiB, rate / HZ)` with HZ = 250.
    ///
    /// tbf can send at most one bucket per timer wakeup, so it needs `burst >= rate / HZ`
    /// to reach the rate where the qdisc watchdog is tick-bound; with high-resolution
    /// timers (this machine's) it needs less, but the rule keeps 10gbit reachable on
    /// coarse-timer kernels too (5 MB there, 4 ms of traffic). At low rates the floor of
    /// one 64 KiB GSO packet wins (10mbit: rate/HZ would be 5 KB); it lets a link send
    /// 64 KiB at full speed after idling, which is 10 ms of a 50mbit link and invisible in
    /// any transfer worth measuring.
    pub fn burst_bytes(self) -> u64 {
        (self.0 / 8 / HZ).max(MIN_BURST)
    }

    /// The arguments after `tc` that put this rate on `dev` as its root qdisc, inside
    /// network namespace `netns` when given. `replace` makes it idempotent.
    pub(crate) fn tbf_args(self, dev: &str, netns: Option<&str>) -> Vec<String> {
        let mut args = netns_args(netns);
        args.extend(
            [
                "qdisc",
                "replace",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                &format!("{}bit", self.0),
                "burst",
                &self.burst_bytes().to_string(),
                "latency",
                TBF_LATENCY,
            ]
            .map(String::from),
        );
        args
    }
}

/// `-n NETNS` for tc, or nothing for the machine's own namespace.
pub(crate) fn netns_args(netns: Option<&str>) -> Vec<String> {
    netns
        .map(|ns| vec!["-n".to_string(), ns.to_string()])
        .unwrap_or_default()
}

impl FromStr for LinkRate {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidRate {
            given: text.to_string(),
            reason,
        };
        let lower = text.trim().to_ascii_lowercase();
        let split = lower
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(lower.len());
        let (number, unit) = lower.split_at(split);
        let unit = unit.trim_start();
        if number.is_empty() {
            return Err(invalid(EXPECTED.into()));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| invalid(format!("`{number}` is not a number; {EXPECTED}")))?;
        if let Some((_, bytes)) = BYTE_UNITS.iter().find(|(u, _)| *u == unit) {
            return Err(invalid(format!(
                "tc reads `{unit}` as bytes, not bits, per second; write the rate in bits: {}",
                LinkRate((value * *bytes as f64).round() as u64)
            )));
        }
        let scale = match unit {
            "" => 1,
            _ => match BIT_UNITS.iter().find(|(u, _)| *u == unit) {
                Some((_, scale)) => *scale,
                None => return Err(invalid(format!("unknown unit `{unit}`; {EXPECTED}"))),
            },
        };
        let bits = value * scale as f64;
        if !(MIN_BITS as f64..=MAX_BITS as f64).contains(&bits) {
            return Err(invalid(format!(
                "the rate must be between {} and {}",
                LinkRate(MIN_BITS),
                LinkRate(MAX_BITS)
            )));
        }
        Ok(LinkRate(bits.round() as u64))
    }
}

impl fmt::Display for LinkRate {
    /// The largest of tc's units that writes the rate exactly: `50mbit`, `1500kbit`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, scale) = BIT_UNITS
            .iter()
            .rev()
            .find(|(_, scale)| self.0.is_multiple_of(*scale))
            .copied()
            .unwrap_or(("bit", 1));
        write!(f, "{}{unit}", self.0 / scale)
    }
}

impl TryFrom<String> for LinkRate {
    type Error = Error;

    fn try_from(text: String) -> Result<Self, Error> {
        text.parse()
    }
}

impl From<LinkRate> for String {
    fn from(rate: LinkRate) -> String {
        rate.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(text: &str) -> u64 {
        text.parse::<LinkRate>()
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .bits_per_second()
    }

    fn refusal(text: &str) -> String {
        text.parse::<LinkRate>().unwrap_err().to_string()
    }

    #[test]
    fn parses_tc_bit_units_case_insensitively() {
        assert_eq!(bits("200mbit"), 200_000_000);
        assert_eq!(bits("1gbit"), 1_000_000_000);
        assert_eq!(bits("10Gbit"), 10_000_000_000);
        assert_eq!(bits("1.5gbit"), 1_500_000_000);
        assert_eq!(bits("1500kbit"), 1_500_000);
        assert_eq!(bits("2000000"), 2_000_000);
        assert_eq!(bits("2000000bit"), 2_000_000);
        assert_eq!(bits(" 50MBIT "), 50_000_000);
        assert_eq!(bits("50 mbit"), 50_000_000);
    }

    #[test]
    fn prints_the_largest_exact_unit_and_round_trips() {
        for (given, shown) in [
            ("50mbit", "50mbit"),
            ("1000mbit", "1gbit"),
            ("1.5gbit", "1500mbit"),
            ("1234567", "1234567bit"),
            ("2500kbit", "2500kbit"),
        ] {
            let rate: LinkRate = given.parse().unwrap();
            assert_eq!(rate.to_string(), shown);
            assert_eq!(shown.parse::<LinkRate>().unwrap(), rate);
        }
        let json = serde_json::to_string(&"50mbit".parse::<LinkRate>().unwrap()).unwrap();
        assert_eq!(json, r#""50mbit""#);
        assert!(serde_json::from_str::<LinkRate>(r#""fast""#).is_err());
    }

    #[test]
    fn refuses_garbage_saying_what_was_seen_and_expected() {
        let msg = refusal("fast");
        assert!(
            msg.contains("`fast` is not a link rate") && msg.contains("50mbit"),
            "{msg}"
        );
        assert!(refusal("").contains("kbit, mbit or gbit"));
        assert!(refusal("50 furlongs").contains("unknown unit `furlongs`"));
        assert!(refusal("1.2.3mbit").contains("`1.2.3` is not a number"));
        assert!(refusal("-5mbit").contains("expected bits per second"));
        let bytes = refusal("10mbps");
        assert!(
            bytes.contains("as bytes, not bits, per second") && bytes.contains("80mbit"),
            "{bytes}"
        );
        assert!(refusal("999kbit").contains("between 1mbit and 100gbit"));
        assert!(refusal("101gbit").contains("between 1mbit and 100gbit"));
        assert!(refusal("0").contains("between"));
    }

    #[test]
    fn burst_covers_one_gso_packet_and_one_tick_of_the_rate() {
        let burst = |r: &str| r.parse::<LinkRate>().unwrap().burst_bytes();
        assert_eq!(burst("10mbit"), 65_536);
        assert_eq!(burst("50mbit"), 65_536);
        assert_eq!(burst("1gbit"), 500_000);
        assert_eq!(burst("10gbit"), 5_000_000);
    }

    #[test]
    fn tbf_arguments_name_the_device_namespace_and_rate() {
        let rate: LinkRate = "50mbit".parse().unwrap();
        assert_eq!(
            rate.tbf_args("kgab12-2", None).join(" "),
            "qdisc replace dev kgab12-2 root tbf rate 50000000bit burst 65536 latency 50ms"
        );
        assert_eq!(
            rate.tbf_args("eth0", Some("kg-ab12-lab-1")).join(" "),
            "-n kg-ab12-lab-1 qdisc replace dev eth0 root tbf rate 50000000bit burst 65536 latency 50ms"
        );
    }
}
