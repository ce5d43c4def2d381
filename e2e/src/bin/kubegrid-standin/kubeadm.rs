//! The STAND-IN kubeadm: `init --config F [--upload-certs]`, `join --config F`,
//! `token create [TOKEN] [--ttl D]`, `init phase upload-certs --upload-certs
//! [--certificate-key K]`, `reset -f`, `version [-o short|json]`, `upgrade plan|apply|node`
//! and `certs check-expiration|renew` (see their modules).

mod certs;
mod certs_cmd;
mod etcd_version;
mod flags;
mod host;
mod kubeconfigs;
mod manifests;
mod upgrade;

use std::{fs, path::Path};

use serde_json::{Value, json};

use self::flags::Flags;
pub use self::host::write as write_file;
use crate::{
    Ctx, Error,
    checks::{is_bootstrap_token, is_duration, is_hex},
    io_error,
    kubeadm_config::{self, Checked, Flow},
    record::Record,
    yaml,
};

/// Runs one kubeadm command line (without argv[0]).
pub fn run(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    // klog verbosity is accepted everywhere and means nothing here.
    let args: Vec<String> = args
        .iter()
        .filter(|a| !(a.starts_with("-v=") || a.starts_with("--v=")))
        .cloned()
        .collect();
    let word = |i: usize| args.get(i).map(String::as_str);
    match (word(0), word(1)) {
        (Some("init"), Some("phase")) => upload_certs(ctx, &args[2..], rec),
        (Some("init"), _) => init_or_join(ctx, Flow::Init, &args[1..], rec),
        (Some("join"), _) => init_or_join(ctx, Flow::Join, &args[1..], rec),
        (Some("token"), Some("create")) => token_create(ctx, &args[2..], rec),
        (Some("reset"), _) => reset(ctx, &args[1..]),
        (Some("upgrade"), _) => upgrade::run(ctx, &args[1..], rec),
        (Some("certs"), _) => certs_cmd::run(ctx, &args[1..]),
        (Some("version"), _) => version(ctx, &args[1..]),
        (Some("--version"), None) => version(ctx, &[]),
        _ => Err(Error::Usage(format!(
            "unsupported command line {args:?}; the stand-in kubeadm takes: init --config F [--upload-certs], \
             join --config F, token create [TOKEN] [--ttl D], init phase upload-certs --upload-certs \
             [--certificate-key K], reset -f, version [-o short|json], upgrade plan [vX.Y.Z], \
             upgrade apply vX.Y.Z -y, upgrade node, certs check-expiration, certs renew NAME|all"
        ))),
    }
}

/// Reads, records and validates a `--config` file; warnings are printed and recorded.
fn load_config(ctx: &Ctx, flow: Flow, path: &str, rec: &mut Record) -> Result<Checked, Error> {
    let text = fs::read_to_string(path).map_err(io_error("read", Path::new(path)))?;
    let docs = yaml::parse_docs(&text)
        .map_err(|e| Error::Invalid(format!("{path} is not valid YAML: {e}")))?;
    rec.config = Value::Array(docs.clone());
    let checked = kubeadm_config::check(flow, &docs, &ctx.version, &|p| ctx.host_path(p).exists());
    for w in &checked.warnings {
        ctx.say(&format!("WARNING: {w}"));
    }
    rec.warnings.extend(checked.warnings.iter().cloned());
    if checked.problems.is_empty() {
        Ok(checked)
    } else {
        Err(Error::Invalid(format!(
            "invalid kubeadm configuration {path} ({} problems):\n  - {}",
            checked.problems.len(),
            checked.problems.join("\n  - ")
        )))
    }
}

fn init_or_join(ctx: &Ctx, flow: Flow, args: &[String], rec: &mut Record) -> Result<(), Error> {
    let verb = if flow == Flow::Init { "init" } else { "join" };
    let booleans: &[&str] = match flow {
        Flow::Init => &[
            "upload-certs",
            "dry-run",
            "skip-token-print",
            "skip-certificate-key-print",
        ],
        Flow::Join => &["dry-run"],
    };
    let flags = Flags::parse(
        args,
        &["config", "ignore-preflight-errors", "skip-phases"],
        booleans,
    )?;
    let config = flags.value("config").ok_or_else(|| {
        Error::Usage(format!(
            "the stand-in `kubeadm {verb}` takes its settings from --config FILE only, as kubegrid runs it"
        ))
    })?;
    if !flags.positional.is_empty() {
        return Err(Error::Usage(format!(
            "can not mix '--config' with arguments {:?}",
            flags.positional
        )));
    }
    let checked = load_config(ctx, flow, config, rec)?;
    let mut ignore = checked.facts.ignore_preflight.clone();
    ignore.extend(flags.list("ignore-preflight-errors"));
    let preflight_warnings = host::preflight(ctx, flow, &checked.facts, &ignore)?;
    rec.warnings.extend(preflight_warnings);
    if flags.has("dry-run") {
        ctx.say(&format!(
            "[dry-run] kubeadm {verb} would succeed; nothing written"
        ));
        return Ok(());
    }
    match flow {
        Flow::Init => {
            host::write_init(ctx, &checked.facts, &rec.config)?;
            host::kubelet_start(ctx, &checked.facts)?;
            if flags.has("upload-certs") {
                let key = match &checked.facts.certificate_key {
                    Some(k) => k.clone(),
                    None => host::random_hex(32)?,
                };
                ctx.say("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" (STAND-IN: stored nowhere)");
                println!("[upload-certs] Using certificate key:\n{key}");
            }
            ctx.say("Your Kubernetes control-plane has initialized successfully! (STAND-IN: no control plane runs)");
        }
        Flow::Join => {
            host::write_join(ctx, &checked.facts, &rec.config)?;
            host::kubelet_start(ctx, &checked.facts)?;
            ctx.say(&format!(
                "This node has joined the cluster{} (STAND-IN: nothing was contacted)",
                if checked.facts.control_plane {
                    " as a control-plane node"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(())
}

/// The admin kubeconfig a command talks to the apiserver with; it must exist, as kubeadm
/// fails to load a missing one.
fn require_kubeconfig(ctx: &Ctx, flags: &Flags) -> Result<(), Error> {
    let path = flags
        .value("kubeconfig")
        .unwrap_or("/etc/kubernetes/admin.conf");
    if ctx.host_path(path).is_file() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "failed to load admin kubeconfig: open {path}: no such file or directory \
             (kubeadm init has not run on this host)"
        )))
    }
}

fn token_create(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    let flags = Flags::parse(
        args,
        &[
            "ttl",
            "description",
            "usages",
            "groups",
            "kubeconfig",
            "config",
        ],
        &["print-join-command"],
    )?;
    // As kubeadm: with --config and no token argument, the token is the config's first
    // bootstrap token, so it never has to appear on a command line.
    let from_config = match flags.value("config") {
        Some(config) => {
            load_config(ctx, Flow::Init, config, rec)?;
            rec.config
                .as_array()
                .and_then(|docs| docs.iter().find(|d| d["kind"] == "InitConfiguration"))
                .and_then(|d| d["bootstrapTokens"][0]["token"].as_str())
                .map(String::from)
        }
        None => None,
    };
    if flags.has("print-join-command") {
        return Err(Error::Usage(
            "--print-join-command: the stand-in has no CA to compute the hash from; kubegrid's engine builds join configs itself".into(),
        ));
    }
    let token = match flags.positional.as_slice() {
        [] if from_config.is_some() => from_config.unwrap_or_default(),
        [] => format!("{}.{}", &host::random_hex(3)?, &host::random_hex(8)?),
        [t] if is_bootstrap_token(t) => t.clone(),
        [_] => {
            return Err(Error::Invalid(
                "the token is not in the form [a-z0-9]{6}.[a-z0-9]{16}".into(),
            ));
        }
        more => {
            return Err(Error::Usage(format!(
                "token create takes at most one token, found {}",
                more.len()
            )));
        }
    };
    if let Some(ttl) = flags.value("ttl")
        && !is_duration(ttl)
    {
        return Err(Error::Invalid(format!(
            "--ttl `{ttl}` is not a duration like 24h0m0s"
        )));
    }
    require_kubeconfig(ctx, &flags)?;
    ctx.say("created a bootstrap token (STAND-IN: stored nowhere)");
    println!("{token}");
    Ok(())
}

fn upload_certs(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    if args.first().map(String::as_str) != Some("upload-certs") {
        return Err(Error::Usage(format!(
            "the stand-in supports only `kubeadm init phase upload-certs`, not {args:?}"
        )));
    }
    let flags = Flags::parse(
        &args[1..],
        &["certificate-key", "config", "kubeconfig"],
        &["upload-certs", "skip-certificate-key-print"],
    )?;
    if !flags.has("upload-certs") {
        ctx.say("[upload-certs] Skipping phase. Please see --upload-certs");
        return Ok(());
    }
    // As kubeadm: without --certificate-key, the config's certificateKey is used.
    let configured = match flags.value("config") {
        Some(config) => {
            load_config(ctx, Flow::Init, config, rec)?;
            rec.config
                .as_array()
                .and_then(|docs| docs.iter().find(|d| d["kind"] == "InitConfiguration"))
                .and_then(|d| d["certificateKey"].as_str())
                .map(String::from)
        }
        None => None,
    };
    let key = match flags.value("certificate-key").or(configured.as_deref()) {
        Some(k) if is_hex(k, 64) => k.to_string(),
        Some(k) => {
            return Err(Error::Invalid(format!(
                "--certificate-key: expected 64 hex digits (a 32-byte AES key), found {} characters",
                k.len()
            )));
        }
        None => host::random_hex(32)?,
    };
    require_kubeconfig(ctx, &flags)?;
    ctx.say("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" (STAND-IN: stored nowhere)");
    if !flags.has("skip-certificate-key-print") {
        println!("[upload-certs] Using certificate key:\n{key}");
    }
    Ok(())
}

fn reset(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let flags = Flags::parse(
        args,
        &[
            "cri-socket",
            "ignore-preflight-errors",
            "kubeconfig",
            "skip-phases",
        ],
        &["f", "force", "dry-run", "cleanup-tmp-dir"],
    )?;
    if !(flags.has("f") || flags.has("force")) {
        return Err(Error::Usage(
            "kubeadm reset asks for confirmation without -f, and the stand-in never prompts; pass -f".into(),
        ));
    }
    if flags.has("dry-run") {
        ctx.say(
            "[dry-run] kubeadm reset would remove the kubeconfigs, manifests and kubelet state",
        );
        return Ok(());
    }
    host::reset(ctx)
}

fn version(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    let flags = Flags::parse(args, &["o", "output"], &[])?;
    let v = &ctx.version;
    match flags.value("o").or(flags.value("output")) {
        Some("short") => {
            ctx.say(&ctx.tool.disclaimer());
            println!("{v}");
        }
        Some("json") => {
            let info = json!({"clientVersion": {
                "major": v.major.to_string(), "minor": v.minor.to_string(), "gitVersion": v.to_string(),
                "standIn": ctx.tool.disclaimer(),
            }});
            println!("{info:#}");
        }
        None => println!("kubeadm version: {v} ({})", ctx.tool.disclaimer()),
        Some(other) => {
            return Err(Error::Usage(format!(
                "-o {other}: the stand-in prints short or json"
            )));
        }
    }
    Ok(())
}
