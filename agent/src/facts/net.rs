//! Network facts: the host's interfaces, and whether addresses answer TCP.
//!
//! A TCP probe is how preflight tells whether a virtual IP is already taken before
//! kube-vip claims it: a reset or an accept means some host owns the address, silence
//! means nobody does.

use std::{
    collections::BTreeMap,
    io,
    net::{SocketAddr, TcpStream},
    thread,
    time::Duration,
};

use nix::errno::Errno;

use super::{Interface, TcpProbe};
use crate::exec::{self, which};

/// How long one probe waits for an answer. A live host on the LAN answers within
/// milliseconds; the wait only matters for silent addresses, and all probes wait together.
pub const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// At most this many probes are in flight at once, so a plan cannot make the agent spawn
/// threads without bound; more take one more timeout per batch.
const MAX_CONCURRENT_PROBES: usize = 64;

/// The host's interfaces with addresses, loopback left out, from `ip -o addr show`. A host
/// without `ip` (or where it fails) reports none: preflight then has nothing to match an
/// address against and says so itself.
pub fn interfaces() -> Vec<Interface> {
    if which("ip").is_none() {
        return Vec::new();
    }
    match exec::run(&["ip", "-o", "addr", "show"]) {
        Ok(ran) if ran.success() => parse_ip_addr(&ran.stdout),
        _ => Vec::new(),
    }
}

/// Parses `ip -o addr show` lines (`2: eth0    inet 10.0.0.5/24 brd ... scope global eth0`)
/// into interfaces in the order `ip` lists them, each with its addresses in order.
pub fn parse_ip_addr(text: &str) -> Vec<Interface> {
    let mut interfaces: Vec<Interface> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_index, name, family, address, ..] = fields[..] else {
            continue;
        };
        // Virtual links print as "host0@if5"; the part after @ names the peer.
        let name = name.split('@').next().unwrap_or(name);
        if name == "lo" {
            continue;
        }
        let prefix = match family {
            "inet" => "32",
            "inet6" => "128",
            _ => continue,
        };
        // A point-to-point address ("inet 10.1.1.1 peer 10.1.1.2/32") carries no prefix on
        // the local side: it is a host address.
        let address = if address.contains('/') {
            address.to_string()
        } else {
            format!("{address}/{prefix}")
        };
        match interfaces.iter_mut().find(|i| i.name == name) {
            Some(i) => i.addresses.push(address),
            None => interfaces.push(Interface {
                name: name.to_string(),
                addresses: vec![address],
            }),
        }
    }
    interfaces
}

/// Tries a TCP connection to each `ip:port` (`[v6]:port` for IPv6), all at once, so that N
/// silent addresses cost one [`TCP_PROBE_TIMEOUT`], not N. An entry that is not an
/// address and port is left out of the result: it names nothing that could be probed.
pub fn tcp_probes(targets: &[String]) -> BTreeMap<String, TcpProbe> {
    let parsed: Vec<(&String, SocketAddr)> = targets
        .iter()
        .filter_map(|t| Some((t, t.parse().ok()?)))
        .collect();
    let mut results = BTreeMap::new();
    for batch in parsed.chunks(MAX_CONCURRENT_PROBES) {
        thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|(target, addr)| {
                    let handle = scope.spawn(move || probe(addr, TCP_PROBE_TIMEOUT));
                    (*target, handle)
                })
                .collect();
            for (target, handle) in handles {
                // A probe thread only connects and classifies; should it die anyway, the
                // address is reported as not answering.
                let found = handle.join().unwrap_or(TcpProbe::Silent);
                results.insert(target.clone(), found);
            }
        });
    }
    results
}

fn probe(addr: &SocketAddr, timeout: Duration) -> TcpProbe {
    match TcpStream::connect_timeout(addr, timeout) {
        Ok(_) => TcpProbe::Open,
        Err(e) => classify(&e),
    }
}

/// How a failed connect maps to a probe result. A refusal (or a reset) is an answer from
/// a live host; a timeout or no route means nobody holds the address. Anything else (no
/// local address to send from, a firewall rejecting locally) got no answer either.
pub fn classify(err: &io::Error) -> TcpProbe {
    match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ECONNREFUSED | Errno::ECONNRESET) => TcpProbe::Refused,
        Some(_) => TcpProbe::Silent,
        None => match err.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => TcpProbe::Refused,
            _ => TcpProbe::Silent,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn parses_ip_addr_output() {
        let text = "\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever
2: host0@if5    inet 10.213.70.11/24 brd 10.213.70.255 scope global host0\\       valid_lft forever preferred_lft forever
2: host0@if5    inet 10.213.70.100/32 scope global host0\\       valid_lft forever preferred_lft forever
2: host0@if5    inet6 fe80::fc:ff:fe00:1/64 scope link \\       valid_lft forever preferred_lft forever
3: tun0    inet 10.8.0.1 peer 10.8.0.2/32 scope global tun0\\       valid_lft forever preferred_lft forever
";
        assert_eq!(
            parse_ip_addr(text),
            vec![
                Interface {
                    name: "host0".into(),
                    addresses: vec![
                        "10.213.70.11/24".into(),
                        "10.213.70.100/32".into(),
                        "fe80::fc:ff:fe00:1/64".into(),
                    ],
                },
                Interface {
                    name: "tun0".into(),
                    addresses: vec!["10.8.0.1/32".into()],
                },
            ]
        );
        assert!(parse_ip_addr("").is_empty());
        assert!(parse_ip_addr("garbage\n2: eth0\n").is_empty());
    }

    #[test]
    fn reads_this_hosts_interfaces_without_loopback() {
        let found = interfaces();
        assert!(found.iter().all(|i| i.name != "lo"), "{found:?}");
        assert!(
            found
                .iter()
                .flat_map(|i| &i.addresses)
                .all(|a| a.contains('/')),
            "{found:?}"
        );
    }

    #[test]
    fn probes_open_and_refused_ports_on_loopback() {
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let open_addr = open.local_addr().unwrap().to_string();
        // A port that was just free: bound, then released, so nothing listens on it.
        let closed_addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let targets = vec![
            open_addr.clone(),
            closed_addr.clone(),
            "not-an-address".to_string(),
        ];
        let found = tcp_probes(&targets);
        assert_eq!(
            found,
            BTreeMap::from([
                (open_addr, TcpProbe::Open),
                (closed_addr, TcpProbe::Refused),
            ])
        );
    }

    #[test]
    fn classifies_connect_errors() {
        let os = |errno: Errno| io::Error::from_raw_os_error(errno as i32);
        assert_eq!(classify(&os(Errno::ECONNREFUSED)), TcpProbe::Refused);
        assert_eq!(classify(&os(Errno::EHOSTUNREACH)), TcpProbe::Silent);
        assert_eq!(classify(&os(Errno::ENETUNREACH)), TcpProbe::Silent);
        assert_eq!(classify(&os(Errno::ETIMEDOUT)), TcpProbe::Silent);
        // connect_timeout reports its own timeout without an errno.
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
        assert_eq!(classify(&timeout), TcpProbe::Silent);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused), TcpProbe::Refused);
    }
}
