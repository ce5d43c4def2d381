//! Detached Ed25519 signatures over a bundle's manifest.yaml.

use std::path::{Path, PathBuf};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use kubegrid_plan::{Bundle, IMAGES_DIR, MANIFEST_FILE, Manifest};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{
    Error, Result,
    fsutil::{Place, write_atomic},
    keys::{abbreviate, read_private_key, read_public_key},
};

/// The signature's file name inside a bundle directory, next to manifest.yaml.
pub const SIGNATURE_FILE: &str = "manifest.yaml.sig";

/// First word of the signature file's one line.
pub const SIGNATURE_PREFIX: &str = "ed25519";

const SIGNATURE_LEN: usize = 64;

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The bundle's name from its manifest.
    pub name: Option<String>,
    /// sha256 of the signed manifest bytes.
    pub manifest_sha256: String,
    /// Fingerprint of the public key the signature verified under.
    pub key_fingerprint: String,
    /// How many artifacts were verified.
    pub artifacts: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Verifies every artifact of the bundle in `dir`, then writes `manifest.yaml.sig`: an Ed25519
/// signature over the exact bytes of manifest.yaml, made with the private key at
/// `private_key_path`. Replaces an older signature. Returns the signature file's path.
pub fn sign(dir: &Path, private_key_path: &Path) -> Result<PathBuf> {
    check_is_bundle(dir)?;
    let pair = read_private_key(private_key_path)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let bytes = read_manifest(&manifest_path)?;
    // A corrupt bundle must never carry a valid signature, so everything is checked first.
    open_matching(dir, &manifest_path, &bytes)?;
    let signature = pair.sign(&bytes);
    let line = format!(
        "{SIGNATURE_PREFIX} {}\n",
        STANDARD.encode(signature.as_ref())
    );
    let path = dir.join(SIGNATURE_FILE);
    write_atomic(&path, line.as_bytes(), 0o644, Place::Replace).map_err(|source| {
        Error::WriteSignature {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

/// Checks the bundle in `dir`: `manifest.yaml.sig` must exist and verify over manifest.yaml
/// under the public key at `public_key_path`, and then every artifact must have the size and
/// sha256 the manifest lists.
pub fn verify(dir: &Path, public_key_path: &Path) -> Result<VerifyReport> {
    open_verified(dir, public_key_path).map(|(_, report)| report)
}

/// [`verify`], returning the opened bundle too, so a caller that goes on to use the bundle
/// (`apply`) hashes every artifact once, not twice.
pub fn open_verified(dir: &Path, public_key_path: &Path) -> Result<(Bundle, VerifyReport)> {
    check_is_bundle(dir)?;
    let key = read_public_key(public_key_path)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let sig_path = dir.join(SIGNATURE_FILE);
    let signature = read_signature(dir, &sig_path)?;
    let bytes = read_manifest(&manifest_path)?;
    let manifest_sha256 = hex::encode(Sha256::digest(&bytes));
    UnparsedPublicKey::new(&ED25519, key.as_bytes())
        .verify(&bytes, &signature)
        .map_err(|_| Error::SignatureMismatch {
            signature: sig_path.clone(),
            manifest: manifest_path.clone(),
            manifest_sha256: manifest_sha256.clone(),
            key_path: public_key_path.to_path_buf(),
            key_fingerprint: key.fingerprint(),
        })?;
    let bundle = open_matching(dir, &manifest_path, &bytes)?;
    let files = &bundle.manifest().files;
    let report = VerifyReport {
        dir: dir.to_path_buf(),
        name: bundle.manifest().name.clone(),
        manifest_sha256,
        key_fingerprint: key.fingerprint(),
        artifacts: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
    };
    Ok((bundle, report))
}

/// A missing path or a directory without manifest.yaml is no bundle at all; saying it "is not
/// signed" would send the user to sign whatever directory they mistyped.
pub fn check_is_bundle(dir: &Path) -> Result<()> {
    let not = |problem: String| {
        Error::NotABundle {
        dir: dir.to_path_buf(),
        problem,
        hint: "pass the directory `kubegrid bundle build` or offline-bundle/dev-bundle.sh wrote (it holds manifest.yaml), or the packed .tar.zst".into(),
    }
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(not("no such file or directory".into()))
        }
        Err(e) => Err(not(format!("cannot read it: {e}"))),
        Ok(m) if !m.is_dir() => Err(not("it is not a directory".into())),
        Ok(_) if !dir.join(MANIFEST_FILE).exists() => {
            Err(not(format!("it has no {MANIFEST_FILE}")))
        }
        Ok(_) => Ok(()),
    }
}

fn read_manifest(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadManifest {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens (and so verifies) the bundle, and makes sure the manifest it read is the one in
/// `signed_bytes`: `Bundle::open` reads manifest.yaml again, and a swap in between must not
/// pass a manifest nobody signed.
fn open_matching(dir: &Path, manifest_path: &Path, signed_bytes: &[u8]) -> Result<Bundle> {
    let bundle = Bundle::open(dir).map_err(|source| Error::Artifacts {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    })?;
    let signed: Option<Manifest> = serde_yaml::from_slice(signed_bytes).ok();
    if signed.as_ref() != Some(bundle.manifest()) {
        return Err(Error::ManifestChanged {
            path: manifest_path.to_path_buf(),
        });
    }
    verify_images(dir, &bundle)?;
    Ok(bundle)
}

/// Checks the bundle's images: each one the manifest lists is in images/index.json under its
/// digest, and every blob reachable from it is there and hashes to its name. The manifest
/// pins each image's digest, and the digest pins everything below it, so the signature over
/// the manifest covers the images too.
pub fn verify_images(dir: &Path, bundle: &Bundle) -> Result<()> {
    let images = &bundle.manifest().images;
    if images.is_empty() {
        return Ok(());
    }
    let failed = |e: kubegrid_oci::Error| Error::VerifyImages {
        dir: dir.to_path_buf(),
        source: Box::new(e),
    };
    let layout = kubegrid_oci::Layout::open(dir.join(IMAGES_DIR)).map_err(failed)?;
    let digests = images
        .iter()
        .map(|i| kubegrid_oci::Digest::parse(&i.digest))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    layout.verify(&digests).map_err(failed)?;
    Ok(())
}

fn read_signature(dir: &Path, path: &Path) -> Result<[u8; SIGNATURE_LEN]> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoSignature {
                dir: dir.to_path_buf(),
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(Error::ReadSignature {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let malformed = |problem: String| Error::MalformedSignature {
        path: path.to_path_buf(),
        problem,
    };
    let text = String::from_utf8_lossy(&text);
    let line = text.trim();
    let Some(encoded) = line
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(|rest| rest.strip_prefix(' '))
        .filter(|rest| !rest.contains('\n'))
    else {
        return Err(malformed(format!(
            "expected one line `{SIGNATURE_PREFIX} <base64>`, found `{}`",
            abbreviate(line)
        )));
    };
    let raw = STANDARD
        .decode(encoded.trim())
        .map_err(|e| malformed(format!("the signature is not base64: {e}")))?;
    raw.as_slice().try_into().map_err(|_| {
        malformed(format!(
            "the signature decodes to {} bytes, an Ed25519 signature has {SIGNATURE_LEN}",
            raw.len()
        ))
    })
}
