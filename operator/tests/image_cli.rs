//! `kubegrid image build` refusals: a dynamically linked binary (the kubegrid under test is
//! one), no amd64 binary, a malformed `--binary`, a bundle whose manifest format cannot list
//! images. Each exits 2, names the input and the fix, and writes nothing. The image itself
//! is built from the static binary in the e2e test (e2e/tests/e2e/operator_image.rs).

use std::{path::Path, process::Command};

fn image_build(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(["image", "build"])
        .args(args)
        .output()
        .expect("run kubegrid");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(args: &[&str], needles: &[&str]) {
    let (code, stderr) = image_build(args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{args:?}: {stderr} lacks {needle}");
    }
}

#[test]
fn a_dynamically_linked_binary_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let binary = format!("amd64={}", env!("CARGO_BIN_EXE_kubegrid"));
    refused(
        &["--binary", &binary, "--layout", layout.to_str().unwrap()],
        &[
            "dynamically linked",
            "the image holds no shared libraries",
            "+crt-static",
            env!("CARGO_BIN_EXE_kubegrid"),
        ],
    );
    assert!(!layout.exists(), "a layout was created for a refused build");
}

#[test]
fn missing_or_malformed_binaries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("layout");
    let out = out.to_str().unwrap();
    refused(
        &["--binary", "arm64=/nonexistent/kubegrid", "--layout", out],
        &["no amd64 binary", "--binary amd64=PATH"],
    );
    refused(
        &["--binary", "x86=/bin/true", "--layout", out],
        &["`x86` is not amd64 or arm64"],
    );
    refused(
        &["--binary", "/bin/true", "--layout", out],
        &["expected ARCH=PATH"],
    );
    refused(
        &[
            "--binary",
            "amd64=/nonexistent/kubegrid",
            "--binary",
            "amd64=/bin/true",
            "--layout",
            out,
        ],
        &["amd64 is given twice"],
    );
    refused(
        &["--binary", "amd64=/nonexistent/kubegrid", "--layout", out],
        &["failed to read the amd64 binary /nonexistent/kubegrid"],
    );
    refused(&["--binary", "amd64=/bin/true"], &["--layout"]);
    assert!(!Path::new(out).exists());
}

#[test]
fn a_bundle_manifest_of_format_1_cannot_list_the_image() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("manifest.yaml"),
        "version: 1\nname: t\nfiles: []\n",
    )
    .unwrap();
    refused(
        &[
            "--binary",
            "amd64=/bin/true",
            "--bundle",
            dir.path().to_str().unwrap(),
        ],
        &[
            "its manifest is format 1",
            "expected format 2",
            "--layout DIR",
        ],
    );
    assert!(!dir.path().join("images").exists());
}
