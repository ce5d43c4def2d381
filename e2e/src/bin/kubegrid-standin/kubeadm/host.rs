//! What the STAND-IN kubeadm does to the host: the preflight checks on files that real kubeadm
//! makes fatal, the files `init`/`join` leave behind, starting the kubelet, and `reset`.

use std::{
    fs::{self, OpenOptions},
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{
    certs::{self, Plan},
    kubeconfigs,
    manifests::{self, CONTROL_PLANE_PODS},
};
use crate::{
    Ctx, Error, io_error,
    kubeadm_config::{Facts, Flow},
};

const KUBE_DIR: &str = "/etc/kubernetes";
/// How long `init`/`join` wait for the kubelet's health endpoint, as real kubeadm's
/// kubelet-check does (shorter than its 4m: the stand-in kubelet answers at once or never).
const KUBELET_HEALTH_WAIT: Duration = Duration::from_secs(40);
/// The first line of every file the stand-in writes.
pub const HEADER: &str = "# STAND-IN: written by the kubegrid-standin kubeadm for kubegrid e2e tests, not by \
                      upstream kubeadm.\n";

/// Runs the preflight checks real kubeadm makes fatal on files left by an earlier run; an
/// ignored check (`ignorePreflightErrors`, `--ignore-preflight-errors`, `all`) becomes a
/// warning. Returns the warnings.
pub fn preflight(
    ctx: &Ctx,
    flow: Flow,
    facts: &Facts,
    ignore: &[String],
) -> Result<Vec<String>, Error> {
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut file_available = |path: String| {
        if ctx.host_path(&path).exists() {
            failed.push((
                format!("FileAvailable-{}", path.replace('/', "-")),
                format!("{path} already exists"),
            ));
        }
    };
    if facts.control_plane {
        for pod in CONTROL_PLANE_PODS {
            file_available(format!("{KUBE_DIR}/manifests/{pod}.yaml"));
        }
    }
    match flow {
        Flow::Init if facts.local_etcd => file_available(format!("{KUBE_DIR}/manifests/etcd.yaml")),
        Flow::Init => {}
        Flow::Join => {
            file_available(format!("{KUBE_DIR}/kubelet.conf"));
            file_available(format!("{KUBE_DIR}/bootstrap-kubelet.conf"));
            if !facts.control_plane {
                file_available(
                    facts
                        .ca_cert_path
                        .clone()
                        .unwrap_or_else(|| format!("{KUBE_DIR}/pki/ca.crt")),
                );
            }
        }
    }
    if flow == Flow::Init && facts.local_etcd {
        let dir = ctx.host_path("/var/lib/etcd");
        if fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            failed.push((
                "DirAvailable--var-lib-etcd".into(),
                "/var/lib/etcd is not empty".into(),
            ));
        }
    }
    let mut warnings = Vec::new();
    if ctx.systemd() {
        let enabled = Command::new("systemctl")
            .args(["is-enabled", "kubelet"])
            .output();
        if !enabled.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "enabled") {
            warnings.push("[WARNING Service-Kubelet]: kubelet service is not enabled, please run 'systemctl enable kubelet.service'".to_string());
        }
    }
    let ignored = |name: &str| {
        ignore
            .iter()
            .any(|i| i.eq_ignore_ascii_case(name) || i.eq_ignore_ascii_case("all"))
    };
    let mut errors = Vec::new();
    for (name, msg) in failed {
        if ignored(&name) {
            warnings.push(format!("[WARNING {name}]: {msg}"));
        } else {
            errors.push(format!("\t[ERROR {name}]: {msg}"));
        }
    }
    for w in &warnings {
        ctx.say(w);
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(Error::Invalid(format!(
            "[preflight] Some fatal errors occurred:\n{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
            errors.join("\n")
        )))
    }
}

/// Writes a host file with `mode`, creating its directory.
pub fn write(ctx: &Ctx, path: &str, contents: &str, mode: u32) -> Result<(), Error> {
    let full = ctx.host_path(path);
    if let Some(dir) = full.parent() {
        fs::create_dir_all(dir).map_err(io_error("create the directory of", &full))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&full)
        .map_err(io_error("write", &full))?;
    f.write_all(contents.as_bytes())
        .map_err(io_error("write", &full))?;
    fs::set_permissions(&full, fs::Permissions::from_mode(mode)).map_err(io_error("chmod", &full))
}

/// A kubeconfig pointing at `server`, with no credentials: what the stand-in writes where it
/// has no CA to sign with (a control-plane join without the cluster CA on the host).
fn kubeconfig(facts: &Facts, user: &str) -> String {
    let server = facts.server.as_deref().unwrap_or("https://127.0.0.1:6443");
    kubeconfigs::render(
        "kubernetes",
        server,
        None,
        user,
        None,
        "# It holds no credentials: the cluster CA was not on this host to sign them.\n",
    )
}

fn write_manifests(ctx: &Ctx, facts: &Facts, local_etcd: bool) -> Result<(), Error> {
    let version = facts.kubernetes_version.as_ref().unwrap_or(&ctx.version);
    manifests::write(ctx, version, local_etcd)
}

/// The files `kubeadm init` leaves: the certificates (kubeadm's certs phase), the
/// kubeconfigs with credentials, the control-plane manifests, and the stand-in's copy of the
/// ClusterConfiguration. `docs` are the config's documents.
pub fn write_init(ctx: &Ctx, facts: &Facts, docs: &Value) -> Result<(), Error> {
    let plan = Plan::new(facts, docs);
    let ca = certs::certs_phase(ctx, &plan)?;
    for kind in [
        kubeconfigs::ADMIN,
        kubeconfigs::SUPER_ADMIN,
        kubeconfigs::KUBELET,
        kubeconfigs::CONTROLLER_MANAGER,
        kubeconfigs::SCHEDULER,
    ] {
        kubeconfigs::ensure(ctx, &plan, &ca, kind)?;
    }
    write_manifests(ctx, facts, facts.local_etcd)?;
    if let Some(doc) = &facts.cluster_config {
        manifests::save_cluster_config(ctx, doc)?;
    }
    Ok(())
}

/// The files `kubeadm join` leaves. A control-plane join with the cluster CA on the host (as
/// kubegrid stages it) runs the certs phase and writes admin, controller-manager, scheduler
/// and kubelet kubeconfigs with credentials; without the CA (upstream would download the
/// certificates with --certificate-key; the stand-in has no cluster) they hold none. A worker
/// gets kubelet.conf only (see [`kubeconfigs::worker_kubelet_conf`]).
pub fn write_join(ctx: &Ctx, facts: &Facts, docs: &Value) -> Result<(), Error> {
    let plan = Plan::new(facts, docs);
    if facts.control_plane && certs::has_cluster_ca(ctx) {
        let ca = certs::certs_phase(ctx, &plan)?;
        for kind in [
            kubeconfigs::ADMIN,
            kubeconfigs::KUBELET,
            kubeconfigs::CONTROLLER_MANAGER,
            kubeconfigs::SCHEDULER,
        ] {
            kubeconfigs::ensure(ctx, &plan, &ca, kind)?;
        }
        write_manifests(ctx, facts, false)?;
    } else if facts.control_plane {
        ctx.say("[certs] WARNING: /etc/kubernetes/pki/ca.crt and ca.key are not on this host; writing kubeconfigs without credentials");
        write_manifests(ctx, facts, false)?;
        write(
            ctx,
            &format!("{KUBE_DIR}/admin.conf"),
            &kubeconfig(facts, "kubernetes-admin"),
            0o600,
        )?;
        write(
            ctx,
            &format!("{KUBE_DIR}/kubelet.conf"),
            &kubeconfig(facts, "kubelet"),
            0o600,
        )?;
    } else {
        let ca_file = facts
            .ca_cert_path
            .clone()
            .unwrap_or_else(|| certs::pki_path("ca.crt"));
        kubeconfigs::worker_kubelet_conf(ctx, &plan, &ca_file)?;
    }
    ctx.say(
        "[kubelet-start] Writing kubelet configuration to file \"/etc/kubernetes/kubelet.conf\"",
    );
    Ok(())
}

/// kubeadm's kubelet-start phase: the kubelet's config and flags, then `systemctl restart
/// kubelet` and a wait for its health endpoint. Without systemd (exercised outside a lab
/// host) it only writes the files.
pub fn kubelet_start(ctx: &Ctx, facts: &Facts) -> Result<(), Error> {
    // join would download the cluster's KubeletConfiguration; the stand-in has no cluster, so
    // a joining node gets kubeadm's default driver.
    let config = facts.kubelet_config.clone().unwrap_or_else(|| {
        json!({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"})
    });
    let yaml = serde_yaml::to_string(&config).unwrap_or_default();
    write(
        ctx,
        "/var/lib/kubelet/config.yaml",
        &format!("{HEADER}{yaml}"),
        0o644,
    )?;
    let mut args = vec![format!(
        "--container-runtime-endpoint={}",
        facts
            .cri_socket
            .as_deref()
            .unwrap_or("unix:///var/run/containerd/containerd.sock")
    )];
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if let Some(name) = facts.node_name.as_deref().filter(|n| *n != hostname.trim()) {
        args.push(format!("--hostname-override={name}"));
    }
    args.extend(facts.kubelet_args.iter().map(|(n, v)| format!("--{n}={v}")));
    write(
        ctx,
        "/var/lib/kubelet/kubeadm-flags.env",
        &format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", args.join(" ")),
        0o644,
    )?;
    if !ctx.systemd() {
        ctx.say("[kubelet-start] no systemd on this host (or KUBEGRID_STANDIN_ROOT set); not starting the kubelet");
        return Ok(());
    }
    ctx.say("[kubelet-start] Starting the kubelet");
    let out = Command::new("systemctl")
        .args(["restart", "kubelet"])
        .output()
        .map_err(|e| {
            Error::Invalid(format!(
                "[kubelet-start] cannot run systemctl restart kubelet: {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "[kubelet-start] systemctl restart kubelet failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    wait_kubelet_healthy()
}

fn kubelet_healthy() -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, crate::kubelet::HEALTHZ_PORT));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reply = String::new();
    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").is_ok()
        && s.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.0 200")
}

fn wait_kubelet_healthy() -> Result<(), Error> {
    let start = Instant::now();
    while start.elapsed() < KUBELET_HEALTH_WAIT {
        if kubelet_healthy() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Error::Invalid(format!(
        "[kubelet-check] The kubelet is not healthy after {}s: nothing answered http://127.0.0.1:{}/healthz; hint: journalctl -u kubelet",
        KUBELET_HEALTH_WAIT.as_secs(),
        crate::kubelet::HEALTHZ_PORT
    )))
}

fn clear_dir(ctx: &Ctx, dir: &str) -> Result<(), Error> {
    let full = ctx.host_path(dir);
    let Ok(entries) = fs::read_dir(&full) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry.map_err(io_error("list", &full))?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_error("remove", &path))?;
    }
    Ok(())
}

/// `kubeadm reset -f`: stops the kubelet and deletes what init/join wrote, as real kubeadm
/// does (the etcd data directory only when kubeadm managed etcd on this node).
pub fn reset(ctx: &Ctx) -> Result<(), Error> {
    if ctx.systemd() {
        ctx.say("[reset] Stopping the kubelet service");
        let stopped = Command::new("systemctl").args(["stop", "kubelet"]).status();
        if !stopped.is_ok_and(|s| s.success()) {
            ctx.say("[reset] WARNING: the kubelet service could not be stopped");
        }
    }
    if ctx
        .host_path(&format!("{KUBE_DIR}/manifests/etcd.yaml"))
        .exists()
    {
        ctx.say("[reset] Deleting contents of the stacked etcd data directory: /var/lib/etcd");
        clear_dir(ctx, "/var/lib/etcd")?;
    }
    for dir in [
        format!("{KUBE_DIR}/manifests"),
        "/var/lib/kubelet".into(),
        format!("{KUBE_DIR}/pki"),
    ] {
        clear_dir(ctx, &dir)?;
    }
    ctx.say("[reset] Deleted contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]");
    let copy = ctx.host_path(manifests::CLUSTER_COPY);
    match fs::remove_file(&copy) {
        Ok(()) => ctx.say(&format!(
            "[reset] Deleted the stand-in's ClusterConfiguration copy {}",
            manifests::CLUSTER_COPY
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("remove", &copy)(e)),
    }
    if let Some(dir) = copy.parent() {
        // Only when empty: the directory is the stand-in's own.
        let _ = fs::remove_dir(dir);
    }
    for file in [
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        let path = ctx.host_path(&format!("{KUBE_DIR}/{file}"));
        match fs::remove_file(&path) {
            Ok(()) => ctx.say(&format!("[reset] Deleted {KUBE_DIR}/{file}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path)(e)),
        }
    }
    Ok(())
}

/// `bytes` random bytes as lower-case hex, for tokens and certificate keys kubeadm generates.
pub fn random_hex(bytes: usize) -> Result<String, Error> {
    let path = std::path::Path::new("/dev/urandom");
    let mut buf = vec![0u8; bytes];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io_error("read", path))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
