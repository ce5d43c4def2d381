//! Checks of InitConfiguration and JoinConfiguration, and helpers shared with cluster.rs.

use serde_json::Value;

use super::Checked;
use crate::{
    checks::{host_port, is_bootstrap_token, is_ca_hash, is_dns_subdomain, is_duration, is_hex},
    yaml::{at, type_name},
};

const NODE_REGISTRATION: &[&str] = &[
    "name",
    "criSocket",
    "taints",
    "kubeletExtraArgs",
    "ignorePreflightErrors",
    "imagePullPolicy",
    "imagePullSerial",
];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// The known keys of a kind: those of both versions, plus those of v1beta4 only.
pub(super) fn fields<'a>(both: &[&'a str], v4_only: &[&'a str], v4: bool) -> Vec<&'a str> {
    let mut all = vec!["apiVersion", "kind"];
    all.extend_from_slice(both);
    if v4 {
        all.extend_from_slice(v4_only);
    }
    all
}

/// `extraArgs`/`kubeletExtraArgs`: a list of `{name, value}` in v1beta4, a map in v1beta3.
pub(super) fn args(
    c: &mut Checked,
    parent: &Value,
    key: &str,
    at_: &str,
    v4: bool,
) -> Vec<(String, String)> {
    let Some(v) = at(parent, key) else {
        return Vec::new();
    };
    let at_ = format!("{at_}.{key}");
    let mut out = Vec::new();
    match (v4, v) {
        (true, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let name = item.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
                let value = match item.get("value") {
                    None | Some(Value::Null) => Some(""),
                    Some(v) => v.as_str(),
                };
                match (name, value, item.as_object().map(|m| m.len())) {
                    (Some(n), Some(v), Some(len)) if len <= 2 => out.push((n.to_string(), v.to_string())),
                    _ => c.problem(format!("{at_}[{i}]: expected {{name: <flag>, value: <string>}}, found {item}")),
                }
            }
        }
        (true, Value::Object(_)) => c.problem(format!(
            "{at_}: kubeadm.k8s.io/v1beta4 takes a list of {{name, value}}, found a map (the v1beta3 form)"
        )),
        (false, Value::Object(map)) => {
            for (name, value) in map {
                match value.as_str() {
                    Some(s) => out.push((name.clone(), s.to_string())),
                    None => c.problem(format!(
                        "{at_}.{name}: expected a string value, found {} (quote it)",
                        type_name(value)
                    )),
                }
            }
        }
        (false, Value::Array(_)) => c.problem(format!(
            "{at_}: kubeadm.k8s.io/v1beta3 takes a map of flag: value, found a list (the v1beta4 form)"
        )),
        (_, other) => c.problem(format!("{at_}: expected {}, found {}", if v4 { "a list" } else { "a map" }, type_name(other))),
    }
    out
}

fn node_registration(c: &mut Checked, doc: &Value, at_: &str, v4: bool) {
    let Some(nr) = c.map(doc, "nodeRegistration", at_) else {
        return;
    };
    let at_ = format!("{at_}.nodeRegistration");
    let known: Vec<&str> = NODE_REGISTRATION
        .iter()
        .copied()
        .filter(|f| v4 || *f != "imagePullSerial")
        .collect();
    c.known_fields(nr, &at_, &known);
    if let Some(name) = c.string(nr, "name", &at_) {
        if is_dns_subdomain(name) {
            c.facts.node_name = Some(name.to_string());
        } else {
            c.problem(format!(
                "{at_}.name: `{name}` is not a valid node name (lower-case DNS-1123 subdomain)"
            ));
        }
    }
    if let Some(socket) = c.string(nr, "criSocket", &at_) {
        if socket.contains("://") && !socket.starts_with("unix://") {
            c.problem(format!(
                "{at_}.criSocket: `{socket}` is not a unix:// endpoint"
            ));
        } else if !socket.starts_with("unix://") {
            c.warn(format!(
                "{at_}.criSocket: `{socket}` has no URL scheme (deprecated); use unix://{socket}"
            ));
        }
        c.facts.cri_socket = Some(socket.to_string());
    }
    if let Some(taints) = at(nr, "taints") {
        match taints.as_array() {
            Some(items) => {
                for (i, t) in items.iter().enumerate() {
                    let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
                    let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
                    if key.is_empty() || !TAINT_EFFECTS.contains(&effect) {
                        c.problem(format!(
                            "{at_}.taints[{i}]: needs a key and an effect of {}, found {t}",
                            TAINT_EFFECTS.join("|")
                        ));
                    }
                }
            }
            None => c.problem(format!(
                "{at_}.taints: expected a list, found {}",
                type_name(taints)
            )),
        }
    }
    c.facts.kubelet_args = args(c, nr, "kubeletExtraArgs", &at_, v4);
    c.facts.ignore_preflight = c.strings(nr, "ignorePreflightErrors", &at_);
    if let Some(p) = c.string(nr, "imagePullPolicy", &at_)
        && !["Always", "IfNotPresent", "Never"].contains(&p)
    {
        c.problem(format!(
            "{at_}.imagePullPolicy: `{p}` is not Always, IfNotPresent or Never"
        ));
    }
}

/// `localAPIEndpoint`: the address this control-plane node's apiserver advertises.
fn local_api_endpoint(c: &mut Checked, parent: &Value, at_: &str) -> Option<String> {
    let ep = c.map(parent, "localAPIEndpoint", at_)?;
    let at_ = format!("{at_}.localAPIEndpoint");
    c.known_fields(ep, &at_, &["advertiseAddress", "bindPort"]);
    let port = match at(ep, "bindPort") {
        None => 6443,
        Some(p) => match p.as_u64().filter(|p| (1..=65535).contains(p)) {
            Some(p) => p,
            None => {
                c.problem(format!(
                    "{at_}.bindPort: expected a port 1..=65535, found {p}"
                ));
                6443
            }
        },
    };
    let addr = c.string(ep, "advertiseAddress", &at_)?;
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_ipv6() => Some(format!("https://[{ip}]:{port}")),
        Ok(ip) => Some(format!("https://{ip}:{port}")),
        Err(_) => {
            c.problem(format!(
                "{at_}.advertiseAddress: `{addr}` is not an IP address"
            ));
            None
        }
    }
}

fn certificate_key(c: &mut Checked, parent: &Value, at_: &str, required: bool) {
    match c.string(parent, "certificateKey", at_) {
        Some(k) if is_hex(k, 64) => c.facts.certificate_key = Some(k.to_string()),
        Some(k) => c.problem(format!("{at_}.certificateKey: expected 64 hex digits (a 32-byte AES key), found {} characters", k.len())),
        None if required => c.problem(format!("{at_}.certificateKey: required to join a control-plane node (the key `kubeadm init --upload-certs` encrypted the certificates with)")),
        None => {}
    }
}

/// InitConfiguration.
pub fn init(c: &mut Checked, doc: &Value, v4: bool) {
    let at_ = "InitConfiguration";
    let both = [
        "bootstrapTokens",
        "nodeRegistration",
        "localAPIEndpoint",
        "certificateKey",
        "skipPhases",
        "patches",
    ];
    c.known_fields(doc, at_, &fields(&both, &["dryRun", "timeouts"], v4));
    c.facts.control_plane = true;
    if let Some(tokens) = at(doc, "bootstrapTokens") {
        for (i, t) in tokens
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at_ = format!("{at_}.bootstrapTokens[{i}]");
            c.known_fields(
                t,
                &at_,
                &["token", "description", "ttl", "expires", "usages", "groups"],
            );
            if !t
                .get("token")
                .and_then(Value::as_str)
                .is_some_and(is_bootstrap_token)
            {
                c.problem(format!(
                    "{at_}.token: required, in the form [a-z0-9]{{6}}.[a-z0-9]{{16}}"
                ));
            }
            if let Some(ttl) = c.string(t, "ttl", &at_)
                && !is_duration(ttl)
            {
                c.problem(format!("{at_}.ttl: `{ttl}` is not a duration like 24h0m0s"));
            }
        }
        if !tokens.is_array() {
            c.problem(format!(
                "{at_}.bootstrapTokens: expected a list, found {}",
                type_name(tokens)
            ));
        }
    }
    node_registration(c, doc, at_, v4);
    if let Some(server) = local_api_endpoint(c, doc, at_) {
        c.facts.server.get_or_insert(server);
    }
    certificate_key(c, doc, at_, false);
    c.strings(doc, "skipPhases", at_);
    if v4 && let Some(timeouts) = c.map(doc, "timeouts", at_) {
        for (key, value) in timeouts.as_object().into_iter().flatten() {
            if !value.as_str().is_some_and(is_duration) {
                c.problem(format!(
                    "{at_}.timeouts.{key}: expected a duration like 4m0s, found {value}"
                ));
            }
        }
    }
}

/// JoinConfiguration.
pub fn join(c: &mut Checked, doc: &Value, v4: bool) {
    let at_ = "JoinConfiguration";
    let both = [
        "nodeRegistration",
        "caCertPath",
        "discovery",
        "controlPlane",
        "skipPhases",
        "patches",
    ];
    c.known_fields(doc, at_, &fields(&both, &["dryRun", "timeouts"], v4));
    node_registration(c, doc, at_, v4);
    if let Some(path) = c.string(doc, "caCertPath", at_) {
        if path.starts_with('/') {
            c.facts.ca_cert_path = Some(path.to_string());
        } else {
            c.problem(format!(
                "{at_}.caCertPath: `{path}` is not an absolute path"
            ));
        }
    }
    match c.map(doc, "discovery", at_) {
        Some(d) => discovery(c, d, v4),
        None => c.problem(format!("{at_}.discovery: required, with bootstrapToken")),
    }
    if let Some(cp) = c.map(doc, "controlPlane", at_) {
        let at_ = format!("{at_}.controlPlane");
        c.known_fields(cp, &at_, &["localAPIEndpoint", "certificateKey"]);
        c.facts.control_plane = true;
        local_api_endpoint(c, cp, &at_);
        certificate_key(c, cp, &at_, true);
    }
    c.strings(doc, "skipPhases", at_);
}

fn discovery(c: &mut Checked, d: &Value, v4: bool) {
    let at_ = "JoinConfiguration.discovery";
    let mut known = vec!["bootstrapToken", "file", "tlsBootstrapToken"];
    if !v4 {
        known.push("timeout");
    }
    c.known_fields(d, at_, &known);
    if at(d, "file").is_some() {
        c.problem(format!("{at_}.file: file discovery is not what kubegrid's flow uses; the stand-in takes bootstrapToken discovery only"));
    }
    let Some(bt) = c.map(d, "bootstrapToken", at_) else {
        c.problem(format!(
            "{at_}.bootstrapToken: required (token, apiServerEndpoint, caCertHashes)"
        ));
        return;
    };
    let at_ = format!("{at_}.bootstrapToken");
    c.known_fields(
        bt,
        &at_,
        &[
            "token",
            "apiServerEndpoint",
            "caCertHashes",
            "unsafeSkipCAVerification",
        ],
    );
    if !bt
        .get("token")
        .and_then(Value::as_str)
        .is_some_and(is_bootstrap_token)
    {
        c.problem(format!(
            "{at_}.token: required, in the form [a-z0-9]{{6}}.[a-z0-9]{{16}}"
        ));
    }
    match c
        .string(bt, "apiServerEndpoint", &at_)
        .map(|ep| (ep, host_port(ep, true)))
    {
        Some((ep, Ok(_))) => c.facts.server = Some(format!("https://{ep}")),
        Some((_, Err(e))) => c.problem(format!("{at_}.apiServerEndpoint: {e}")),
        None => c.problem(format!(
            "{at_}.apiServerEndpoint: required, host:port of the control-plane endpoint"
        )),
    }
    let hashes = c.strings(bt, "caCertHashes", &at_);
    let unsafe_skip = at(bt, "unsafeSkipCAVerification").and_then(Value::as_bool) == Some(true);
    if hashes.is_empty() && !unsafe_skip {
        c.problem(format!("{at_}.caCertHashes: required, at least one sha256:<hex of the CA's public key> (or unsafeSkipCAVerification)"));
    } else if hashes.is_empty() {
        c.warn(format!(
            "{at_}: unsafeSkipCAVerification without caCertHashes trusts any apiserver"
        ));
    }
    for h in hashes.iter().filter(|h| !is_ca_hash(h)) {
        c.problem(format!(
            "{at_}.caCertHashes: `{h}` is not sha256:<64 hex digits>"
        ));
    }
    if let Some(t) = c.string(d, "tlsBootstrapToken", "JoinConfiguration.discovery")
        && !is_bootstrap_token(t)
    {
        c.problem("JoinConfiguration.discovery.tlsBootstrapToken: not in the form [a-z0-9]{6}.[a-z0-9]{16}".into());
    }
}
