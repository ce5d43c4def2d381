//! Helpers shared by the test modules: the openssl command line and golden files.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use tempfile::TempDir;

/// One day.
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether `openssl` runs; tests that need it print why they skip when it does not, and
/// fail instead in CI (see [`tool_available`]).
pub fn openssl_available(test: &str) -> bool {
    tool_available("openssl", &["version"], test, in_ci())
}

/// Whether `CI` is set to anything but empty, `0` or `false`, as CI systems (and .ci/run) do.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Whether `program args` runs and succeeds. When it does not, a developer's run prints
/// SKIPPED and the test passes without checking anything; in CI (`ci`) that would hide a
/// missing install step behind a green run, so the test fails instead, naming the program.
pub fn tool_available(program: &str, args: &[&str], test: &str, ci: bool) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !ci,
            "{test}: the {program} command is not installed, and CI must run this check \
             (.ci/setup installs it)"
        );
        eprintln!("SKIPPED {test}: the {program} command is not installed");
    }
    ok
}

/// A scratch directory holding PEM files for openssl.
pub struct Scratch {
    dir: TempDir,
}

impl Scratch {
    /// A new empty directory.
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// Writes `content` to `name` in the directory and returns its path.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, content).expect("write scratch file");
        path
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs openssl with `args` in the scratch directory.
pub fn openssl(scratch: &Scratch, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(scratch.path())
        .output()
        .expect("run openssl")
}

/// Runs openssl and returns stdout, failing the test on a non-zero exit.
pub fn openssl_ok(scratch: &Scratch, args: &[&str]) -> String {
    let out = openssl(scratch, args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl output is UTF-8")
}

/// A self-signed P-256 certificate made by `openssl req` for `subject`, valid 10 days, with
/// `extra` arguments; returns (certificate PEM, PKCS#8 key PEM).
pub fn openssl_self_signed(subject: &str, extra: &[&str]) -> (String, String) {
    let scratch = Scratch::new();
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "10",
        "-subj",
        subject,
    ];
    args.extend_from_slice(extra);
    openssl_ok(&scratch, &args);
    let read =
        |name: &str| fs::read_to_string(scratch.path().join(name)).expect("read openssl output");
    (read("cert.pem"), read("key.pem"))
}

/// `openssl verify -CAfile ca [-purpose purpose] leaf`: Ok(()) when the chain verifies, else the
/// tool's complaint.
pub fn verify(ca_pem: &str, leaf_pem: &str, purpose: Option<&str>) -> Result<(), String> {
    let scratch = Scratch::new();
    scratch.file("ca.pem", ca_pem);
    scratch.file("leaf.pem", leaf_pem);
    let mut args = vec!["verify", "-CAfile", "ca.pem"];
    if let Some(purpose) = purpose {
        args.extend(["-purpose", purpose]);
    }
    args.push("leaf.pem");
    let out = openssl(&scratch, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("leaf.pem: OK") {
        Ok(())
    } else {
        Err(text)
    }
}

/// Asserts that `leaf_pem` chains to `ca_pem` (for `purpose` when given).
pub fn assert_verifies(ca_pem: &str, leaf_pem: &str, purpose: Option<&str>) {
    if let Err(text) = verify(ca_pem, leaf_pem, purpose) {
        panic!("openssl verify (purpose {purpose:?}) rejected the chain: {text}");
    }
}

/// The public key of a certificate and of a private key, as openssl prints them, so a test can
/// check that the two belong together.
pub fn public_keys(cert_pem: &str, key_pem: &str) -> (String, String) {
    let scratch = Scratch::new();
    scratch.file("cert.pem", cert_pem);
    scratch.file("key.pem", key_pem);
    (
        openssl_ok(&scratch, &["x509", "-in", "cert.pem", "-noout", "-pubkey"]),
        openssl_ok(&scratch, &["pkey", "-in", "key.pem", "-pubout"]),
    )
}

/// Compares `actual` with a golden file under tests/golden; UPDATE_GOLDEN=1 rewrites it.
pub fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is unreadable ({e}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "rendered output differs from {}; if the change is intended, regenerate with UPDATE_GOLDEN=1\n--- rendered ---\n{actual}",
        path.display()
    );
}

#[test]
fn a_missing_tool_skips_for_a_developer() {
    assert!(!tool_available(
        "kubegrid-no-such-program",
        &[],
        "a_missing_tool_skips_for_a_developer",
        false
    ));
}

#[test]
#[should_panic(expected = "the kubegrid-no-such-program command is not installed, and CI must run")]
fn a_missing_tool_fails_in_ci() {
    tool_available(
        "kubegrid-no-such-program",
        &[],
        "a_missing_tool_fails_in_ci",
        true,
    );
}
