//! Checks on single values, the way kubeadm's validation reads them.

use std::{fmt, net::IpAddr};

/// A Kubernetes release version, `v1.31.4` (a leading `v` and a `-rc.0`/`+build` suffix are
/// allowed, as kubeadm allows them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
    text: String,
}

impl KubeVersion {
    /// Parses `v1.31.4` or `1.31.4`; `None` for anything else (`stable-1`, `1.31`).
    pub fn parse(s: &str) -> Option<KubeVersion> {
        let core = s.strip_prefix('v').unwrap_or(s);
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u32>().ok())
                .flatten()
        });
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        let text = if s.starts_with('v') {
            s.to_string()
        } else {
            format!("v{s}")
        };
        Some(KubeVersion {
            major,
            minor,
            patch,
            text,
        })
    }

    /// Whether this is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One CIDR: address and prefix length.
pub type Cidr = (IpAddr, u8);

/// Parses `10.244.0.0/16` (host bits may be set, as Go's `net.ParseCIDR` allows).
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a CIDR (no /prefix-length)"))?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{s}` is not a CIDR (`{addr}` is not an IP address)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(n) if n <= max && len.bytes().all(|b| b.is_ascii_digit()) => Ok((ip, n)),
        _ => Err(format!(
            "`{s}` is not a CIDR (prefix length `{len}` is not 0..={max})"
        )),
    }
}

/// Parses a kubeadm subnet list: one CIDR, or two separated by a comma (dual stack, one of
/// each family).
pub fn parse_cidr_list(s: &str) -> Result<Vec<Cidr>, String> {
    let cidrs = s
        .split(',')
        .map(|c| parse_cidr(c.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    match cidrs.as_slice() {
        [_] => Ok(cidrs),
        [a, b] if a.0.is_ipv4() != b.0.is_ipv4() => Ok(cidrs),
        [_, _] => Err(format!(
            "`{s}`: a dual-stack subnet list needs one IPv4 and one IPv6 CIDR"
        )),
        _ => Err(format!("`{s}`: at most two CIDRs (dual stack) are allowed")),
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Whether two CIDRs share any address.
pub fn overlaps(a: Cidr, b: Cidr) -> bool {
    if a.0.is_ipv4() != b.0.is_ipv4() {
        return false;
    }
    // bits() puts an IPv4 address in the top 32 bits, so prefix lengths count from the top
    // for both families.
    let len = u32::from(a.1.min(b.1));
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    bits(a.0) & mask == bits(b.0) & mask
}

/// A DNS-1123 subdomain: what Kubernetes accepts as a node name.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address; a host is an IP address
/// or a DNS name. With `need_port`, a port is required (as `net.SplitHostPort` requires it).
pub fn host_port(s: &str, need_port: bool) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{s}`: unclosed `[`"))?;
        (h, p.strip_prefix(':'))
    } else if s.matches(':').count() > 1 {
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = host.parse::<IpAddr>().is_ok() || is_dns_subdomain(&host.to_ascii_lowercase());
    if !host_ok {
        return Err(format!(
            "`{s}`: `{host}` is neither an IP address nor a DNS name"
        ));
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{s}`: port `{p}` is not 1..=65535")),
        },
        None if need_port => return Err(format!("`{s}` has no port (expected host:port)")),
        None => None,
    };
    Ok((host.to_string(), port))
}

/// An `https://host:port` URL (a path is allowed), as kubeadm requires for external etcd
/// endpoints when client certificates are given.
pub fn https_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .ok_or_else(|| format!("`{s}` is not an https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    host_port(authority, true).map(|_| ())
}

/// A bootstrap token: `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn is_bootstrap_token(s: &str) -> bool {
    let ok = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    s.split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

/// Lower- or upper-case hex of exactly `len` digits.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A CA public-key pin as `kubeadm join` takes it: `sha256:<64 hex digits>`.
pub fn is_ca_hash(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| is_hex(h, 64))
}

/// A Go duration (`24h`, `1h30m`, `2h0m0s`, `0`), as kubeadm's `ttl` and timeouts take.
pub fn is_duration(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ns", "us", "µs", "ms", "h", "m", "s"]
            .iter()
            .find(|u| rest.starts_with(**u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// The length of a Go duration (`8760h0m0s`, `90m`, `1.5h`); `None` when it is not one.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    if s == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if !is_duration(s) {
        return None;
    }
    let mut rest = s;
    let mut secs = 0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("h", 3600.0),
            ("m", 60.0),
            ("s", 1.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        secs += n * scale;
        rest = &rest[unit.len()..];
    }
    std::time::Duration::try_from_secs_f64(secs).ok()
}

/// The first host address of a CIDR (`10.96.0.0/12` -> `10.96.0.1`): the `kubernetes`
/// Service's ClusterIP, which kubeadm puts in the apiserver's certificate.
pub fn first_ip(cidr: Cidr) -> IpAddr {
    let (ip, len) = cidr;
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).wrapping_add(1).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).wrapping_add(1).to_be_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_first_ips() {
        let d = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(d("8760h0m0s"), Some(8760 * 3600));
        assert_eq!(d("90m"), Some(5400));
        assert_eq!(d("1.5h"), Some(5400));
        assert_eq!(d("0"), Some(0));
        assert_eq!(d("5 minutes"), None);
        assert_eq!(d(""), None);
        let ip = |s| first_ip(parse_cidr(s).unwrap()).to_string();
        assert_eq!(ip("10.96.0.0/12"), "10.96.0.1");
        assert_eq!(ip("10.96.5.7/12"), "10.96.0.1");
        assert_eq!(ip("fd00:10:96::/108"), "fd00:10:96::1");
    }

    #[test]
    fn versions() {
        let v = KubeVersion::parse("v1.31.4").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 31, 4));
        assert!(v.at_least(1, 31) && !v.at_least(1, 32));
        assert_eq!(KubeVersion::parse("1.30.0").unwrap().to_string(), "v1.30.0");
        assert!(KubeVersion::parse("v1.32.0-rc.1").is_some());
        for bad in ["stable-1", "v1.31", "v1.x.0", "", "v1.31.4.5"] {
            assert!(KubeVersion::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cidrs_and_hosts() {
        assert!(parse_cidr_list("10.244.0.0/16,fd00::/56").is_ok());
        assert!(parse_cidr_list("10.244.0.0/16,10.245.0.0/16").is_err());
        assert!(parse_cidr("10.244.0.0/33").is_err());
        assert!(parse_cidr("10.244.0/16").is_err());
        let a = parse_cidr("10.96.0.0/12").unwrap();
        assert!(overlaps(a, parse_cidr("10.100.0.0/16").unwrap()));
        assert!(!overlaps(a, parse_cidr("10.244.0.0/16").unwrap()));
        assert_eq!(host_port("10.0.0.1:6443", true).unwrap().1, Some(6443));
        assert!(host_port("cp.example:6443", true).is_ok());
        assert!(host_port("[fd00::1]:6443", true).is_ok());
        assert!(host_port("10.0.0.1", true).is_err());
        assert!(host_port("bad_host:6443", false).is_err());
        assert!(https_url("https://10.0.0.5:2379").is_ok());
        assert!(https_url("http://10.0.0.5:2379").is_err());
    }

    #[test]
    fn tokens_and_durations() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        assert!(!is_bootstrap_token("ABCDEF.0123456789abcdef"));
        assert!(is_ca_hash(&format!("sha256:{}", "ab".repeat(32))));
        assert!(!is_ca_hash("md5:abcd"));
        for ok in ["24h", "2h0m0s", "0", "1.5h", "300ms"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "h", "24", "1d"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }
}
