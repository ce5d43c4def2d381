//! Link rates: real bandwidth limits on the lab's links, so that the network and not the
//! machine's shared disk or CPU is the bottleneck in benchmarks.
//!
//! A rate puts a `tbf` qdisc on every place lab traffic leaves a device:
//!
//! - a host's machine-side veth (its egress is traffic *to* the host: the host's download);
//! - `eth0` in the host's namespace (traffic *from* the host: its upload);
//! - the bridge itself (what the machine, where the engine runs, sends to the hosts: the
//!   engine's upload);
//! - an ifb device that the bridge's ingress is redirected to (what the hosts send to the
//!   machine: the engine's download; tbf shapes egress only, and ifb turns that ingress
//!   into an egress).
//!
//! Host-to-host traffic crosses the bridge between ports and is shaped by the two veths.
//! The rate lives in `lab.json`, so hosts added later and hosts booted again get it too.

use serde::{Deserialize, Serialize};

use crate::{
    HostRecord, Lab, LabState, Result, exec,
    lab::exec_root,
    net,
    rate::{LinkRate, netns_args},
};

/// The device inside a host's namespace.
const HOST_DEV: &str = "eth0";

/// What `lab shape` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shaped {
    /// The rate now on every link; `None` when links are unlimited.
    pub link_rate: Option<LinkRate>,
    /// The lab's bridge.
    pub bridge: String,
    /// Hosts whose links were shaped (or cleared) now.
    pub hosts: Vec<String>,
    /// Hosts that have no link at the moment (not booted since the machine started);
    /// they get the lab's rate when they boot.
    pub pending: Vec<String>,
}

impl Lab {
    /// Sets (`Some`) or removes (`None`) the lab's link rate, records it for hosts that
    /// boot later, and applies it to the bridge and every host link that exists now.
    pub fn shape(&self, rate: Option<LinkRate>) -> Result<Shaped> {
        exec_root()?;
        exec::require("tc", "iproute2")?;
        let (_lock, mut state) = self.locked_state()?;
        // Recorded first: if applying fails half-way, a re-run or the next boot finishes it.
        state.link_rate = rate;
        self.layout().save(&state)?;
        let (hosts, pending) = sync_all(&state)?;
        Ok(Shaped {
            link_rate: rate,
            bridge: state.bridge(),
            hosts,
            pending,
        })
    }
}

/// Applies the lab's rate (or its absence) to the bridge and every host link; returns the
/// hosts shaped and those without links (shaped when they boot).
pub(crate) fn sync_all(state: &LabState) -> Result<(Vec<String>, Vec<String>)> {
    sync_bridge(state)?;
    let (mut done, mut pending) = (Vec::new(), Vec::new());
    for h in &state.hosts {
        if sync_host(state, h)? {
            done.push(h.name.clone());
        } else {
            pending.push(h.name.clone());
        }
    }
    Ok((done, pending))
}

/// Puts the lab's rate on both ends of a host's veth pair, or takes tbf off them when the
/// lab has none. Returns `false`, doing nothing, when the pair does not exist (yet).
pub(crate) fn sync_host(state: &LabState, host: &HostRecord) -> Result<bool> {
    let veth = state.veth(host);
    if !net::link_exists(&veth) {
        return Ok(false);
    }
    set_root(&veth, None, state.link_rate)?;
    set_root(HOST_DEV, Some(&state.netns(host)), state.link_rate)?;
    Ok(true)
}

/// Puts the lab's rate on the machine's side of the bridge, both ways, or removes it.
pub(crate) fn sync_bridge(state: &LabState) -> Result<()> {
    let (bridge, ifb) = (state.bridge(), state.ifb());
    if !net::link_exists(&bridge) {
        return Ok(());
    }
    set_root(&bridge, None, state.link_rate)?;
    // Rebuilt rather than patched, so a half-made redirect from a failed run is repaired.
    if has_qdisc(&bridge, None, "ingress")? {
        tc(&del_args(&bridge, None, "ingress"))?;
    }
    match state.link_rate {
        Some(rate) => {
            if !net::link_exists(&ifb) {
                exec::run("ip", &["link", "add", &ifb, "type", "ifb"])?;
            }
            exec::run("ip", &["link", "set", &ifb, "up"])?;
            set_root(&ifb, None, Some(rate))?;
            tc(&["qdisc", "add", "dev", &bridge, "handle", "ffff:", "ingress"].map(String::from))?;
            tc(&redirect_args(&bridge, &ifb)).map(drop)
        }
        None => net::remove_link(&ifb),
    }
}

/// Replaces `dev`'s root qdisc with tbf at `rate`, or deletes a tbf root when `rate` is
/// `None` (a root that is not tbf was not put there by the lab and is left alone).
fn set_root(dev: &str, netns: Option<&str>, rate: Option<LinkRate>) -> Result<()> {
    match rate {
        Some(rate) => tc(&rate.tbf_args(dev, netns)).map(drop),
        None if has_qdisc(dev, netns, "tbf")? => tc(&del_args(dev, netns, "root")).map(drop),
        None => Ok(()),
    }
}

/// `tc qdisc del` of `dev`'s `root` or `ingress` qdisc.
fn del_args(dev: &str, netns: Option<&str>, which: &str) -> Vec<String> {
    let mut args = netns_args(netns);
    args.extend(["qdisc", "del", "dev", dev, which].map(String::from));
    args
}

/// The filter that sends everything arriving at the bridge for the machine through `ifb`,
/// whose tbf then shapes it before it comes back into the bridge's receive path.
fn redirect_args(bridge: &str, ifb: &str) -> Vec<String> {
    [
        "filter", "add", "dev", bridge, "parent", "ffff:", "protocol", "all", "u32", "match",
        "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb,
    ]
    .map(String::from)
    .to_vec()
}

#[derive(Debug, Deserialize)]
struct Qdisc {
    kind: String,
}

/// Whether `dev` has a qdisc of `kind` (`tbf` at the root, or `ingress`).
fn has_qdisc(dev: &str, netns: Option<&str>, kind: &str) -> Result<bool> {
    let which = if kind == "ingress" { "ingress" } else { "root" };
    let mut args = netns_args(netns);
    args.extend(["-j", "qdisc", "show", "dev", dev, which].map(String::from));
    let json = tc(&args)?;
    Ok(parse_kinds(&json).iter().any(|k| k == kind))
}

/// The kinds in `tc -j qdisc show` output; tc prints nothing at all for some devices.
fn parse_kinds(json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<Qdisc>>(json)
        .map(|qs| qs.into_iter().map(|q| q.kind).collect())
        .unwrap_or_default()
}

/// Runs `tc args…`; a failure names the whole command line.
fn tc(args: &[String]) -> Result<String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    exec::run("tc", &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_and_redirecting_build_the_expected_tc_commands() {
        assert_eq!(
            del_args("eth0", Some("kg-ab12-lab-1"), "root").join(" "),
            "-n kg-ab12-lab-1 qdisc del dev eth0 root"
        );
        assert_eq!(
            del_args("kgb-ab12", None, "ingress").join(" "),
            "qdisc del dev kgb-ab12 ingress"
        );
        assert_eq!(
            redirect_args("kgb-ab12", "kgi-ab12").join(" "),
            "filter add dev kgb-ab12 parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev kgi-ab12"
        );
    }

    #[test]
    fn qdisc_kinds_come_from_tc_json() {
        let json = r#"[{"kind":"tbf","handle":"8006:","root":true,"refcnt":3,"options":{"rate":6250000,"burst":65531,"lat":50000}}]"#;
        assert_eq!(parse_kinds(json), ["tbf"]);
        assert!(parse_kinds("[]").is_empty());
        assert!(parse_kinds("").is_empty());
    }

    #[test]
    fn unshaped_state_files_still_load_and_rates_are_recorded() {
        let old = r#"{"version":1,"id":"ab12","subnet":"10.213.0.0/24","hosts":[]}"#;
        let state: LabState = serde_json::from_str(old).unwrap();
        assert_eq!(state.link_rate, None);
        assert!(!serde_json::to_string(&state).unwrap().contains("linkRate"));
        let mut shaped = state;
        shaped.link_rate = Some("50mbit".parse().unwrap());
        let json = serde_json::to_string(&shaped).unwrap();
        assert!(json.contains(r#""linkRate":"50mbit""#), "{json}");
        assert_eq!(serde_json::from_str::<LabState>(&json).unwrap(), shaped);
    }
}
