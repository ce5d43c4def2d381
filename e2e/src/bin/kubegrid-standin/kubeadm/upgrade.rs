//! The STAND-IN `kubeadm upgrade plan [vX.Y.Z]`, `upgrade apply vX.Y.Z -y
//! [--certificate-renewal=BOOL] [--etcd-upgrade=BOOL]` and `upgrade node
//! [--certificate-renewal=BOOL] [--etcd-upgrade=BOOL]`.
//!
//! They refuse what real kubeadm refuses (its version policy,
//! cmd/kubeadm/app/phases/upgrade/policy.go: no downgrade, one minor at a time, a target no
//! newer than kubeadm itself, kubelets at most three minors behind and never ahead; and the
//! `ExternalEtcdVersion` preflight check), with the node's facts read from this host only: the
//! control plane's version from the apiserver manifest, the kubelet's from `kubelet
//! --version`, the external etcd from the ClusterConfiguration copy `init` kept. On success
//! they rewrite the static pod manifests with the new version; nothing else runs.

use std::{fs, process::Command};

use serde_json::{Value, json};

use super::{
    etcd_version::{self, External},
    flags::Flags,
    manifests::{self, CONTROL_PLANE_PODS},
    require_kubeconfig,
};
use crate::{Ctx, Error, checks::KubeVersion, record::Record};

/// How many minors a kubelet may lag the control plane (kubeadm's
/// `MaximumAllowedMinorVersionKubeletSkew`).
pub const KUBELET_SKEW: u32 = 3;

/// Runs `kubeadm upgrade ARGS` (ARGS after `upgrade`).
pub fn run(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    match args.first().map(String::as_str) {
        Some("plan") => plan(ctx, &args[1..], rec),
        Some("apply") => apply(ctx, &args[1..], rec),
        Some("node") => node(ctx, &args[1..], rec),
        _ => Err(Error::Usage(format!(
            "unsupported command line upgrade {args:?}; the stand-in takes: upgrade plan [vX.Y.Z], \
             upgrade apply vX.Y.Z -y [--certificate-renewal=BOOL] [--etcd-upgrade=BOOL], \
             upgrade node [--certificate-renewal=BOOL] [--etcd-upgrade=BOOL]"
        ))),
    }
}

fn key(v: &KubeVersion) -> (u32, u32, u32) {
    (v.major, v.minor, v.patch)
}

/// Whether `a` is more than `n` minors newer than `b` (a different major counts as more).
fn minors_ahead(a: &KubeVersion, b: &KubeVersion, n: u32) -> bool {
    a.major != b.major || a.minor > b.minor + n
}

/// Why `kubeadm upgrade apply target` (kubeadm `own`) refuses a control plane at `current`:
/// kubeadm's version policy, plus the stand-in's rule that it upgrades only to its own version.
pub fn apply_problems(
    own: &KubeVersion,
    current: &KubeVersion,
    target: &KubeVersion,
) -> Vec<String> {
    let mut problems = Vec::new();
    if key(target) > key(own) {
        problems.push(format!(
            "Specified version to upgrade to \"{target}\" is higher than the kubeadm version \"{own}\". Upgrade kubeadm first using the tool you used to install kubeadm"
        ));
    } else if key(target) < key(own) {
        problems.push(format!(
            "Specified version to upgrade to \"{target}\" is lower than the kubeadm version \"{own}\"; the stand-in kubeadm {own} upgrades only to its own version (use the kubeadm of {target})"
        ));
    }
    if key(target) < key(current) {
        problems.push(format!(
            "Specified version to upgrade to \"{target}\" is lower than the cluster version \"{current}\". Downgrades are not supported yet"
        ));
    } else if minors_ahead(target, current, 1) {
        problems.push(format!(
            "Specified version to upgrade to \"{target}\" is too high; kubeadm can upgrade only 1 minor version at a time (the cluster is at \"{current}\"; upgrade to v{}.{} first)",
            current.major,
            current.minor + 1
        ));
    }
    problems
}

/// Why a kubelet at `kubelet` cannot run under a control plane at `control_plane`: newer than
/// it, or more than [`KUBELET_SKEW`] minors older.
pub fn kubelet_problem(kubelet: &KubeVersion, control_plane: &KubeVersion) -> Option<String> {
    if key(kubelet) > key(control_plane) {
        Some(format!(
            "Kubelet version \"{kubelet}\" is newer than the control plane version \"{control_plane}\"; the kubelet must never be newer than the API server"
        ))
    } else if minors_ahead(control_plane, kubelet, KUBELET_SKEW) {
        Some(format!(
            "Kubelet version \"{kubelet}\" is lower than kubeadm can support with control plane \"{control_plane}\" (at most {KUBELET_SKEW} minors older). Please upgrade kubelet"
        ))
    } else {
        None
    }
}

/// The local kubelet's version, from `/usr/bin/kubelet --version` (`Kubernetes vX.Y.Z`).
pub fn local_kubelet(ctx: &Ctx) -> Result<KubeVersion, Error> {
    let path = ctx.host_path("/usr/bin/kubelet");
    let out = Command::new(&path).arg("--version").output().map_err(|e| {
        Error::Invalid(format!(
            "cannot run /usr/bin/kubelet --version: {e}; hint: install the kubelet first"
        ))
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut words = stdout.split_whitespace();
    match (
        out.status.success(),
        words.next(),
        words.next().and_then(KubeVersion::parse),
    ) {
        (true, Some("Kubernetes"), Some(v)) => Ok(v),
        _ => Err(Error::Invalid(format!(
            "/usr/bin/kubelet --version printed {:?}, expected `Kubernetes vX.Y.Z`",
            stdout.lines().next().unwrap_or_default()
        ))),
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn fatal(stage: &str, problems: &[String]) -> Error {
    Error::Invalid(format!(
        "[{stage}] FATAL: {}",
        problems.join(&format!("\n[{stage}] FATAL: "))
    ))
}

/// The control plane's version, or why this host has none.
fn require_control_plane(ctx: &Ctx, command: &str) -> Result<KubeVersion, Error> {
    manifests::control_plane_version(ctx)?.ok_or_else(|| {
        Error::Invalid(format!(
            "kubeadm upgrade {command}: this host has no control plane ({} is missing); run it on a control-plane Node (workers take kubeadm upgrade node)",
            manifests::path("kube-apiserver")
        ))
    })
}

fn plan(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    let flags = Flags::parse(
        args,
        &["kubeconfig", "config", "ignore-preflight-errors"],
        &[
            "allow-experimental-upgrades",
            "allow-release-candidate-upgrades",
            "print-config",
        ],
    )?;
    let given = match flags.positional.as_slice() {
        [] => None,
        [v] => Some(KubeVersion::parse(v).ok_or_else(|| {
            Error::Invalid(format!("version `{v}` is not a version like v1.32.4"))
        })?),
        more => {
            return Err(Error::Usage(format!(
                "upgrade plan takes at most one version, found {}",
                more.len()
            )));
        }
    };
    require_kubeconfig(ctx, &flags)?;
    let current = require_control_plane(ctx, "plan")?;
    let target = given.clone().unwrap_or_else(|| ctx.version.clone());
    rec.config = json!({"upgrade": {"command": "plan", "current": current.to_string(), "target": target.to_string()}});
    if given.is_some() {
        let problems = apply_problems(&ctx.version, &current, &target);
        if !problems.is_empty() {
            return Err(fatal("upgrade/versions", &problems));
        }
    }
    ctx.say(&ctx.tool.disclaimer());
    println!("[upgrade/versions] Cluster version: {current}");
    println!("[upgrade/versions] kubeadm version: {}", ctx.version);
    if key(&target) <= key(&current) {
        println!("Awesome, you're up-to-date! Enjoy!");
        return Ok(());
    }
    let node = hostname();
    println!("\nUpgrade to the latest stable version:\n");
    println!("COMPONENT                 NODE      CURRENT    TARGET");
    for pod in CONTROL_PLANE_PODS {
        println!("{pod:<25} {node:<9} {current:<10} {target}");
    }
    println!(
        "\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {target}\n"
    );
    Ok(())
}

/// The external etcd of this cluster (`None`: stacked) from init's ClusterConfiguration copy.
fn external_etcd(ctx: &Ctx) -> Result<Option<External>, Error> {
    match manifests::cluster_config(ctx)? {
        Some(doc) => Ok(External::from_cluster(&doc)),
        None if manifests::has_stacked_etcd(ctx) => Ok(None),
        None => Err(Error::Invalid(format!(
            "this host keeps no ClusterConfiguration ({} is missing, and no stacked etcd manifest): the stand-in keeps the one kubeadm init was given on the init Node, where real kubeadm reads the kubeadm-config ConfigMap; run kubeadm upgrade apply on the Node that ran kubeadm init",
            manifests::CLUSTER_COPY
        ))),
    }
}

/// Sets `kubernetesVersion` in the ClusterConfiguration copy, as kubeadm updates the
/// kubeadm-config ConfigMap.
fn update_cluster_version(ctx: &Ctx, version: &KubeVersion) -> Result<(), Error> {
    if let Some(mut doc) = manifests::cluster_config(ctx)? {
        doc["kubernetesVersion"] = Value::String(version.to_string());
        manifests::save_cluster_config(ctx, &doc)?;
    }
    Ok(())
}

fn apply(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    let flags = Flags::parse(
        args,
        &["kubeconfig", "ignore-preflight-errors"],
        &["y", "yes", "certificate-renewal", "etcd-upgrade", "dry-run"],
    )?;
    let target = match flags.positional.as_slice() {
        [v] => KubeVersion::parse(v).ok_or_else(|| {
            Error::Invalid(format!("version `{v}` is not a version like v1.32.4"))
        })?,
        [] => {
            return Err(Error::Usage(
                "missing version argument: kubeadm upgrade apply vX.Y.Z".into(),
            ));
        }
        more => {
            return Err(Error::Usage(format!(
                "upgrade apply takes one version, found {}",
                more.len()
            )));
        }
    };
    require_kubeconfig(ctx, &flags)?;
    let current = require_control_plane(ctx, "apply")?;
    let kubelet = local_kubelet(ctx)?;
    let mut problems = apply_problems(&ctx.version, &current, &target);
    problems.extend(kubelet_problem(&kubelet, &target));
    if !problems.is_empty() {
        return Err(fatal("upgrade/version", &problems));
    }
    if !(flags.has("y") || flags.has("yes")) {
        return Err(Error::Usage(
            "kubeadm upgrade apply asks for confirmation without -y, and the stand-in never prompts; pass -y".into(),
        ));
    }
    let external = external_etcd(ctx)?;
    let mut etcd_found = Vec::new();
    if let Some(ext) = &external {
        let (found, problems) = etcd_version::check(ctx, ext, &target);
        etcd_found = found;
        let ignored = flags.list("ignore-preflight-errors").iter().any(|i| {
            i.eq_ignore_ascii_case("ExternalEtcdVersion") || i.eq_ignore_ascii_case("all")
        });
        if ignored {
            for p in &problems {
                let w = format!("[WARNING ExternalEtcdVersion]: {p}");
                ctx.say(&w);
                rec.warnings.push(w);
            }
        } else if !problems.is_empty() {
            return Err(Error::Invalid(format!(
                "[preflight] Some fatal errors occurred:\n\t[ERROR ExternalEtcdVersion]: {}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
                problems.join("\n\t[ERROR ExternalEtcdVersion]: ")
            )));
        }
    }
    let stacked = external.is_none() && manifests::has_stacked_etcd(ctx);
    let etcd_upgrade = flags.value("etcd-upgrade") != Some("false");
    let renew = flags.value("certificate-renewal") != Some("false");
    rec.config = json!({"upgrade": {
        "command": "apply", "role": "control-plane", "from": current.to_string(), "to": target.to_string(),
        "kubelet": kubelet.to_string(),
        "etcd": if external.is_some() { "external" } else { "stacked" },
        "externalEtcdVersions": etcd_found.iter().map(|(e, v)| json!({"endpoint": e, "version": v})).collect::<Vec<_>>(),
        "etcdUpgrade": etcd_upgrade, "certificateRenewal": renew,
    }});
    if flags.has("dry-run") {
        ctx.say(&format!(
            "[dry-run] kubeadm upgrade apply {target} would succeed; nothing written"
        ));
        return Ok(());
    }
    manifests::write(ctx, &target, stacked && etcd_upgrade)?;
    update_cluster_version(ctx, &target)?;
    if renew {
        ctx.say("[upgrade/staticpods] Renewing certificates, as kubeadm's certs renew all");
        super::certs_cmd::renew(ctx, "all")?;
    }
    println!("[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{target}\". Enjoy!");
    ctx.say("STAND-IN: only the static pod manifests were rewritten; no control plane runs");
    Ok(())
}

fn node(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    let flags = Flags::parse(
        args,
        &["kubeconfig", "ignore-preflight-errors", "skip-phases"],
        &["certificate-renewal", "etcd-upgrade", "dry-run"],
    )?;
    if !flags.positional.is_empty() {
        return Err(Error::Usage(format!(
            "upgrade node takes no arguments, found {:?}; the version is kubeadm's own",
            flags.positional
        )));
    }
    let own = &ctx.version;
    let renew = flags.value("certificate-renewal") != Some("false");
    if let Some(current) = manifests::control_plane_version(ctx)? {
        if key(own) < key(&current) {
            return Err(fatal(
                "upgrade/version",
                &[format!(
                    "kubeadm version \"{own}\" is lower than this Node's control plane version \"{current}\". Downgrades are not supported yet"
                )],
            ));
        }
        if minors_ahead(own, &current, 1) {
            return Err(fatal(
                "upgrade/version",
                &[format!(
                    "kubeadm version \"{own}\" is too high for this Node's control plane \"{current}\"; kubeadm can upgrade only 1 minor version at a time"
                )],
            ));
        }
        let etcd_upgrade = flags.value("etcd-upgrade") != Some("false");
        let stacked = manifests::has_stacked_etcd(ctx);
        rec.config = json!({"upgrade": {
            "command": "node", "role": "control-plane", "from": current.to_string(), "to": own.to_string(),
            "etcdUpgrade": etcd_upgrade, "certificateRenewal": renew,
        }});
        if flags.has("dry-run") {
            ctx.say("[dry-run] kubeadm upgrade node would succeed; nothing written");
            return Ok(());
        }
        manifests::write(ctx, own, stacked && etcd_upgrade)?;
        update_cluster_version(ctx, own)?;
        if renew {
            ctx.say("[upgrade/staticpods] Renewing certificates, as kubeadm's certs renew all");
            super::certs_cmd::renew(ctx, "all")?;
        }
    } else if ctx.host_path("/etc/kubernetes/kubelet.conf").is_file() {
        let kubelet = local_kubelet(ctx)?;
        if key(own) < key(&kubelet) {
            return Err(fatal(
                "upgrade/version",
                &[format!(
                    "kubeadm version \"{own}\" is older than this Node's kubelet \"{kubelet}\"; use the kubeadm of {kubelet} or newer"
                )],
            ));
        }
        if minors_ahead(own, &kubelet, KUBELET_SKEW) {
            return Err(fatal(
                "upgrade/version",
                &[format!(
                    "kubeadm version \"{own}\" is more than {KUBELET_SKEW} minors newer than this Node's kubelet \"{kubelet}\"; upgrade the kubelet in steps"
                )],
            ));
        }
        rec.config = json!({"upgrade": {
            "command": "node", "role": "worker", "kubelet": kubelet.to_string(), "to": own.to_string(),
        }});
        if flags.has("dry-run") {
            ctx.say("[dry-run] kubeadm upgrade node would succeed; nothing written");
            return Ok(());
        }
        ctx.say("[upgrade] Skipping phase. Not a control plane node. (STAND-IN: no kubelet configuration downloaded)");
    } else {
        return Err(Error::Invalid(
            "kubeadm upgrade node: this host has neither control-plane manifests nor /etc/kubernetes/kubelet.conf; kubeadm init or join has not run here".into(),
        ));
    }
    println!("[upgrade] The configuration for this node was successfully upgraded!");
    Ok(())
}

#[cfg(test)]
mod tests;
