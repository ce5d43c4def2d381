//! The init container that checks a `pvc://` model before vLLM reads it.
//!
//! A claim's files are not copied through the node cache (a DaemonSet cannot mount every
//! tenant's claims), so nothing else verifies them: the serving pod's `verify-model` init
//! container hashes each file `spec.model.files` lists, in its working directory (the
//! mounted claim), and fails, naming each file that differs or is missing, so that a pod
//! never starts on weights other than the ones the spec pins. The kubelet restarts a failed
//! init container with backoff, so a claim that is fixed later is picked up.
//!
//! It is Python, like the drain hook, because the vLLM image has Python and no guaranteed
//! coreutils; the files travel as arguments (SHA PATH pairs) rather than one environment
//! variable or `sha256sum -c` text, because a single variable is capped at 128 KiB and
//! `sha256sum -c` lines cannot carry a path with a newline unescaped.

use crate::ModelFile;

/// The program, run as `python3 -c PROGRAM SHA256 PATH [SHA256 PATH …]`.
pub const PROGRAM: &str = r#"import hashlib, sys
pairs = list(zip(sys.argv[1::2], sys.argv[2::2]))
failed = 0
for want, path in pairs:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(8 << 20), b""):
                digest.update(block)
    except OSError as e:
        print("verify-model: %r: %s" % (path, e.strerror), flush=True)
        failed += 1
        continue
    if digest.hexdigest() != want:
        print("verify-model: %r: sha256 %s, expected %s" % (path, digest.hexdigest(), want), flush=True)
        failed += 1
if failed:
    print("verify-model: %d of %d files failed their check; vLLM is not started on them" % (failed, len(pairs)), flush=True)
    sys.exit(1)
print("verify-model: %d files verified" % len(pairs), flush=True)
"#;

/// The init container's command for `files`, run in the model's directory.
pub fn command(files: &[ModelFile]) -> Vec<String> {
    let mut cmd = vec!["python3".to_string(), "-c".into(), PROGRAM.into()];
    for f in files {
        cmd.push(f.sha256.clone());
        cmd.push(f.path.clone());
    }
    cmd
}
