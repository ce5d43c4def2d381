//! `kubegrid bundle`: keygen → sign → verify succeeds, a tampered artifact exits 2 naming it,
//! and inspect/diff print compact tables (golden files under tests/golden/, regenerate with
//! UPDATE_GOLDEN=1).

use std::{fs, path::Path, process::Command};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn kubegrid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .output()
        .expect("run kubegrid")
}

/// A bundle in `dir` with the given (path, name, version, content) binaries for amd64.
fn bundle(dir: &Path, files: &[(&str, &str, &str, &[u8])]) -> String {
    let mut manifest = String::from("version: 1\nname: cli-test\nfiles:\n");
    for (path, name, version, content) in files {
        let full = dir.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, content).unwrap();
        manifest.push_str(&format!(
            "  - {{path: {path}, sha256: {}, size: {}, arch: amd64, kind: binary, name: {name}, version: \"{version}\"}}\n",
            hex::encode(Sha256::digest(content)),
            content.len()
        ));
    }
    fs::write(dir.join("manifest.yaml"), manifest).unwrap();
    dir.to_str().unwrap().to_string()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn golden(name: &str, actual: &[u8]) {
    let actual = String::from_utf8_lossy(actual);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual.as_bytes()).unwrap();
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}

#[test]
fn keygen_sign_verify_and_a_tampered_artifact_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let dir = bundle(
        &dir,
        &[
            ("bin/amd64/kubeadm", "kubeadm", "1.31.4", b"kubeadm bytes"),
            ("bin/amd64/kubelet", "kubelet", "1.31.4", b"kubelet bytes"),
        ],
    );
    let private = tmp.path().join("k").to_str().unwrap().to_string();
    let public = tmp.path().join("k.pub").to_str().unwrap().to_string();

    let out = kubegrid(&[
        "bundle",
        "keygen",
        "--private",
        &private,
        "--public",
        &public,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let fingerprint = json(&out)["fingerprint"].as_str().unwrap().to_string();
    let out = kubegrid(&[
        "bundle",
        "keygen",
        "--private",
        &private,
        "--public",
        &public,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an existing key is never replaced"
    );

    let out = kubegrid(&["bundle", "sign", &dir, "--key", &private, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let verify = || {
        kubegrid(&[
            "bundle",
            "verify",
            &dir,
            "--public-key",
            &public,
            "-o",
            "json",
        ])
    };
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json(&out);
    assert_eq!(report["keyFingerprint"], fingerprint.as_str());
    assert_eq!(report["artifacts"], 2);

    let kubelet = Path::new(&dir).join("bin/amd64/kubelet");
    fs::write(&kubelet, b"KUBELET bytes").unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let doc = json(&out);
    assert_eq!(doc["error"]["exitCode"], 2);
    let causes = doc["error"]["causes"].to_string();
    assert!(
        causes.contains(&kubelet.display().to_string()) && causes.contains("sha256"),
        "{doc}"
    );
}

#[test]
fn inspect_and_diff_print_compact_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let a = bundle(
        &tmp.path().join("a"),
        &[
            ("bin/amd64/kubeadm", "kubeadm", "1.31.4", b"kubeadm bytes"),
            ("bin/amd64/etcd", "etcd", "3.4.23", b"etcd bytes"),
        ],
    );
    let b = bundle(
        &tmp.path().join("b"),
        &[
            (
                "bin/amd64/kubeadm",
                "kubeadm",
                "1.32.0",
                b"kubeadm 1.32 bytes",
            ),
            ("bin/amd64/crictl", "crictl", "1.31.1", b"crictl bytes"),
        ],
    );
    let out = kubegrid(&["bundle", "inspect", &a]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    golden("bundle-inspect.txt", &out.stdout);
    let out = kubegrid(&["bundle", "diff", &a, &b]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    golden("bundle-diff.txt", &out.stdout);
}
