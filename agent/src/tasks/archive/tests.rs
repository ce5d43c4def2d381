use std::os::unix::fs::MetadataExt;

use super::*;
use crate::{
    fsutil::sha256_file,
    testutil::{ctx_in, write},
};

struct Env {
    dir: tempfile::TempDir,
    ctx: Ctx,
    dest: PathBuf,
}

fn env(check_mode: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path(), check_mode);
    fs::create_dir_all(&ctx.store_dir).unwrap();
    let dest = dir.path().join("opt/cni/bin");
    Env { dir, ctx, dest }
}

/// A tar.gz of `files` (relative path, content) made with `tar` run in `src` with the
/// extra `args`, stored as a blob; returns its sha256.
fn archive(e: &Env, name: &str, files: &[(&str, &str)], members: &[&str]) -> String {
    let src = e.dir.path().join(format!("src-{name}"));
    for (rel, content) in files {
        write(&src, rel, content);
    }
    let tgz = e.dir.path().join(format!("{name}.tgz"));
    let mut argv = vec![
        "tar".to_string(),
        "-czPf".into(),
        tgz.to_string_lossy().into_owned(),
        "-C".into(),
        src.to_string_lossy().into_owned(),
    ];
    argv.extend(members.iter().map(|m| m.to_string()));
    let ran = exec::run_with(&argv, &Default::default(), None).unwrap();
    assert!(ran.success(), "{}", ran.tail());
    let sha = sha256_file(&tgz).unwrap();
    fs::copy(&tgz, e.ctx.blob(&sha)).unwrap();
    sha
}

fn cni(e: &Env, name: &str, bridge: &str) -> String {
    archive(
        e,
        name,
        &[
            ("bridge", bridge),
            ("loopback", "lo"),
            ("LICENSE", "apache"),
        ],
        &["."],
    )
}

fn args(e: &Env, sha256: &str) -> ArchiveArgs {
    ArchiveArgs {
        sha256: sha256.to_string(),
        dest: e.dest.clone(),
    }
}

#[test]
fn unpacks_once_and_records_a_stamp() {
    let e = env(false);
    let sha = cni(&e, "v1", "bridge-v1");
    let first = apply(&args(&e, &sha), &e.ctx).unwrap();
    assert!(first.changed);
    assert_eq!(
        first.message,
        format!(
            "unpack archive {} into {} (not unpacked before): 3 files",
            &sha[..12],
            e.dest.display()
        )
    );
    assert_eq!(
        fs::read_to_string(e.dest.join("bridge")).unwrap(),
        "bridge-v1"
    );
    assert_eq!(fs::metadata(&e.dest).unwrap().mode() & 0o7777, 0o755);
    let stamp = read_stamp(&stamp_path(&e.ctx, &e.dest)).unwrap().unwrap();
    assert_eq!(stamp.sha256, sha);
    let files: Vec<&String> = stamp.files.keys().collect();
    assert_eq!(files, vec!["LICENSE", "bridge", "loopback"]);
    assert_eq!(
        stamp.files["bridge"].content,
        sha256_file(&e.dest.join("bridge")).unwrap()
    );
    let name = e.dest.to_string_lossy().replace('/', "%");
    assert!(e.ctx.state_dir.join("archives").join(name).is_file());
    let second = apply(&args(&e, &sha), &e.ctx).unwrap();
    assert!(!second.changed, "{}", second.message);
}

#[test]
fn a_missing_file_or_a_new_archive_unpacks_again() {
    let e = env(false);
    let v1 = cni(&e, "v1", "bridge-v1");
    apply(&args(&e, &v1), &e.ctx).unwrap();
    fs::remove_file(e.dest.join("loopback")).unwrap();
    let repaired = apply(&args(&e, &v1), &e.ctx).unwrap();
    assert!(
        repaired
            .message
            .contains("(1 of 3 files differ from the archive, e.g. loopback (missing))"),
        "{}",
        repaired.message
    );
    assert!(e.dest.join("loopback").is_file());
    let v2 = cni(&e, "v2", "bridge-v2");
    let upgraded = apply(&args(&e, &v2), &e.ctx).unwrap();
    assert!(
        upgraded
            .message
            .contains(&format!("(replacing {})", &v1[..12])),
        "{}",
        upgraded.message
    );
    assert_eq!(
        fs::read_to_string(e.dest.join("bridge")).unwrap(),
        "bridge-v2"
    );
    assert!(!apply(&args(&e, &v2), &e.ctx).unwrap().changed);
}

#[test]
fn a_file_changed_on_the_host_is_rewritten_and_named() {
    let e = env(false);
    let v1 = cni(&e, "v1", "bridge-v1");
    apply(&args(&e, &v1), &e.ctx).unwrap();
    let bridge = e.dest.join("bridge");
    // Same size, mtime put back: only the content (and the ctime) tell.
    let mtime = fs::metadata(&bridge).unwrap().modified().unwrap();
    fs::write(&bridge, "bridge-XX").unwrap();
    fs::File::options()
        .write(true)
        .open(&bridge)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let repaired = apply(&args(&e, &v1), &e.ctx).unwrap();
    assert!(repaired.changed);
    assert!(
        repaired
            .message
            .contains("(1 of 3 files differ from the archive, e.g. bridge (changed))"),
        "{}",
        repaired.message
    );
    assert_eq!(fs::read_to_string(&bridge).unwrap(), "bridge-v1");
    assert!(!apply(&args(&e, &v1), &e.ctx).unwrap().changed);
}

#[test]
fn a_file_touched_but_not_changed_stays_unchanged() {
    let e = env(false);
    let v1 = cni(&e, "v1", "bridge-v1");
    apply(&args(&e, &v1), &e.ctx).unwrap();
    // Rewritten with the same bytes: the metadata moved, the sha256 did not.
    fs::write(e.dest.join("bridge"), "bridge-v1").unwrap();
    let again = apply(&args(&e, &v1), &e.ctx).unwrap();
    assert!(!again.changed, "{}", again.message);
}

#[test]
fn unpacks_upstreams_layout_over_a_running_executable() {
    let e = env(false);
    let dest = e.dir.path().join("usr/local");
    // A copy of `sleep` as bin/containerd, running from dest while the new archive lands.
    let sleep = which("sleep");
    let v1_bin = e.dir.path().join("src-layout-v1/bin");
    fs::create_dir_all(&v1_bin).unwrap();
    fs::copy(&sleep, v1_bin.join("containerd")).unwrap();
    let v1 = archive(&e, "layout-v1", &[("bin/ctr", "ctr-v1")], &["bin"]);
    let a = ArchiveArgs {
        sha256: v1,
        dest: dest.clone(),
    };
    apply(&a, &e.ctx).unwrap();
    let mut running = std::process::Command::new(dest.join("bin/containerd"))
        .arg("30")
        .spawn()
        .unwrap();
    // The new "containerd": sleep with a byte appended, so the content differs.
    let mut next = fs::read(&sleep).unwrap();
    next.push(0);
    let v2_bin = e.dir.path().join("src-layout-v2/bin");
    fs::create_dir_all(&v2_bin).unwrap();
    fs::write(v2_bin.join("containerd"), &next).unwrap();
    fs::set_permissions(v2_bin.join("containerd"), fs::Permissions::from_mode(0o755)).unwrap();
    let v2 = archive(&e, "layout-v2", &[("bin/ctr", "ctr-v1")], &["bin"]);
    let out = apply(
        &ArchiveArgs {
            sha256: v2,
            dest: dest.clone(),
        },
        &e.ctx,
    );
    let still_running = running.try_wait().unwrap().is_none();
    running.kill().unwrap();
    running.wait().unwrap();
    let out = out.unwrap();
    assert!(out.changed, "{}", out.message);
    assert_eq!(fs::read(dest.join("bin/containerd")).unwrap(), next);
    assert!(still_running, "the running binary was disturbed");
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

#[test]
fn refuses_members_that_escape_the_destination() {
    let e = env(false);
    let outside = e.dir.path().join("src-abs/evil");
    write(e.dir.path(), "src-abs/evil", "x");
    let absolute = archive(&e, "abs", &[], &[&outside.to_string_lossy()]);
    let climbing = archive(
        &e,
        "climb",
        &[("sub/keep", "k")],
        &["sub/keep", "../src-abs/evil"],
    );
    for sha in [absolute, climbing] {
        let err = apply(&args(&e, &sha), &e.ctx).unwrap_err();
        assert!(matches!(err, Error::UnsafeArchiveMember { .. }), "{err}");
        assert!(err.to_string().contains("nothing was unpacked"), "{err}");
    }
    assert!(!e.dest.exists(), "nothing is unpacked");
    assert!(!stamp_path(&e.ctx, &e.dest).exists());
}

#[test]
fn check_mode_reports_without_unpacking() {
    let e = env(true);
    let out = apply(&args(&e, &"e".repeat(64)), &e.ctx).unwrap();
    assert!(out.changed);
    assert!(
        out.message.contains("(not unpacked before)"),
        "{}",
        out.message
    );
    assert!(!e.dest.exists() && !e.ctx.state_dir.exists());
}

#[test]
fn a_missing_blob_or_a_relative_dest_fails() {
    let e = env(false);
    let err = apply(&args(&e, &"f".repeat(64)), &e.ctx).unwrap_err();
    assert!(matches!(err, Error::BlobMissing { .. }), "{err}");
    let rel = ArchiveArgs {
        sha256: "f".repeat(64),
        dest: "opt/cni/bin".into(),
    };
    assert!(matches!(
        apply(&rel, &e.ctx),
        Err(Error::RelativePath { .. })
    ));
}
