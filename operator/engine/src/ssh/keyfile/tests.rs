use std::os::unix::fs::PermissionsExt as _;

use super::*;

/// An unencrypted ed25519 key made for these tests; it opens nothing.
pub(crate) const TEST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDukh3QmXRnOE9cr56L7bAf8fh5r06h3KBwoIOI5+CurAAAAIivjWS1r41k
tQAAAAtzc2gtZWQyNTUxOQAAACDukh3QmXRnOE9cr56L7bAf8fh5r06h3KBwoIOI5+CurA
AAAEAvUbjonF2VPAxzhvc8p5zQLOH4VazowdnSwLRuYdb+4+6SHdCZdGc4T1yvnovtsB/x
+HmvTqHcoHCgg4jn4K6sAAAABHRlc3QB
-----END OPENSSH PRIVATE KEY-----
";

fn key(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn problem(path: &Path) -> String {
    check_key_file("n1", path).unwrap_err().to_string()
}

#[test]
fn a_private_key_of_mode_0600_passes() {
    let dir = tempfile::tempdir().unwrap();
    check_key_file("n1", &key(dir.path(), "k", TEST_KEY, 0o600)).unwrap();
}

#[test]
fn each_kind_of_bad_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = problem(&key(d, "empty", "", 0o600));
    assert!(
        err.contains("n1: private key file") && err.contains("is empty"),
        "{err}"
    );
    let err = problem(&key(d, "pub", "ssh-ed25519 AAAAC3Nza test\n", 0o600));
    assert!(
        err.contains("is a public key") && err.contains("without .pub"),
        "{err}"
    );
    let err = problem(&key(d, "open", TEST_KEY, 0o644));
    assert!(
        err.contains("readable by others (mode 0644)") && err.contains("chmod 600"),
        "{err}"
    );
    let err = problem(&d.join("absent"));
    assert!(err.contains("does not exist"), "{err}");
    let err = problem(d);
    assert!(err.contains("is not a regular file"), "{err}");
    let err = problem(&key(d, "junk", "\u{1}\u{2}binary junk", 0o600));
    assert!(
        err.contains("is not a private key kubegrid can read"),
        "{err}"
    );
    assert!(!err.contains("binary junk"), "no echo of the file: {err}");
}

#[test]
fn every_target_and_bastion_key_is_checked_once() {
    let dir = tempfile::tempdir().unwrap();
    let good = key(dir.path(), "good", TEST_KEY, 0o600);
    let bad = key(dir.path(), "bad", "", 0o600);
    let target = |host: &str, key: &Path, bastion: Option<SshTarget>| SshTarget {
        cluster: "c".into(),
        host: host.into(),
        address: "192.0.2.1".into(),
        port: 22,
        user: "root".into(),
        key_file: Some(key.to_path_buf()),
        password: None,
        sudo: false,
        bastion: bastion.map(Box::new),
    };
    let ok = [target("a", &good, None), target("b", &good, None)];
    check_key_files(&ok).unwrap();
    let behind = [target("a", &good, Some(target("bastion x", &bad, None)))];
    let err = check_key_files(&behind).unwrap_err().to_string();
    assert!(err.starts_with("bastion x: private key file"), "{err}");
}
