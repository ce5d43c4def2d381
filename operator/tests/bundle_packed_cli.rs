//! Packed bundles on the command line: `bundle build --sign-key` packs a signed bundle;
//! `bundle verify`, `bundle inspect` and `apply`/`plan --bundle` take the .tar.zst, unpacking
//! it once into the bundle cache; a truncated or corrupt archive, a corrupted artifact and a
//! signature by another key each exit 2 before any host is contacted (the spec's Node is in
//! TEST-NET-1, never reached).

#[path = "../bundle/tests/server/mod.rs"]
#[expect(
    dead_code,
    reason = "cuts, failures and the request log serve other tests"
)]
mod server;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;
use server::Server;
use sha2::{Digest as _, Sha256};

const KUBEADM: &str = "/dl.k8s.io/release/v1.31.4/bin/linux/amd64/kubeadm";

const SOURCES: &str = r#"version: 1
components:
  kubernetes:
    artifacts:
      - name: kubeadm
        kind: binary
        url: https://dl.k8s.io/release/v{v}/bin/linux/{arch}/kubeadm
        checksum: {file: "{url}.sha256", format: single}
releases:
  "1.31.4":
    components: {kubernetes: 1.31.4}
"#;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs kubegrid with its bundle cache in `cache`.
fn kubegrid(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .env("KUBEGRID_BUNDLE_CACHE", cache)
        .args(args)
        .output()
        .expect("run kubegrid")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    _server: Server,
    cache: PathBuf,
    packed: PathBuf,
    public: String,
}

impl Fixture {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        kubegrid(&self.cache, args)
    }
}

/// A key pair and a signed packed bundle built from a loopback upstream.
fn signed_bundle() -> Fixture {
    let server = Server::start();
    let kubeadm: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    server.put(KUBEADM, kubeadm.clone());
    server.put(&format!("{KUBEADM}.sha256"), sha(&kubeadm));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let sources = dir.path().join("sources.yaml");
    std::fs::write(&sources, SOURCES).unwrap();
    let (private, public) = (
        dir.path().join("k").to_str().unwrap().to_string(),
        dir.path().join("k.pub").to_str().unwrap().to_string(),
    );
    let out = kubegrid(
        &cache,
        &[
            "bundle",
            "keygen",
            "--private",
            &private,
            "--public",
            &public,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let packed = dir.path().join("b.tar.zst");
    let out = kubegrid(
        &cache,
        &[
            "bundle",
            "build",
            "--k8s-version",
            "1.31.4",
            "--mirror",
            &server.url(),
            "--sources",
            sources.to_str().unwrap(),
            "--sign-key",
            &private,
            "--out",
            packed.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["signed"], true, "{report}");
    Fixture {
        dir,
        _server: server,
        cache,
        packed,
        public,
    }
}

/// A spec whose one Node is in TEST-NET-1: anything that got as far as connecting would fail
/// differently (exit 4), so exit 2 proves the refusal came first.
fn spec(dir: &Path) -> String {
    std::fs::write(dir.join("key"), "not really a key, but readable").unwrap();
    let text = "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {name: t}
spec:
  kubernetesVersion: v1.31.4
  controlPlaneEndpoint: {address: 192.0.2.10, port: 6443}
  network: {podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}
  containerRuntime: {containerd: {version: \"1.6\"}}
  ssh: {privateKeyFile: key}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {name: n1}
spec: {clusterName: t, address: 192.0.2.10, roles: [control-plane, etcd, worker]}
";
    let path = dir.join("spec.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Unpacks `f.packed`, lets `edit` change the tree, and packs it as `name`.
fn repacked(f: &Fixture, name: &str, edit: impl FnOnce(&Path)) -> String {
    let tree = f.dir.path().join(format!("{name}.tree"));
    kubegrid_bundle::unpack(&f.packed, &tree).unwrap();
    edit(&tree);
    let out = f.dir.path().join(name);
    kubegrid_bundle::pack(&tree, &out).unwrap();
    out.to_str().unwrap().to_string()
}

#[test]
fn a_signed_packed_bundle_verifies_and_inspects_from_one_cached_unpack() {
    let f = signed_bundle();
    let packed = f.packed.to_str().unwrap();
    let out = f.run(&["bundle", "verify", packed, "--public-key", &f.public]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verified: signed by"),
        "{}",
        text(&out)
    );
    let out = f.run(&["bundle", "inspect", packed, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["signed"], true, "{seen}");
    assert_eq!(seen["kubernetes"], "1.31.4", "{seen}");

    // Both commands used one unpacked tree, named by the packed file's sha256.
    let entries: Vec<String> = std::fs::read_dir(&f.cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        [sha(&std::fs::read(&f.packed).unwrap())],
        "{entries:?}"
    );

    // Another key's public half does not verify it.
    let (other, other_pub) = (f.path("o"), f.path("o.pub"));
    let out = f.run(&[
        "bundle",
        "keygen",
        "--private",
        &other,
        "--public",
        &other_pub,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = f.run(&["bundle", "verify", packed, "--public-key", &other_pub]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        text(&out)
    );
}

#[test]
fn truncated_and_corrupt_archives_exit_2_naming_the_file() {
    let f = signed_bundle();
    let bytes = std::fs::read(&f.packed).unwrap();
    let truncated = f.path("truncated.tar.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = f.path("garbage.tar.zst");
    std::fs::write(&garbage, b"this is not zstd at all").unwrap();
    for bad in [&truncated, &garbage] {
        let out = f.run(&["bundle", "verify", bad, "--public-key", &f.public]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("unpacking {bad}")) || stderr.contains(bad.as_str()),
            "{}",
            text(&out)
        );
        let spec = spec(f.dir.path());
        let out = f.run(&[
            "apply",
            "-f",
            &spec,
            "--bundle",
            bad,
            "--bundle-public-key",
            &f.public,
            "--journal",
            &f.path("journal.db"),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }
    // Nothing half-unpacked is left for a later run to trust.
    let left: Vec<_> = std::fs::read_dir(&f.cache)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(!Path::new(&f.path("journal.db")).exists());
}

#[test]
fn apply_and_plan_refuse_a_packed_bundle_with_a_corrupted_artifact_or_another_signer() {
    let f = signed_bundle();
    let spec = spec(f.dir.path());
    let artifact = "dl.k8s.io/release/v1.31.4/bin/linux/amd64/kubeadm";
    let corrupted = repacked(&f, "corrupted.tar.zst", |tree| {
        let path = tree.join(artifact);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    });
    let (other, other_pub) = (f.path("o"), f.path("o.pub"));
    let out = f.run(&[
        "bundle",
        "keygen",
        "--private",
        &other,
        "--public",
        &other_pub,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let resigned = repacked(&f, "resigned.tar.zst", |tree| {
        kubegrid_bundle::sign(tree, Path::new(&other)).unwrap();
    });
    for (bundle, want) in [(&corrupted, artifact), (&resigned, "signature")] {
        for verb in ["apply", "plan"] {
            let out = f.run(&[
                verb,
                "-f",
                &spec,
                "--bundle",
                bundle,
                "--bundle-public-key",
                &f.public,
                "--journal",
                &f.path("journal.db"),
            ]);
            assert_eq!(out.status.code(), Some(2), "{verb}: {}", text(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(want),
                "{verb} should name `{want}`: {}",
                text(&out)
            );
            // The file the user gave, never the cache it was unpacked into.
            assert!(stderr.contains(bundle.as_str()), "{}", text(&out));
            assert!(
                !stderr.contains(f.cache.to_str().unwrap()),
                "names the cache: {}",
                text(&out)
            );
        }
    }
    let out = f.run(&["bundle", "verify", &corrupted, "--public-key", &f.public]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains(&format!("{corrupted}:{artifact}")),
        "{}",
        text(&out)
    );
    assert!(
        !stderr.contains(f.cache.to_str().unwrap()),
        "{}",
        text(&out)
    );
    assert!(!Path::new(&f.path("journal.db")).exists());
}
