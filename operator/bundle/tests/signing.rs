//! keygen, sign and verify on small fake bundles: the good path and every refusal.

mod common;

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use kubegrid_bundle::{Error, SIGNATURE_FILE, generate_key, sign, verify};
use tempfile::TempDir;

struct Fixture {
    _tmp: TempDir,
    bundle: std::path::PathBuf,
    private: std::path::PathBuf,
    public: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    common::sample(&bundle);
    let private = tmp.path().join("bundle.key");
    let public = tmp.path().join("bundle.pub");
    generate_key(&private, &public).unwrap();
    Fixture {
        _tmp: tmp,
        bundle,
        private,
        public,
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_signed_bundle_verifies() {
    let f = fixture();
    let sig = sign(&f.bundle, &f.private).unwrap();
    assert_eq!(sig, f.bundle.join(SIGNATURE_FILE));
    let line = std::fs::read_to_string(&sig).unwrap();
    assert!(
        line.starts_with("ed25519 ") && line.ends_with('\n') && line.lines().count() == 1,
        "{line:?}"
    );
    let report = verify(&f.bundle, &f.public).unwrap();
    assert_eq!(report.artifacts, 4);
    assert_eq!(report.name.as_deref(), Some("test-amd64"));
    assert!(report.key_fingerprint.starts_with("SHA256:"));
    assert_eq!(report.manifest_sha256.len(), 64);
}

#[test]
fn a_changed_manifest_byte_breaks_the_signature() {
    let f = fixture();
    sign(&f.bundle, &f.private).unwrap();
    // Inside the first entry's `# test artifact` comment: the manifest still parses and every
    // artifact still matches, so only the signature can catch it.
    let manifest = f.bundle.join("manifest.yaml");
    let at = std::fs::read_to_string(&manifest)
        .unwrap()
        .find("test artifact")
        .unwrap();
    flip_byte(&manifest, at);
    let err = verify(&f.bundle, &f.public).unwrap_err();
    assert!(matches!(err, Error::SignatureMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("does not match manifest") && message.contains("manifest.yaml"),
        "{message}"
    );
}

#[test]
fn a_changed_artifact_is_named_with_both_checksums() {
    let f = fixture();
    sign(&f.bundle, &f.private).unwrap();
    let runc = f.bundle.join("debs/amd64/runc.deb");
    flip_byte(&runc, 0);
    let err = verify(&f.bundle, &f.public).unwrap_err();
    let Error::Artifacts { source, .. } = &err else {
        panic!("expected an artifact error, got {err:?}");
    };
    let cause = source.to_string();
    assert!(
        cause.contains(&runc.display().to_string()) && cause.contains("sha256 is"),
        "{cause}"
    );
    use sha2::Digest as _;
    let expected = hex::encode(sha2::Sha256::digest(b"runc package bytes"));
    assert!(cause.contains(&expected), "{cause}");
}

#[test]
fn another_key_is_refused() {
    let f = fixture();
    sign(&f.bundle, &f.private).unwrap();
    let other_private = f.bundle.parent().unwrap().join("other.key");
    let other_public = f.bundle.parent().unwrap().join("other.pub");
    let other = generate_key(&other_private, &other_public).unwrap();
    let err = verify(&f.bundle, &other_public).unwrap_err();
    assert!(matches!(err, Error::SignatureMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&other.fingerprint()), "{err}");
}

#[test]
fn an_unsigned_bundle_is_refused() {
    let f = fixture();
    let err = verify(&f.bundle, &f.public).unwrap_err();
    assert!(matches!(err, Error::NoSignature { .. }), "{err:?}");
    assert!(err.to_string().contains("is not signed"), "{err}");
}

#[test]
fn a_corrupt_bundle_is_never_signed() {
    let f = fixture();
    flip_byte(&f.bundle.join("bin/arm64/etcd"), 3);
    let err = sign(&f.bundle, &f.private).unwrap_err();
    assert!(matches!(err, Error::Artifacts { .. }), "{err:?}");
    assert!(!f.bundle.join(SIGNATURE_FILE).exists());
}

#[test]
fn keygen_writes_a_private_key_only_the_owner_reads_and_never_overwrites() {
    let f = fixture();
    let mode = std::fs::metadata(&f.private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let private_text = std::fs::read_to_string(&f.private).unwrap();
    assert!(private_text.starts_with("# "), "{private_text}");
    assert_eq!(private_text.lines().count(), 2);
    let public_text = std::fs::read_to_string(&f.public).unwrap();
    assert!(public_text.starts_with("kubegrid-bundle-ed25519 "));
    assert_eq!(public_text.lines().count(), 1);

    let fresh_public = f.private.with_file_name("fresh.pub");
    let err = generate_key(&f.private, &fresh_public).unwrap_err();
    assert!(
        matches!(err, Error::KeyExists { ref path } if *path == f.private),
        "{err:?}"
    );
    assert!(!fresh_public.exists(), "nothing is written when refusing");
    assert_eq!(std::fs::read_to_string(&f.private).unwrap(), private_text);
    let err = generate_key(&f.private.with_file_name("fresh.key"), &f.public).unwrap_err();
    assert!(
        matches!(err, Error::KeyExists { ref path } if *path == f.public),
        "{err:?}"
    );
}

#[test]
fn swapped_or_garbled_key_files_are_named() {
    let f = fixture();
    // The public key where the private one belongs, and the other way round.
    let err = sign(&f.bundle, &f.public).unwrap_err();
    assert!(
        matches!(err, Error::MalformedKey { .. }) && err.to_string().contains("public key"),
        "{err}"
    );
    let err = verify(&f.bundle, &f.private).unwrap_err();
    assert!(
        matches!(err, Error::MalformedKey { .. }) && err.to_string().contains("private key"),
        "{err}"
    );
    let short = f.public.with_file_name("short.pub");
    std::fs::write(&short, "kubegrid-bundle-ed25519 AAAA\n").unwrap();
    let err = verify(&f.bundle, &short).unwrap_err().to_string();
    assert!(
        err.contains("short.pub") && err.contains("3 bytes") && err.contains("32"),
        "{err}"
    );
}

#[test]
fn a_garbled_signature_file_is_named() {
    let f = fixture();
    std::fs::write(f.bundle.join(SIGNATURE_FILE), "rsa AAAA\n").unwrap();
    let err = verify(&f.bundle, &f.public).unwrap_err();
    assert!(matches!(err, Error::MalformedSignature { .. }), "{err:?}");
    assert!(err.to_string().contains("`rsa AAAA`"), "{err}");
}
