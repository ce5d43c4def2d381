//! The lab network: one bridge on the machine, one network namespace per host joined to it
//! by a veth pair. Nothing adds a default route, so hosts reach each other and the machine
//! (the bridge address) and nothing else.

use std::{fs::File, net::Ipv4Addr, path::Path};

use ipnet::Ipv4Net;
use serde::Deserialize;

use crate::{Error, HostRecord, LabState, Result, exec::run};

/// Lock file that serialises address checks and bridge creation across all labs on the
/// machine, so two labs created at once cannot both claim one free range.
const MACHINE_LOCK: &str = "/run/kubegrid/lab-net.lock";

/// Takes the machine-wide network lock.
pub fn machine_lock() -> Result<File> {
    let path = Path::new(MACHINE_LOCK);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    }
    let file = File::create(path).map_err(Error::io("create lock file", path))?;
    file.lock().map_err(Error::io("lock", path))?;
    Ok(file)
}

#[derive(Debug, Deserialize)]
struct Route {
    dst: String,
    dev: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Fails with [`Error::SubnetCollision`] if any route on the machine, other than the
/// default route and routes through `own_bridge`, overlaps `subnet`.
pub fn check_subnet_free(subnet: Ipv4Net, own_bridge: &str) -> Result<()> {
    let json = run("ip", &["-j", "-4", "route", "show", "table", "all"])?;
    let routes: Vec<Route> = serde_json::from_str(&json).map_err(|e| Error::RunCommand {
        command: "ip -j -4 route show table all".into(),
        detail: format!("unexpected output: {e}"),
    })?;
    match colliding_route(&routes, subnet, own_bridge) {
        Some(route) => Err(Error::SubnetCollision {
            subnet: subnet.to_string(),
            route,
        }),
        None => Ok(()),
    }
}

fn colliding_route(routes: &[Route], subnet: Ipv4Net, own_bridge: &str) -> Option<String> {
    routes.iter().find_map(|r| {
        if r.dst == "default" || r.dev.as_deref() == Some(own_bridge) {
            return None;
        }
        let net: Ipv4Net = r
            .dst
            .parse()
            .or_else(|_| r.dst.parse::<Ipv4Addr>().map(Ipv4Net::from))
            .ok()?;
        let overlaps = subnet.contains(&net.network()) || net.contains(&subnet.network());
        overlaps.then(|| {
            let kind = r
                .kind
                .as_deref()
                .map(|k| format!("{k} "))
                .unwrap_or_default();
            let dev = r
                .dev
                .as_deref()
                .map(|d| format!(" dev {d}"))
                .unwrap_or_default();
            format!("{kind}{}{dev}", r.dst)
        })
    })
}

/// Whether a link exists in the machine's namespace.
pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Whether the lab's bridge exists on the machine.
pub fn bridge_exists(state: &LabState) -> bool {
    link_exists(&state.bridge())
}

/// Whether a machine-side link is administratively up; `None` if it does not exist.
pub fn link_is_up(name: &str) -> Option<bool> {
    let flags =
        std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("flags")).ok()?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
    Some(flags & 1 == 1)
}

/// Creates the lab bridge with the gateway address, unless it exists. Checks the subnet
/// against existing routes first; the caller holds [`machine_lock`].
pub fn ensure_bridge(state: &LabState) -> Result<()> {
    let bridge = state.bridge();
    if !link_exists(&bridge) {
        check_subnet_free(state.subnet, &bridge)?;
        let cidr = format!("{}/{}", state.gateway(), state.subnet.prefix_len());
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &cidr, "dev", &bridge])?;
    }
    run("ip", &["link", "set", &bridge, "up"]).map(drop)
}

/// Creates a host's namespace and veth pair, with its address, where missing.
pub fn ensure_host(state: &LabState, host: &HostRecord) -> Result<()> {
    let ns = state.netns(host);
    let veth = state.veth(host);
    if !netns_exists(&ns) {
        // A stale machine-side link would point into a namespace that is gone.
        if link_exists(&veth) {
            run("ip", &["link", "del", &veth])?;
        }
        run("ip", &["netns", "add", &ns])?;
    }
    if !link_exists(&veth) {
        let cidr = format!("{}/{}", host.address, state.subnet.prefix_len());
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run("ip", &["link", "set", &veth, "master", &state.bridge()])?;
        run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Brings a host's machine-side link up or down.
pub fn set_link(state: &LabState, host: &HostRecord, up: bool) -> Result<()> {
    let veth = state.veth(host);
    run(
        "ip",
        &["link", "set", &veth, if up { "up" } else { "down" }],
    )
    .map(drop)
}

/// Removes a host's veth pair and namespace, whichever exist.
pub fn remove_host(state: &LabState, host: &HostRecord) -> Result<()> {
    let veth = state.veth(host);
    // Deleting the namespace would also remove the pair, but only asynchronously; delete
    // the link first so nothing is left behind when this returns.
    if link_exists(&veth) {
        run("ip", &["link", "del", &veth])?;
    }
    let ns = state.netns(host);
    if netns_exists(&ns) {
        run("ip", &["netns", "del", &ns])?;
    }
    Ok(())
}

/// Removes the lab bridge and its ifb device (`crate::shape`), whichever exist.
pub fn remove_bridge(state: &LabState) -> Result<()> {
    remove_link(&state.bridge())?;
    remove_link(&state.ifb())
}

/// Deletes a machine-side link if it exists.
pub(crate) fn remove_link(name: &str) -> Result<()> {
    if link_exists(name) {
        run("ip", &["link", "del", name])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(json: &str) -> Vec<Route> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn finds_overlapping_routes_but_ignores_default_and_own_bridge() {
        let r = routes(
            r#"[{"dst":"default","gateway":"10.0.0.1","dev":"eth0"},
                {"dst":"10.213.0.0/24","dev":"kgb-ab12","type":"unicast"},
                {"dst":"10.0.0.0/8","dev":"eth0"},
                {"type":"local","dst":"127.0.0.1","dev":"lo","table":"local"}]"#,
        );
        let lab: Ipv4Net = "10.213.0.0/24".parse().unwrap();
        assert_eq!(
            colliding_route(&r, lab, "kgb-ab12").as_deref(),
            Some("10.0.0.0/8 dev eth0")
        );
        let other: Ipv4Net = "192.168.77.0/24".parse().unwrap();
        assert_eq!(colliding_route(&r, other, "kgb-ab12"), None);
        let host_route = routes(r#"[{"type":"local","dst":"192.168.77.5","dev":"eth1"}]"#);
        assert_eq!(
            colliding_route(&host_route, other, "kgb-x").as_deref(),
            Some("local 192.168.77.5 dev eth1")
        );
    }

    #[test]
    fn loopback_is_up_and_missing_links_are_none() {
        assert_eq!(link_is_up("lo"), Some(true));
        assert_eq!(link_is_up("kg-no-such-link"), None);
    }
}
