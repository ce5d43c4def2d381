//! `apply`/`plan` check the bundle against the spec, and the SSH key files, before any host
//! is contacted: exit 2 with one message naming the Node, the arch, what is missing, what the
//! bundle has and which bundle to build; nothing is journaled. The Nodes are in TEST-NET-1,
//! which no test reaches: every case here is refused first.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sha2::{Digest as _, Sha256};

/// An unencrypted ed25519 key made for these tests; it opens nothing.
const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDukh3QmXRnOE9cr56L7bAf8fh5r06h3KBwoIOI5+CurAAAAIivjWS1r41k
tQAAAAtzc2gtZWQyNTUxOQAAACDukh3QmXRnOE9cr56L7bAf8fh5r06h3KBwoIOI5+CurA
AAAEAvUbjonF2VPAxzhvc8p5zQLOH4VazowdnSwLRuYdb+4+6SHdCZdGc4T1yvnovtsB/x
+HmvTqHcoHCgg4jn4K6sAAAABHRlc3QB
-----END OPENSSH PRIVATE KEY-----
";

/// The same kind of key, encrypted with the passphrase `secret`.
const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABCf6UAChx
GsKJwHkQ1eDc6IAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIO1Qmmi3pyq2QqRg
9vX63uVzdOdrulkbSUnXwNYCkHpyAAAAkGBLx2mbnQFiCoXJQhu+ZHWBpUIFl2pRYG573D
qsxyQ6/GGI4YNzE4yWi3NRih9TR0FfIhjKhmdTEGSImgXAlW3tRNCqvZeq7yqWcgJ7sB9B
iUu7ObxZs2bYy9PH3tFgSjtL4M4QdKPmFOqyA/pUlmo7upV2RNR60Px7u3cI1/q87aG6e4
bQJnTvorqaWv1v/A==
-----END OPENSSH PRIVATE KEY-----
";

/// Every artifact the install playbook takes from a bundle, as (kind, name, version).
const ALL: &[(&str, &str, &str)] = &[
    ("archive", "containerd", "1.7.24"),
    ("binary", "runc", "1.1.12"),
    ("rootfs", "busybox", "1.36"),
    ("binary", "kubeadm", "1.31.4"),
    ("binary", "kubelet", "1.31.4"),
    ("binary", "kubectl", "1.31.4"),
    ("binary", "crictl", "1.31.1"),
    ("binary", "etcd", "3.5.15"),
    ("binary", "etcdctl", "3.5.15"),
    ("archive", "cni-plugins", "1.5.1"),
];

fn kubegrid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .env_remove("KUBEGRID_SSH_PASSPHRASE")
        .args(args)
        .output()
        .expect("run kubegrid")
}

/// A bundle at `dir/bundle` with the `entries` for `arch`.
fn bundle(dir: &Path, arch: &str, entries: &[(&str, &str, &str)]) -> PathBuf {
    let root = dir.join("bundle");
    fs::create_dir_all(root.join("files")).unwrap();
    let mut manifest = String::from("version: 1\nfiles:\n");
    for (kind, name, version) in entries {
        let content = format!("{kind} {name} {version}");
        fs::write(root.join("files").join(name), &content).unwrap();
        manifest.push_str(&format!(
            "  - {{path: files/{name}, sha256: {}, size: {}, arch: {arch}, kind: {kind}, name: {name}, version: \"{version}\"}}\n",
            hex::encode(Sha256::digest(content.as_bytes())),
            content.len()
        ));
    }
    fs::write(root.join("manifest.yaml"), manifest).unwrap();
    root
}

/// A spec in `dir` for Kubernetes `version`, one Node `n1` (with `node_extra` in its spec),
/// the key `key` (mode `mode`) and the bundle at `dir/bundle`.
fn spec(dir: &Path, version: &str, node_extra: &str, key: &str, mode: u32) -> String {
    let key_path = dir.join("key");
    fs::write(&key_path, key).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(mode)).unwrap();
    let text = format!(
        "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {{name: t}}
spec:
  kubernetesVersion: {version}
  controlPlaneEndpoint: {{address: 192.0.2.10, port: 6443}}
  network: {{podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}}
  containerRuntime: {{containerd: {{version: \"1.7\"}}}}
  bundle: {{source: bundle}}
  ssh: {{privateKeyFile: key}}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {{name: n1}}
spec: {{clusterName: t, address: 192.0.2.10, roles: [control-plane, etcd, worker]{node_extra}}}
"
    );
    let path = dir.join("spec.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `verb -f spec --insecure-bundle`; returns exit code and stderr.
fn run(dir: &Path, verb: &str, spec: &str, extra: &[&str]) -> (Option<i32>, String) {
    let journal = dir.join("journal.db");
    let mut args = vec![
        verb,
        "-f",
        spec,
        "--insecure-bundle",
        "--journal",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = kubegrid(&args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bundle_without_kubeadm_is_refused_once_before_any_host_and_nothing_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let without: Vec<_> = ALL
        .iter()
        .copied()
        .filter(|(_, n, _)| *n != "kubeadm")
        .collect();
    bundle(dir.path(), "amd64", &without);
    let spec = spec(dir.path(), "v1.31.4", "", KEY, 0o600);
    for verb in ["apply", "plan"] {
        let (code, err) = run(dir.path(), verb, &spec, &[]);
        assert_eq!(code, Some(2), "{verb}: {err}");
        assert!(err.contains("does not fit the spec"), "{err}");
        assert!(
            err.contains("Node n1 (arch not declared; closest: amd64) needs, in phase kubernetes-packages: binary kubeadm"),
            "{err}"
        );
        assert!(
            err.contains("the bundle has: ") && err.contains("archive containerd 1.7.24 (amd64)"),
            "packages are listed too: {err}"
        );
        assert!(
            err.contains(
                "hint: build a bundle for this spec: kubegrid bundle build --k8s-version 1.31.4"
            ),
            "{err}"
        );
        assert_eq!(
            err.matches("binary kubeadm").count(),
            1,
            "printed once: {err}"
        );
    }
    // Preparing the hosts only needs no Kubernetes binaries: past the bundle, the key check
    // is next (this key is fine), and the run would connect, so stop at a bad key instead.
    let spec = self::spec(dir.path(), "v1.31.4", "", "", 0o600);
    let (code, err) = run(dir.path(), "plan", &spec, &["--until", "container-runtime"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("does not fit"), "{err}");
    assert!(err.contains("is empty"), "{err}");

    assert!(!dir.path().join("journal.db").exists(), "nothing journaled");
    let journal = dir.path().join("journal.db");
    let out = kubegrid(&[
        "history",
        "--journal",
        journal.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["operations"], serde_json::json!([]));
}

#[test]
fn a_bundle_for_another_arch_or_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), "arm64", ALL);
    let spec = spec(dir.path(), "v1.31.4", ", arch: amd64", KEY, 0o600);
    let (code, err) = run(dir.path(), "plan", &spec, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("Node n1 (amd64; the bundle has no files for amd64) needs, in phase container-runtime: archive containerd"),
        "{err}"
    );
    assert!(err.contains("--arch amd64"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), "amd64", ALL);
    let spec = self::spec(dir.path(), "v1.31.5-rc.0", "", KEY, 0o600);
    let (code, err) = run(dir.path(), "apply", &spec, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("spec.kubernetesVersion is v1.31.5-rc.0, but the bundle carries Kubernetes kubeadm (amd64) 1.31.4"),
        "{err}"
    );
}

#[test]
fn each_unusable_key_file_is_named_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path(), "amd64", ALL);
    let cases = [
        ("", 0o600, "is empty"),
        (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO6SHdCZdGc4 test\n",
            0o600,
            "is a public key",
        ),
        (
            ENCRYPTED_KEY,
            0o600,
            "is encrypted and $KUBEGRID_SSH_PASSPHRASE is not set",
        ),
        (KEY, 0o644, "is readable by others (mode 0644)"),
    ];
    for (key, mode, want) in cases {
        let spec = spec(dir.path(), "v1.31.4", "", key, mode);
        let (code, err) = run(dir.path(), "apply", &spec, &[]);
        assert_eq!(code, Some(2), "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(err.contains("hint:") || err.contains("hint: "), "{err}");
    }
    // A wrong passphrase is named as such.
    let spec = spec(dir.path(), "v1.31.4", "", ENCRYPTED_KEY, 0o600);
    let journal = dir.path().join("journal.db");
    let out = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .env("KUBEGRID_SSH_PASSPHRASE", "wrong")
        .args(["plan", "-f", &spec, "--insecure-bundle", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not open it"), "{err}");
    assert!(!journal.exists());
}

#[test]
fn a_missing_bundle_path_or_a_directory_without_a_manifest_is_not_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    // The spec's own bundle exists (the spec check wants it); --bundle names the bad one.
    bundle(dir.path(), "amd64", ALL);
    let spec = spec(dir.path(), "v1.31.4", "", KEY, 0o600);
    let key = dir.path().join("k.pub");
    fs::write(&key, "kubegrid-bundle-key ed25519 AAAA").unwrap();
    let missing = dir.path().join("nosuch");
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    for (path, want) in [
        (&missing, "no such file or directory"),
        (&plain, "it has no manifest.yaml"),
    ] {
        for extra in [
            &["--bundle-public-key", key.to_str().unwrap()][..],
            &["--insecure-bundle"],
        ] {
            let mut args = vec!["plan", "-f", &spec, "--bundle", path.to_str().unwrap()];
            args.extend_from_slice(extra);
            let out = kubegrid(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(
                err.contains(&format!("{} is not a bundle: {want}", path.display())),
                "{err}"
            );
            assert!(
                !err.contains("not signed") && !err.contains("bundle sign"),
                "{err}"
            );
        }
        let out = kubegrid(&[
            "bundle",
            "verify",
            path.to_str().unwrap(),
            "--public-key",
            key.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("is not a bundle"), "{err}");
    }
}

#[test]
fn an_artifact_that_is_a_symlink_out_of_the_bundle_is_refused_by_verify_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    let root = bundle(dir.path(), "amd64", ALL);
    let (private, public) = (dir.path().join("k"), dir.path().join("k.pub"));
    let out = kubegrid(&[
        "bundle",
        "keygen",
        "--private",
        private.to_str().unwrap(),
        "--public",
        public.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let sign = || {
        kubegrid(&[
            "bundle",
            "sign",
            root.to_str().unwrap(),
            "--key",
            private.to_str().unwrap(),
        ])
    };
    assert!(sign().status.success());
    // Signed, then the artifact swapped for a link to a file with the very bytes the manifest
    // pins: hashes and signature still match; only the link is wrong.
    let artifact = root.join("files/kubeadm");
    let outside = dir.path().join("outside-kubeadm");
    fs::rename(&artifact, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &artifact).unwrap();
    let out = sign();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "sign refuses it too: {err}");
    assert!(err.contains("is a symlink to"), "{err}");
    let out = kubegrid(&[
        "bundle",
        "verify",
        root.to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("files/kubeadm") && err.contains("regular files inside the bundle"),
        "{err}"
    );
    let spec = spec(dir.path(), "v1.31.4", "", KEY, 0o600);
    let (code, err) = run(dir.path(), "apply", &spec, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a symlink to"), "{err}");

    // A symlinked directory that leads out is refused the same way.
    fs::remove_file(&artifact).unwrap();
    fs::rename(&outside, &artifact).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    fs::rename(root.join("files"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("files")).unwrap();
    let (code, err) = run(dir.path(), "plan", &spec, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("reached through a symlinked directory"),
        "{err}"
    );
}

#[test]
fn a_serving_layer_the_bundle_cannot_run_is_refused_before_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = bundle(dir.path(), "amd64", ALL);
    // The NVIDIA toolkit spec.gpu needs, so that the serving layer is what is missing.
    let toolkit = "deb nvidia-container-toolkit 1.17.8";
    fs::write(root.join("files/nvidia-container-toolkit"), toolkit).unwrap();
    let mut manifest = fs::read_to_string(root.join("manifest.yaml"))
        .unwrap()
        .replacen("version: 1\n", "version: 2\n", 1);
    manifest.push_str(&format!(
        "  - {{path: files/nvidia-container-toolkit, sha256: {}, size: {}, arch: amd64, kind: deb, name: nvidia-container-toolkit, version: \"1.17.8-1\", component: nvidia-container-toolkit}}\n",
        hex::encode(Sha256::digest(toolkit.as_bytes())),
        toolkit.len()
    ));
    fs::write(root.join("manifest.yaml"), manifest).unwrap();
    let path = spec(dir.path(), "v1.31.4", "", KEY, 0o600);
    let text = fs::read_to_string(&path).unwrap().replace(
        "  containerRuntime: {containerd: {version: \"1.7\"}}\n",
        "  containerRuntime: {containerd: {version: \"1.7\"}, runtimes: [runc, nvidia]}\n  gpu: {driver: {source: preinstalled}}\n  serving: {cacheCapacity: 500Gi}\n",
    );
    assert!(text.contains("serving:"), "{text}");
    fs::write(&path, text).unwrap();
    for verb in ["apply", "plan"] {
        let (code, err) = run(dir.path(), verb, &path, &[]);
        assert_eq!(code, Some(2), "{verb}: {err}");
        assert!(
            err.contains("spec.serving: the bundle has no kubegrid image; expected the kubegrid image of this kubegrid"),
            "{verb}: {err}"
        );
        assert!(err.contains("kubegrid image build"), "{err}");
    }
    assert!(!dir.path().join("journal.db").exists(), "nothing journaled");
}
