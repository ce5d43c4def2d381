//! Read-only checks that pass or fail; they never report "changed".
//!
//! In check mode the things a check looks at may not exist yet (containerd is installed by
//! an earlier task of the same dry run), so a check that cannot pass there reports what it
//! would check instead of failing.

use std::{collections::BTreeMap, fs, path::Path, time::Duration};

use crate::{
    error::{Error, Result},
    exec::{self, Ran},
    fsutil::sync_dir,
    gpu_checks,
    protocol::{CheckArgs, CheckKind},
    tasks::{Ctx, Outcome},
};

/// How long `ctr version` may take: it is one round trip on a local socket.
const VERSION_LIMIT: Duration = Duration::from_secs(30);
/// How long the test container may take, image-less start included.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Runs of the test container when it succeeds but prints nothing (see `container_runs`).
const RUN_ATTEMPTS: u32 = 3;
/// How long a probing command may take; `etcdctl endpoint health` gives up after 5 s on
/// its own, and a check that hangs would stall the whole phase.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// Runs the check.
pub fn apply(args: &CheckArgs, ctx: &Ctx) -> Result<Outcome> {
    let result = match &args.check {
        CheckKind::ServiceActive { unit } => service_active(unit),
        CheckKind::ContainerdSocket { socket } => containerd_socket(socket),
        CheckKind::ContainerRuns {
            socket,
            runtime,
            binary,
            rootfs_sha256,
            argv,
            expect,
        } => container_runs(
            ctx,
            socket,
            (runtime, binary.as_deref()),
            rootfs_sha256,
            argv,
            expect,
        ),
        CheckKind::CommandSucceeds { argv, env, expect } => {
            command_succeeds(argv, env, expect.as_deref())
        }
        CheckKind::NvidiaSmiGpus { gpus } => gpu_checks::nvidia_smi_gpus(*gpus),
        CheckKind::GpuFabricCompleted {} => gpu_checks::gpu_fabric_completed(),
        CheckKind::NoXidErrors {} => gpu_checks::no_xid_errors(),
        CheckKind::GpuContainer {
            socket,
            runtime_binary,
            rootfs_sha256,
            gpus,
        } => gpu_checks::gpu_container(ctx, socket, runtime_binary, rootfs_sha256, *gpus),
    };
    match result {
        Err(e) if ctx.check_mode => Ok(Outcome::unchanged(format!(
            "would check {} (cannot pass yet: {e})",
            describe(&args.check)
        ))),
        other => other,
    }
}

fn describe(check: &CheckKind) -> String {
    match check {
        CheckKind::ServiceActive { unit } => format!("that {unit} is active"),
        CheckKind::ContainerdSocket { socket } => {
            format!("that containerd answers on {}", socket.display())
        }
        CheckKind::ContainerRuns {
            runtime,
            binary: Some(binary),
            ..
        } => format!("that a container runs with runtime {runtime} ({binary})"),
        CheckKind::ContainerRuns { runtime, .. } => {
            format!("that a container runs with runtime {runtime}")
        }
        CheckKind::CommandSucceeds { argv, .. } => {
            format!("that `{}` succeeds", exec::command_line(argv))
        }
        CheckKind::NvidiaSmiGpus { gpus } => format!("that nvidia-smi lists {gpus} GPU(s)"),
        CheckKind::GpuFabricCompleted {} => "that every GPU's fabric state is Completed".into(),
        CheckKind::NoXidErrors {} => "that the kernel logged no Xid error this boot".into(),
        CheckKind::GpuContainer {
            runtime_binary,
            gpus,
            ..
        } => format!(
            "that a container run with {} sees {gpus} GPU(s)",
            runtime_binary.display()
        ),
    }
}

fn service_active(unit: &str) -> Result<Outcome> {
    let ran = exec::run(&["systemctl", "is-active", unit])?;
    let state = ran.stdout.trim();
    if state == "active" {
        return Ok(Outcome::unchanged(format!("{unit} is active")));
    }
    let status = exec::run(&["systemctl", "status", "--no-pager", "--lines=20", unit])?;
    Err(Error::CheckFailed {
        check: format!("service {unit}"),
        seen: if state.is_empty() {
            "no answer".into()
        } else {
            state.to_string()
        },
        expected: "active".into(),
        hint: format!("journalctl -u {unit} shows why"),
        output: status.tail(),
    })
}

/// `ctr --address <socket> <args>` with a time limit.
pub(crate) fn ctr(socket: &Path, args: &[&str], limit: Duration) -> Result<Ran> {
    let mut argv = vec![
        "ctr".to_string(),
        "--address".into(),
        socket.to_string_lossy().into_owned(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    exec::run_with(&argv, &Default::default(), Some(limit))
}

fn containerd_socket(socket: &Path) -> Result<Outcome> {
    // Without this, ctr spends its 10 s dial timeout finding out.
    if fs::symlink_metadata(socket).is_err() {
        return Err(Error::CheckFailed {
            check: format!("containerd socket {}", socket.display()),
            seen: "no socket there".into(),
            expected: "containerd listening on it".into(),
            hint: "is containerd running? systemctl status containerd".into(),
            output: String::new(),
        });
    }
    let ran = ctr(socket, &["version"], VERSION_LIMIT)?;
    match server_version(&ran.stdout) {
        Some(v) if ran.success() => Ok(Outcome {
            changed: false,
            message: format!("containerd {v} answers on {}", socket.display()),
            output: ran.tail(),
        }),
        _ => Err(Error::CheckFailed {
            check: format!("containerd socket {}", socket.display()),
            seen: last_line(&ran.tail()).unwrap_or_else(|| ran.status_text()),
            expected: "a Server section with a Version from `ctr version`".into(),
            hint: "is containerd running? systemctl status containerd".into(),
            output: ran.tail(),
        }),
    }
}

fn command_succeeds(
    argv: &[String],
    env: &BTreeMap<String, String>,
    expect: Option<&str>,
) -> Result<Outcome> {
    if argv.is_empty() {
        return Err(Error::EmptyArgv {
            what: "command_succeeds argv",
        });
    }
    let ran = exec::run_with(argv, env, Some(COMMAND_LIMIT))?;
    let found = expect.is_none_or(|e| ran.stdout.contains(e));
    if ran.success() && found {
        let printed = expect
            .map(|e| format!(" and printed {e:?}"))
            .unwrap_or_default();
        return Ok(Outcome {
            changed: false,
            message: format!("`{}` exited 0{printed}", ran.command),
            output: ran.tail(),
        });
    }
    // The output's end usually says why; it goes in the one-line message too, so that the
    // reason shows without digging into the event's output field.
    let tail = exec::tail(ran.tail().trim(), 300);
    let expected = match expect {
        Some(e) => format!("exit code 0 and stdout containing {e:?}"),
        None => "exit code 0".into(),
    };
    let seen = if ran.success() {
        format!("exit code 0 without it in stdout: {tail}")
    } else {
        format!("`{}` {}: {tail}", argv[0], ran.status_text())
    };
    Err(Error::CheckFailed {
        check: format!("command `{}`", ran.command),
        seen,
        expected,
        hint: String::new(),
        output: ran.tail(),
    })
}

/// The server's version from `ctr version` output, when it has a Server section.
pub fn server_version(stdout: &str) -> Option<String> {
    let (_, server) = stdout.split_once("Server:")?;
    server.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Version:")?.trim();
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The last non-blank line, trimmed.
pub(crate) fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

fn container_runs(
    ctx: &Ctx,
    socket: &Path,
    (runtime, binary): (&str, Option<&str>),
    rootfs_sha256: &str,
    argv: &[String],
    expect: &str,
) -> Result<Outcome> {
    if argv.is_empty() {
        return Err(Error::EmptyArgv {
            what: "container_runs argv",
        });
    }
    let runtime_label = match binary {
        Some(binary) => format!("{runtime} ({binary})"),
        None => runtime.to_string(),
    };
    let rootfs = ctx.state_dir.join("rootfs").join(rootfs_sha256);
    if !rootfs.is_dir() {
        if ctx.check_mode {
            return Ok(Outcome::unchanged(format!(
                "would check that a container runs with runtime {runtime_label} (its rootfs is not unpacked yet)"
            )));
        }
        unpack_rootfs(ctx, rootfs_sha256, &rootfs)?;
    }
    let rootfs_arg = rootfs.to_string_lossy().into_owned();
    // A process that exits at once can lose its output in containerd's IO copy (a known race
    // of short-lived containers, containerd issue 770; seen here under load): a run that
    // succeeded but printed nothing is tried again under a new name before it counts. A
    // wrong rootfs or runtime prints something else or fails, and is not retried.
    let mut attempt = 1;
    let (id, ran) = loop {
        let id = container_id();
        let mut args = vec!["run", "--rm", "--runtime", runtime];
        // Another OCI runtime under the runc shim (gVisor's runsc): ctr hands it to the shim
        // as the runc binary, as CRI does with a handler's BinaryName.
        if let Some(binary) = binary {
            args.extend(["--runc-binary", binary]);
        }
        args.extend(["--rootfs", &rootfs_arg, &id]);
        args.extend(argv.iter().map(String::as_str));
        let ran = ctr(socket, &args, RUN_LIMIT)?;
        if ran.success() && ran.stdout.trim().is_empty() && attempt < RUN_ATTEMPTS {
            attempt += 1;
            continue;
        }
        break (id, ran);
    };
    if ran.success() && ran.stdout.contains(expect) {
        return Ok(Outcome {
            changed: false,
            message: format!("a container ran with runtime {runtime_label} and printed {expect:?}"),
            output: ran.tail(),
        });
    }
    // `run --rm` leaves the container behind when it fails; a later check reuses no name,
    // but a stale container is litter on the host.
    remove_container(socket, &id);
    let stderr = last_line(&ran.stderr).unwrap_or_default();
    Err(Error::CheckFailed {
        check: format!("container {id} ({runtime_label})"),
        seen: if ran.success() {
            format!("stdout {:?}", exec::tail(ran.stdout.trim(), 200))
        } else {
            format!("`ctr run` {}: {stderr}", ran.status_text())
        },
        expected: format!("stdout containing {expect:?}"),
        hint: run_failure_hint(
            ran.success(),
            ran.stdout.trim().is_empty(),
            &stderr,
            runtime,
            &rootfs,
            &argv[0],
        ),
        output: ran.tail(),
    })
}

/// Removes what a failed `ctr run --rm` left behind (best effort: it may be gone already).
pub(crate) fn remove_container(socket: &Path, id: &str) {
    let _ = ctr(
        socket,
        &["tasks", "kill", "--signal", "SIGKILL", id],
        VERSION_LIMIT,
    );
    let _ = ctr(socket, &["tasks", "delete", "--force", id], VERSION_LIMIT);
    let _ = ctr(socket, &["containers", "rm", id], VERSION_LIMIT);
}

/// A container name no other check shares: the pid alone repeats across hosts cloned from
/// one image (and across runs after a reboot), and a leftover container of the same name
/// makes `ctr run` fail for a reason that has nothing to do with the runtime.
pub(crate) fn container_id() -> String {
    let token = fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|u| u.trim().replace('-', ""))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{nanos:x}")
        });
    format!("kubegrid-check-{}-{token}", std::process::id())
}

/// Where to look, by what failed: the container's own output, the rootfs, the runtime
/// containerd was asked for, or containerd itself.
fn run_failure_hint(
    ran_ok: bool,
    stdout_empty: bool,
    stderr: &str,
    runtime: &str,
    rootfs: &Path,
    program: &str,
) -> String {
    let said = stderr.to_ascii_lowercase();
    if ran_ok && stdout_empty {
        format!(
            "the container exited 0 but printed nothing, {RUN_ATTEMPTS} times: containerd lost its output (check `journalctl -u containerd`) or the test rootfs {} prints nothing; remove that directory so it is unpacked again",
            rootfs.display()
        )
    } else if ran_ok {
        format!(
            "the container ran but printed something else: the test rootfs {} is not what the bundle holds; remove that directory so it is unpacked again",
            rootfs.display()
        )
    } else if said.contains("runtime") || said.contains("shim") {
        format!(
            "containerd could not start runtime {runtime}: check that its shim and binary are installed and that /etc/containerd/config.toml names it (ctr's output is below)"
        )
    } else if said.contains("no such file") || said.contains("executable file not found") {
        format!(
            "{program} is missing from the test rootfs {}; remove that directory so it is unpacked again from the bundle",
            rootfs.display()
        )
    } else if said.contains("already exists") {
        "a container of the same name is left over; remove it with `ctr containers rm`".into()
    } else {
        "the container did not start: ctr's output is below; `journalctl -u containerd` on the host says why".into()
    }
}

/// Unpacks the rootfs tar once: into a temp dir beside the final one, renamed when whole,
/// so a killed unpack never looks finished.
pub(crate) fn unpack_rootfs(ctx: &Ctx, sha256: &str, dest: &Path) -> Result<()> {
    let blob = ctx.verified_blob(sha256, "container rootfs")?;
    let parent = ctx.state_dir.join("rootfs");
    let tmp = parent.join(format!(".{sha256}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)
        .map_err(|source| crate::fsutil::write_err("create directory", &tmp, source))?;
    let blob_arg = blob.to_string_lossy().into_owned();
    let tmp_arg = tmp.to_string_lossy().into_owned();
    let untar = exec::run(&["tar", "-xf", &blob_arg, "-C", &tmp_arg])?;
    if !untar.success() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(untar.failed("the rootfs blob must be a plain .tar"));
    }
    fs::rename(&tmp, dest)
        .map_err(|source| crate::fsutil::write_err("rename into place", dest, source))?;
    sync_dir(&parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::sha256_file;
    use crate::testutil::ctx_in;

    #[test]
    fn container_names_differ_between_checks() {
        let (a, b) = (container_id(), container_id());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("kubegrid-check-{}-", std::process::id())));
    }

    #[test]
    fn a_failed_run_hint_points_at_what_failed() {
        let rootfs = Path::new("/var/lib/kubegrid/rootfs/abc");
        let runtime = "io.containerd.kata.v2";
        let hint =
            |ok, stderr| run_failure_hint(ok, false, stderr, runtime, rootfs, "/bin/busybox");
        assert!(hint(true, "").contains("the test rootfs /var/lib/kubegrid/rootfs/abc"));
        let silent = run_failure_hint(true, true, "", runtime, rootfs, "/bin/busybox");
        assert!(silent.contains("printed nothing, 3 times"), "{silent}");
        let h = hint(
            false,
            "ctr: failed to create shim task: runtime \"io.containerd.kata.v2\" binary not installed",
        );
        assert!(
            h.contains("could not start runtime io.containerd.kata.v2"),
            "{h}"
        );
        let h = hint(
            false,
            "exec: \"/bin/busybox\": stat /bin/busybox: no such file or directory",
        );
        assert!(
            h.contains("/bin/busybox is missing from the test rootfs"),
            "{h}"
        );
        let h = hint(false, "ctr: container \"x\": already exists");
        assert!(h.contains("left over"), "{h}");
        assert!(hint(false, "something else").contains("journalctl -u containerd"));
    }

    #[test]
    fn finds_the_server_version() {
        let out = "Client:\n  Version:  1.6.20~ds1\n  Revision: 1.6.20~ds1-1+b1\n  Go version: go1.19.8\n\n\
                   Server:\n  Version:  1.6.20~ds1\n  Revision: 1.6.20~ds1-1+b1\n  UUID: 4f0b\n";
        assert_eq!(server_version(out).as_deref(), Some("1.6.20~ds1"));
        let client_only = "Client:\n  Version:  1.6.20~ds1\n";
        assert_eq!(server_version(client_only), None);
    }

    fn command_check(script: &str, expect: Option<&str>) -> CheckArgs {
        CheckArgs {
            check: CheckKind::CommandSucceeds {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: BTreeMap::from([("KG_STATE".to_string(), "healthy".to_string())]),
                expect: expect.map(str::to_string),
            },
        }
    }

    fn plain_ctx(check_mode: bool) -> Ctx {
        Ctx {
            root: "/".into(),
            store_dir: "/nonexistent/store".into(),
            state_dir: "/nonexistent/state".into(),
            check_mode,
            verified: Default::default(),
        }
    }

    #[test]
    fn command_succeeds_passes_on_exit_0_with_the_expected_text() {
        let ctx = plain_ctx(false);
        let bare = apply(&command_check("true", None), &ctx).unwrap();
        assert_eq!(bare, Outcome::unchanged("`sh -c true` exited 0"));
        let args = command_check("echo \"127.0.0.1:2379 is $KG_STATE\"", Some("is healthy"));
        let out = apply(&args, &ctx).unwrap();
        assert!(!out.changed);
        assert!(
            out.message.ends_with("exited 0 and printed \"is healthy\""),
            "{}",
            out.message
        );
        assert_eq!(out.output, "127.0.0.1:2379 is healthy\n");
    }

    #[test]
    fn command_succeeds_fails_with_the_exit_code_and_output() {
        let ctx = plain_ctx(false);
        let args = command_check("echo context deadline exceeded >&2; exit 3", None);
        let err = apply(&args, &ctx).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command `sh -c 'echo context deadline exceeded >&2; exit 3'`: saw `sh` exited with code 3: context deadline exceeded, expected exit code 0"
        );
        assert_eq!(err.output(), "context deadline exceeded\n");
        let wrong = apply(&command_check("echo unhealthy", Some("is healthy")), &ctx).unwrap_err();
        assert!(
            wrong
                .to_string()
                .contains("saw exit code 0 without it in stdout: unhealthy, expected exit code 0 and stdout containing \"is healthy\""),
            "{wrong}"
        );
        let dry = apply(&args, &plain_ctx(true)).unwrap();
        assert!(!dry.changed);
        assert!(
            dry.message.starts_with("would check that `sh -c"),
            "{}",
            dry.message
        );
    }

    #[test]
    fn check_mode_reports_would_check_when_it_cannot_pass() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_in(dir.path(), true);
        let args = CheckArgs {
            check: CheckKind::ContainerRuns {
                socket: "/run/containerd/containerd.sock".into(),
                runtime: "io.containerd.runc.v2".into(),
                binary: None,
                rootfs_sha256: "a".repeat(64),
                argv: vec!["/bin/busybox".into(), "echo".into(), "ok".into()],
                expect: "ok".into(),
            },
        };
        let out = apply(&args, &ctx).unwrap();
        assert!(!out.changed);
        assert!(
            out.message.starts_with(
                "would check that a container runs with runtime io.containerd.runc.v2"
            )
        );
        assert!(!ctx.state_dir.exists(), "check mode unpacks nothing");
    }

    #[test]
    fn unpacks_a_rootfs_once() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/hello"), "hi").unwrap();
        let tar = dir.path().join("rootfs.tar");
        let ran = exec::run(&[
            "tar",
            "-cf",
            tar.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            ".",
        ])
        .unwrap();
        assert!(ran.success());
        let sha = sha256_file(&tar).unwrap();
        let ctx = ctx_in(dir.path(), false);
        fs::create_dir_all(&ctx.store_dir).unwrap();
        fs::copy(&tar, ctx.blob(&sha)).unwrap();
        let dest = ctx.state_dir.join("rootfs").join(&sha);
        unpack_rootfs(&ctx, &sha, &dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("bin/hello")).unwrap(), "hi");
        let entries: Vec<_> = fs::read_dir(ctx.state_dir.join("rootfs"))
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 1, "no temp dir is left");
        let missing = unpack_rootfs(&ctx, &"b".repeat(64), &dest).unwrap_err();
        assert!(matches!(missing, Error::BlobMissing { .. }));
    }
}
