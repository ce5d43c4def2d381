//! The operator image on a lab host: `kubegrid image build` packs the static kubegrid binary
//! (.ci/setup builds it) into an OCI layout; the layout, tarred as an OCI archive, is copied
//! to a host whose containerd `apply --until container-runtime` installed from the e2e
//! bundle; `ctr image import` takes it under the name and digest the build printed, and
//! `ctr run` of it prints exactly what the same binary's `kubegrid version` prints here.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use kubegrid_e2e::{LabGuard, describe, kubegrid_bin};
use serde_json::Value;

/// The containerd namespace the test imports into, so it never touches k8s.io's images.
const NAMESPACE: &str = "kubegrid";

/// The static kubegrid binary .ci/setup builds: `$KUBEGRID_STATIC_BIN`, or
/// `<target>/x86_64-unknown-linux-gnu/release/kubegrid` beside the debug build under test.
fn static_binary() -> PathBuf {
    let path = std::env::var_os("KUBEGRID_STATIC_BIN").map_or_else(
        || {
            let debug = kubegrid_bin();
            let target = debug.parent().and_then(Path::parent).expect("target dir");
            target.join("x86_64-unknown-linux-gnu/release/kubegrid")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no static kubegrid binary at {}; build it as .ci/setup does: RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu -p kubegrid (or set KUBEGRID_STATIC_BIN)",
        path.display()
    );
    path
}

/// `kubegrid version` of `binary`, run from a folder of its own so that it finds no agent
/// beside it, as in the image (where `/` holds none).
fn local_version(binary: &Path, dir: &Path) -> String {
    let copy = dir.join("kubegrid");
    std::fs::copy(binary, &copy).expect("copy the static binary");
    let out = Command::new(&copy)
        .arg("version")
        .env_remove("KUBEGRID_AGENT_DIR")
        .output()
        .expect("run the static binary");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).expect("utf-8 version")
}

#[test]
fn the_operator_image_runs_on_a_lab_host_and_prints_kubegrid_version() {
    let binary = static_binary();
    let work = tempfile::tempdir().expect("tempdir");
    let expected = local_version(&binary, work.path());
    assert!(expected.starts_with("kubegrid "), "{expected}");

    // Build the image into a fresh layout and tar it as an OCI archive.
    let layout = work.path().join("layout");
    let out = Command::new(kubegrid_bin())
        .args(["image", "build", "-o", "json", "--layout"])
        .arg(&layout)
        .arg("--binary")
        .arg(format!("amd64={}", binary.display()))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run kubegrid image build");
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("image build prints JSON");
    let image = report["image"].as_str().expect("image name").to_owned();
    let digest = report["digest"].as_str().expect("digest").to_owned();
    // The same binary into a (format 2) bundle: the same digest, listed in its manifest as
    // the image apply pushes into the bundle registry.
    let bundle = work.path().join("bundle");
    std::fs::create_dir(&bundle).expect("bundle dir");
    std::fs::write(
        bundle.join("manifest.yaml"),
        "# operator image test bundle\nversion: 2\nname: t\nfiles: []\n",
    )
    .expect("write manifest");
    let out = Command::new(kubegrid_bin())
        .args(["image", "build", "-o", "json", "--bundle"])
        .arg(&bundle)
        .arg("--binary")
        .arg(format!("amd64={}", binary.display()))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run kubegrid image build --bundle");
    assert!(out.status.success(), "{}", describe(&out));
    let manifest = std::fs::read_to_string(bundle.join("manifest.yaml")).expect("manifest");
    let version = report["image"].as_str().and_then(|i| i.rsplit(':').next());
    assert!(
        manifest.starts_with("# operator image test bundle\n")
            && manifest.contains("- name: ghcr.io/kubegrid/kubegrid\n")
            && manifest.contains(&format!("  tag: {}\n", version.expect("tag")))
            && manifest.contains(&format!("  digest: {digest}\n"))
            && manifest.contains("  component: operator\n"),
        "{manifest}"
    );

    let archive = work.path().join("kubegrid-image.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(tar.status.success(), "{}", describe(&tar));

    // One host with containerd from the e2e bundle.
    let lab = LabGuard::up(1);
    let host = lab.host("lab-1");
    let spec = lab.spec();
    let applied = lab.run(&[
        "apply",
        "-f",
        spec.to_str().expect("utf-8 spec path"),
        "-o",
        "json",
        "--until",
        "container-runtime",
    ]);
    assert!(
        applied.status.success(),
        "apply failed:\n{}",
        describe(&applied)
    );

    let scp = Command::new("scp")
        .arg("-i")
        .arg(&lab.key)
        .args(kubegrid_e2e::SSH_OPTIONS)
        .arg(&archive)
        .arg(format!("root@{}:/tmp/kubegrid-image.tar", host.address))
        .output()
        .expect("run scp");
    assert!(scp.status.success(), "{}", describe(&scp));

    // `ctr` through PATH: the bundle's containerd may put it in /usr/bin or /usr/local/bin.
    // The native snapshotter: lab hosts' root file system is itself an overlay, on which
    // containerd's overlayfs snapshotter cannot mount. `--local`: ctr 2.x imports through
    // containerd's transfer service by default, which does not unpack into the native
    // snapshotter.
    lab.ssh_ok(
        host,
        &format!(
            "ctr -n {NAMESPACE} images import --local --snapshotter native /tmp/kubegrid-image.tar >/dev/null"
        ),
    );
    let listed = lab.ssh_ok(
        host,
        &format!("ctr -n {NAMESPACE} images ls | awk '$1 == \"{image}\" {{print $3}}'"),
    );
    assert_eq!(
        listed, digest,
        "the host holds {image} under another digest"
    );

    let ran = lab.ssh(
        host,
        &format!(
            "ctr -n {NAMESPACE} run --rm --snapshotter native {image} kg-operator-image /kubegrid version"
        ),
    );
    assert!(ran.status.success(), "ctr run failed:\n{}", describe(&ran));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), expected);
}
