//! Fully air-gapped install from a bundle built here (issue #5): lab hosts have no route out,
//! and the build itself reads only a loopback UPSTREAM STAND-IN (see airgap/upstream.rs).
//!
//! 1. `bundle build --mirror … --image-mirror … --sign-key` makes a signed .tar.zst from the
//!    stand-in; `bundle verify` passes on the packed file.
//! 2. Refusals before any host is touched: a copy with one corrupted artifact, and a copy
//!    signed by another key, are refused by `apply` with exit 2 naming the artifact / the
//!    signature; no lab host has a trace and the journal holds no operation.
//! 3. Happy path: a full `apply` (API checks skipped: the Kubernetes binaries are the e2e
//!    STAND-INS, no kube-apiserver runs) of the packed bundle with spec.bundle.registry on
//!    lab-1; on lab-2 containerd pulls `registry.k8s.io/kubegrid-e2e/hello:1` through its
//!    certs.d mirror config from kubegrid's registry, and a container of it prints its line.

#[path = "../../../operator/bundle/tests/server/mod.rs"]
#[expect(
    dead_code,
    reason = "cuts, failures and the request log serve other tests"
)]
pub(crate) mod server;
mod upstream;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use kubegrid_e2e::{LabGuard, bundle_dir, describe, kubegrid_bin};
use serde_json::Value;
use server::Server;
use upstream::{HELLO, IMAGE, UpstreamRegistry};

/// What a lab host looks like before kubegrid ever changed it.
const UNTOUCHED: &str = "test ! -e /var/lib/kubegrid && test ! -e /etc/containerd && test ! -e /etc/kubegrid && ! dpkg -s containerd >/dev/null 2>&1 && echo untouched";

/// kubegrid, outside any lab, with packed bundles unpacked under the lab's state directory.
pub(crate) fn kubegrid(lab: &LabGuard, args: &[&str]) -> Output {
    Command::new(kubegrid_bin())
        .env("KUBEGRID_BUNDLE_CACHE", lab.state_dir.join("bundle-cache"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubegrid")
}

pub(crate) fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed:\n{}", describe(&out));
    out
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The lab's spec with spec.bundle: the packed bundle, its key, and the registry on `host`.
fn airgap_spec(lab: &LabGuard, bundle: &Path, public_key: &Path, host: &str) -> PathBuf {
    lab.spec_with("airgap", |c| {
        c["spec"]["bundle"] = serde_yaml::to_value(serde_json::json!({
            "source": s(bundle),
            "publicKeyFile": s(public_key),
            "registry": {"host": host, "port": 5000},
        }))
        .expect("yaml");
    })
}

/// `apply` of `bundle` with the lab's journal: the whole install playbook, API checks skipped.
fn apply(lab: &LabGuard, spec: &Path, bundle: &Path, public_key: &Path) -> Output {
    kubegrid(
        lab,
        &[
            "apply",
            "-f",
            s(spec),
            "-o",
            "json",
            "--bundle",
            s(bundle),
            "--bundle-public-key",
            s(public_key),
            "--journal",
            s(&lab.journal()),
            "--kubeconfig-out",
            s(&lab.state_dir.join("admin.conf")),
            "--skip-check",
            "cluster-api",
        ],
    )
}

/// Unpacks `packed` with plain tar + zstd, lets `edit` change the tree, and packs it again.
fn repack(packed: &Path, out: &Path, edit: impl FnOnce(&Path)) {
    let tree = out.with_extension("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    let status = Command::new("tar")
        .args(["--zstd", "-xf", s(packed), "-C", s(&tree)])
        .status()
        .expect("run tar");
    assert!(status.success(), "tar -x {}", packed.display());
    edit(&tree);
    let status = Command::new("tar")
        .args(["--zstd", "-cf", s(out), "-C", s(&tree), "."])
        .status()
        .expect("run tar");
    assert!(status.success(), "tar -c {}", out.display());
}

fn assert_no_trace(lab: &LabGuard) {
    for h in &lab.hosts {
        assert_eq!(
            lab.ssh_ok(h, UNTOUCHED),
            "untouched",
            "{} was changed",
            h.name
        );
    }
    let out = ok(
        Command::new(kubegrid_bin())
            .args(["history", "-o", "json", "--journal", s(&lab.journal())])
            .output()
            .expect("run kubegrid history"),
        "history",
    );
    let history: Value = serde_json::from_slice(&out.stdout).expect("history JSON");
    assert_eq!(
        history["operations"].as_array().map(Vec::len),
        Some(0),
        "a refused apply recorded an operation: {history}"
    );
}

#[test]
fn airgap_signed_packed_bundle_refusals_and_a_pull_through_the_bundle_registry() {
    let e2e = bundle_dir();
    let files = upstream::bundle_files(&e2e);
    let kubernetes = files
        .iter()
        .find(|f| f.name == "kubeadm")
        .expect("kubeadm in the e2e bundle")
        .version
        .clone();
    let busybox = files
        .iter()
        .find(|f| f.kind == "rootfs")
        .expect("a rootfs in the e2e bundle");

    // The upstream stand-in and the build, on this machine only; lab hosts have no route
    // beyond the lab bridge.
    let lab = LabGuard::up(2);
    for h in &lab.hosts {
        assert_eq!(
            lab.ssh_ok(h, "ip -4 route show default; ip -6 route show default"),
            "",
            "{} has a default route",
            h.name
        );
    }
    let work = lab.state_dir.join("airgap");
    std::fs::create_dir_all(&work).expect("mkdir");
    let files_upstream = Server::start();
    let registry = UpstreamRegistry::start();
    let digest = upstream::push_test_image(&registry, &e2e.join(&busybox.path), &work);
    let sources = work.join("sources.yaml");
    std::fs::write(
        &sources,
        upstream::serve_and_pin(&files_upstream, &e2e, &files, &kubernetes, &digest),
    )
    .expect("write sources");
    let (key, public) = (work.join("signing.key"), work.join("signing.key.pub"));
    ok(
        kubegrid(
            &lab,
            &[
                "bundle",
                "keygen",
                "--private",
                s(&key),
                "--public",
                s(&public),
            ],
        ),
        "keygen",
    );
    let packed = work.join("bundle.tar.zst");
    let out = ok(
        kubegrid(
            &lab,
            &[
                "bundle",
                "build",
                "--sources",
                s(&sources),
                "--k8s-version",
                &kubernetes,
                "--arch",
                "amd64",
                "--mirror",
                &files_upstream.url(),
                "--image-mirror",
                &registry.url(),
                "--sign-key",
                s(&key),
                "--out",
                s(&packed),
                "-o",
                "json",
            ],
        ),
        "bundle build",
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("build report JSON");
    assert_eq!(report["signed"], true, "{report}");
    assert_eq!(report["artifacts"], files.len(), "{report}");
    assert_eq!(report["images"], 1, "{report}");
    ok(
        kubegrid(
            &lab,
            &["bundle", "verify", s(&packed), "--public-key", s(&public)],
        ),
        "bundle verify of the packed bundle",
    );
    let spec = airgap_spec(&lab, &packed, &public, "lab-1");

    // Refusals, before any host is touched.
    // containerd's release archive, where the bundle keeps it (its upstream URL's path).
    let archive = files
        .iter()
        .find(|f| f.name == "containerd")
        .expect("containerd in the e2e bundle");
    let archive_path = format!(
        "github.com/containerd/containerd/releases/download/v{v}/containerd-{v}-linux-amd64.tar.gz",
        v = archive.version
    );
    let corrupted = work.join("corrupted.tar.zst");
    repack(&packed, &corrupted, |tree| {
        let path = tree.join(&archive_path);
        let mut bytes = std::fs::read(&path).expect("read containerd archive");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&path, bytes).expect("write containerd archive");
    });
    let (other, other_public) = (work.join("other.key"), work.join("other.key.pub"));
    ok(
        kubegrid(
            &lab,
            &[
                "bundle",
                "keygen",
                "--private",
                s(&other),
                "--public",
                s(&other_public),
            ],
        ),
        "keygen",
    );
    let resigned = work.join("other-signer.tar.zst");
    repack(&packed, &resigned, |tree| {
        ok(
            kubegrid(&lab, &["bundle", "sign", s(tree), "--key", s(&other)]),
            "bundle sign with another key",
        );
    });
    for (bundle, names) in [
        (&corrupted, archive_path.as_str()),
        (&resigned, "signature"),
    ] {
        let out = apply(&lab, &spec, bundle, &public);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(names),
            "the refusal should name `{names}`:\n{}",
            describe(&out)
        );
    }
    assert_no_trace(&lab);

    // The happy path: the whole playbook from the signed packed bundle.
    let out = apply(&lab, &spec, &packed, &public);
    assert!(out.status.success(), "apply failed:\n{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("apply report JSON");
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().expect("phase name"))
        .collect();
    assert!(phases.contains(&"registry"), "{phases:?}");

    // lab-2 pulls the image by its upstream name: containerd's certs.d config sends it to the
    // registry kubegrid runs on lab-1 (there is no route to registry.k8s.io). `--local`: ctr
    // 2.x otherwise pulls through the daemon's transfer service, which unpacks only into the
    // snapshotters its config lists, and the native one is not among them.
    let (registry_host, puller) = (lab.host("lab-1"), lab.host("lab-2"));
    let hosts_toml = lab.ssh_ok(
        puller,
        "cat /etc/containerd/certs.d/registry.k8s.io/hosts.toml",
    );
    assert!(
        hosts_toml.contains(&format!("https://{}:5000", registry_host.address))
            && !hosts_toml.contains("server ="),
        "{hosts_toml}"
    );
    let listed = lab.ssh_ok(
        puller,
        &format!(
            "ctr -n k8s.io images pull --local --snapshotter native --hosts-dir /etc/containerd/certs.d {IMAGE} >/dev/null && ctr -n k8s.io images ls | awk '$1 == \"{IMAGE}\" {{print $3}}'"
        ),
    );
    assert_eq!(listed, digest, "lab-2 pulled another image");
    // The native snapshotter: lab hosts' root file system is itself an overlay, on which
    // containerd's overlayfs snapshotter cannot mount.
    let printed = lab.ssh_ok(
        puller,
        &format!("ctr -n k8s.io run --rm --snapshotter native {IMAGE} kg-airgap-hello"),
    );
    assert_eq!(printed, HELLO);
}
