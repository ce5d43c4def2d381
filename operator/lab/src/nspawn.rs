//! Booting, watching, stopping and killing a host's systemd-nspawn process.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

use crate::{Error, Result, exec};

/// How often to look again at a process or socket that is not there yet.
const POLL: Duration = Duration::from_millis(25);

/// Everything needed to boot one host.
#[derive(Debug)]
pub struct BootSpec<'a> {
    /// Machine name and hostname.
    pub name: &'a str,
    /// The host's root filesystem.
    pub rootfs: &'a Path,
    /// The network namespace to join.
    pub netns: &'a str,
    /// Per-host cgroup directories to start in.
    pub cgroups: &'a [PathBuf],
    /// In legacy cgroup mode, the assembled tree to bind as /sys/fs/cgroup.
    pub cgroup_tree: Option<&'a Path>,
    /// Where console output goes.
    pub console_log: &'a Path,
}

/// A running nspawn process: its pid and start time, which together survive pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot.
    pub start: u64,
}

/// The supervisor: joins the host's cgroups, then runs systemd-nspawn and runs it again
/// whenever it exits with status 133, as a machine's firmware boots again after a reboot.
/// 133 is how nspawn `--keep-unit` reports that the container asked for a reboot
/// (`systemctl reboot`); systemd-nspawn@.service restarts on it (`RestartForceExitStatus=133`). Any other exit (a poweroff, a kill, a failure) ends the supervisor with nspawn's
/// status, so a host that powered off stays off. SIGTERM (`lab stop`) is passed on to nspawn,
/// which turns it into an orderly poweroff, and is never followed by a restart.
/// `wait` returns early when a trapped signal arrives, so it is repeated while the child is
/// there (a zombie still counts, and the repeated `wait` then reaps it with its real status).
const SUPERVISOR: &str = r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 1; shift; done; shift
stopping=
child=
trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child"' TERM INT HUP
while :; do
  "$@" &
  child=$!
  wait "$child"; rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
  child=
  if [ "$rc" != 133 ] || [ -n "$stopping" ]; then exit "$rc"; fi
  echo "kubegrid-lab: the host asked for a reboot; booting it again" >&2
done"#;

/// Starts a host's supervisor (see [`SUPERVISOR`]) in the background and returns at once.
///
/// The supervisor moves itself into the host's cgroups before it starts nspawn, so the
/// container is born inside them; moving nspawn after it forked would leave the container
/// behind. `setsid` detaches it from the terminal and session of `lab up` (the spawned
/// process is no process group leader, so `setsid` execs in place and the pid is the
/// supervisor's).
pub fn spawn(spec: &BootSpec) -> Result<Proc> {
    let console = File::create(spec.console_log)
        .map_err(Error::io("create console log", spec.console_log))?;
    let console2 = console
        .try_clone()
        .map_err(Error::io("open console log", spec.console_log))?;
    let mut cmd = Command::new("setsid");
    cmd.args(["sh", "-c", SUPERVISOR, "kubegrid-lab-boot"]);
    cmd.args(spec.cgroups.iter().map(|d| d.join("cgroup.procs")));
    cmd.args([
        "--",
        "systemd-nspawn",
        "--quiet",
        "--boot",
        "--register=no",
        "--keep-unit",
    ])
    .arg(format!("--directory={}", spec.rootfs.display()))
    .arg(format!("--machine={}", spec.name))
    .arg(format!(
        "--network-namespace-path=/run/netns/{}",
        spec.netns
    ))
    // Installers need everything a real root has: containerd, runc, sysctl, mounts.
    .args(["--capability=all", "--system-call-filter=@keyring bpf"])
    .args([
        "--console=read-only",
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
    ])
    .env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "1")
    .stdin(Stdio::null())
    .stdout(console)
    .stderr(console2);
    if let Some(tree) = spec.cgroup_tree {
        cmd.arg(format!("--bind={}:/sys/fs/cgroup", tree.display()))
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "0");
    }
    let child = cmd.spawn().map_err(|e| Error::RunCommand {
        command: exec::command_line(&cmd),
        detail: e.to_string(),
    })?;
    let pid = child.id();
    let start = stat(pid).map(|s| s.start).unwrap_or_default();
    Ok(Proc { pid, start })
}

struct Stat {
    ppid: u32,
    state: char,
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Whether the process still runs (a zombie or a reused pid does not count).
pub fn alive(p: Proc) -> bool {
    stat(p.pid).is_some_and(|s| s.start == p.start && s.state != 'Z' && s.state != 'X')
}

/// The systemd-nspawn process of a host: the supervisor's child, or the recorded process
/// itself for a host booted before the lab had a supervisor. `None` between a reboot's exit
/// and the next start.
pub fn nspawn_pid(p: Proc) -> Option<u32> {
    if comm(p.pid).as_deref() == Some("systemd-nspawn") {
        return Some(p.pid);
    }
    children(p.pid)
        .into_iter()
        .find(|&c| comm(c).as_deref() == Some("systemd-nspawn"))
}

/// The container's init (pid 1 inside), the one child of nspawn.
pub fn init_pid(p: Proc) -> Option<u32> {
    children(nspawn_pid(p)?).into_iter().next()
}

/// A process's command name.
fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_string())
}

/// Live children of a process.
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == parent && s.state != 'Z'))
        .collect()
}

/// Runs a command inside the host's namespaces, bounded by `limit`; returns whether it
/// succeeded, and its stdout and stderr.
pub fn nsenter(init: u32, limit: Duration, args: &[&str]) -> Result<(bool, String, String)> {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "--kill-after=1",
        &format!("{:.1}", limit.as_secs_f64().max(0.5)),
    ])
    .args(["nsenter", "-t", &init.to_string(), "-a", "--"])
    .args(args)
    .stdin(Stdio::null());
    let out = cmd.output().map_err(|e| Error::RunCommand {
        command: exec::command_line(&cmd),
        detail: e.to_string(),
    })?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    Ok((out.status.success(), text(&out.stdout), text(&out.stderr)))
}

/// Why a host is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// The nspawn process ended: the host died while booting.
    Exited,
    /// The deadline passed (or checking failed); the last thing seen.
    Late(String),
}

/// How a host finished booting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// `running` or `degraded`.
    pub system_state: String,
    /// Failed units when degraded.
    pub failed_units: Vec<String>,
}

/// Waits until the host's systemd reports running or degraded and its sshd answers on
/// `address:22` (or, for a host whose link is cut, until ssh.service is active).
///
/// On failure returns the last thing seen, for the "which host is late and why" report.
pub fn wait_ready(
    p: Proc,
    address: Ipv4Addr,
    link_cut: bool,
    deadline: Instant,
) -> Result<Ready, NotReady> {
    let late = |e: Error| NotReady::Late(e.to_string());
    let mut why = "systemd-nspawn started; container init not running yet".to_string();
    let mut booted: Option<Ready> = None;
    loop {
        if !alive(p) {
            return Err(NotReady::Exited);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NotReady::Late(why));
        }
        let Some(init) = init_pid(p) else {
            thread::sleep(POLL);
            continue;
        };
        let Some(ready) = &booted else {
            // `--wait` blocks until boot finishes, so this waits on the condition itself.
            let (_, state, err) =
                nsenter(init, left, &["systemctl", "is-system-running", "--wait"]).map_err(late)?;
            match state.as_str() {
                "running" | "degraded" => {
                    let failed = if state == "degraded" {
                        let (_, out, _) = nsenter(
                            init,
                            left,
                            &["systemctl", "--failed", "--plain", "--no-legend"],
                        )
                        .map_err(late)?;
                        out.lines()
                            .filter_map(|l| l.split_whitespace().next())
                            .map(String::from)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    booted = Some(Ready {
                        system_state: state,
                        failed_units: failed,
                    });
                }
                "" => why = format!("systemd not answering yet: {}", exec::tail(&err, 1)),
                other => why = format!("systemd reports `{other}`"),
            }
            if booted.is_none() {
                thread::sleep(POLL);
            }
            continue;
        };
        let ssh = if link_cut {
            match nsenter(init, left, &["systemctl", "is-active", "ssh.service"]) {
                Ok((true, _, _)) => Ok(()),
                Ok((false, out, _)) => Err(format!("ssh.service is {out}")),
                Err(e) => Err(e.to_string()),
            }
        } else {
            ssh_banner(address, left)
        };
        match ssh {
            Ok(()) => return Ok(ready.clone()),
            Err(e) => {
                why = format!(
                    "systemd is {}, but sshd does not answer on {address}:22: {e}",
                    ready.system_state
                );
                thread::sleep(POLL);
            }
        }
    }
}

/// Connects to sshd and reads its identification line ("SSH-2.0-…").
fn ssh_banner(address: Ipv4Addr, limit: Duration) -> Result<(), String> {
    let limit = limit.clamp(Duration::from_millis(100), Duration::from_secs(5));
    let stream = TcpStream::connect_timeout(&SocketAddr::from((address, 22)), limit)
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.starts_with("SSH-") {
        Ok(())
    } else {
        Err(format!("unexpected banner {line:?}"))
    }
}

/// Asks the host to power off (nspawn turns SIGTERM into an orderly shutdown) and waits up
/// to `grace`; then kills it.
pub fn stop(p: Proc, grace: Duration) -> Result<()> {
    if !alive(p) {
        return Ok(());
    }
    signal(p.pid, Signal::SIGTERM)?;
    if wait_exit(p, grace) { Ok(()) } else { kill(p) }
}

/// Pulls the plug: SIGKILL to the container's init ends every process in its pid
/// namespace at once; nspawn then exits on its own (with a failure status, never the
/// reboot status, so the supervisor ends too).
pub fn kill(p: Proc) -> Result<()> {
    if !alive(p) {
        return Ok(());
    }
    if let Some(init) = init_pid(p) {
        signal(init, Signal::SIGKILL)?;
        if wait_exit(p, Duration::from_secs(10)) {
            return Ok(());
        }
    }
    // The supervisor first, so it cannot start nspawn again; then nspawn itself.
    let nspawn = nspawn_pid(p);
    signal(p.pid, Signal::SIGKILL)?;
    if let Some(pid) = nspawn.filter(|&pid| pid != p.pid) {
        signal(pid, Signal::SIGKILL)?;
    }
    wait_exit(p, Duration::from_secs(10));
    Ok(())
}

fn signal(pid: u32, sig: Signal) -> Result<()> {
    let raw = i32::try_from(pid)
        .map_err(|_| Error::InvalidArgument(format!("pid {pid} out of range")))?;
    match nix::sys::signal::kill(Pid::from_raw(raw), sig) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(e) => Err(Error::sys("signal process", format!("/proc/{pid}"))(e)),
    }
}

/// Polls until the process is gone; returns whether it went within `limit`.
fn wait_exit(p: Proc, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(p) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process_and_rejects_wrong_start_time() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert!(s.state != 'Z');
        let p = Proc {
            pid: me,
            start: s.start,
        };
        assert!(alive(p));
        assert!(
            !alive(Proc {
                pid: me,
                start: s.start + 1
            }),
            "a reused pid must not count"
        );
    }

    /// Runs the supervisor around `script` (instead of nspawn) and returns its exit status
    /// and how many times it started the script.
    fn supervise(script: &str, dir: &Path) -> (Option<i32>, usize) {
        let status = Command::new("sh")
            .args(["-c", SUPERVISOR, "test", "--", "sh", "-c", script, "child"])
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let starts = std::fs::read_to_string(dir.join("starts"))
            .unwrap_or_default()
            .lines()
            .count();
        (status.code(), starts)
    }

    #[test]
    fn the_supervisor_starts_the_host_again_after_a_reboot_only() {
        // Two reboots (133), then a poweroff (0): three boots, and the poweroff stays off.
        let dir = tempfile::tempdir().unwrap();
        let reboot_twice = "echo boot >> starts; [ $(wc -l < starts) -ge 3 ] && exit 0; exit 133";
        assert_eq!(supervise(reboot_twice, dir.path()), (Some(0), 3));

        // A failure is not a reboot: no second start, and its status comes through.
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            supervise("echo boot >> starts; exit 7", dir.path()),
            (Some(7), 1)
        );
    }

    #[test]
    fn the_supervisor_passes_sigterm_on_and_does_not_restart_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // The child exits 133 on SIGTERM, as if it rebooted: a stop must still end it all.
        let script = "echo boot >> starts; trap 'exit 133' TERM; echo ready > up; \
                      while :; do sleep 0.05; done";
        let mut child = Command::new("sh")
            .args(["-c", SUPERVISOR, "test", "--", "sh", "-c", script, "child"])
            .current_dir(dir.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.path().join("up").exists() {
            assert!(Instant::now() < deadline, "the child never started");
            thread::sleep(POLL);
        }
        signal(child.id(), Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(133));
        let starts = std::fs::read_to_string(dir.path().join("starts")).unwrap();
        assert_eq!(
            starts.lines().count(),
            1,
            "a stopped host must not boot again"
        );
    }

    #[test]
    fn finds_the_child_of_a_process() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let found = children(std::process::id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found.contains(&child.id()), "{found:?}");
    }
}
