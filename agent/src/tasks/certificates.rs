//! The certificates module: new certificate bytes for a PEM file or a kubeconfig, as renewal
//! and CA rotation need, without touching the private keys next to them.
//!
//! A PEM file keeps every byte but its CERTIFICATE blocks. A kubeconfig is parsed and written
//! back from the parsed document: its comments and formatting are not kept (kubeadm writes
//! none), while every value, `client-key-data` included, stays byte-identical. Each file is
//! replaced atomically with its mode and owner kept. Messages name files and fields, never
//! their content.

use std::{
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use serde_yaml::Value;

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    fsutil::{Perms, atomic_write, parent, require_absolute},
    pem,
    protocol::CertificatesArgs,
};

/// One file's new content.
struct Rewrite {
    /// The file written (a symlink's target).
    path: PathBuf,
    /// The path as named, when it is a symlink to `path`.
    via: Option<PathBuf>,
    old: String,
    new: String,
    /// What changes, for the message.
    what: String,
}

/// Puts `args.certificate` (and, in a kubeconfig, `args.ca`) into `args.path`.
pub fn apply(args: &CertificatesArgs, ctx: &Ctx) -> Result<Outcome> {
    require_absolute(&args.path)?;
    let bad = |detail: String| Error::CertificateFile {
        path: args.path.clone(),
        detail,
    };
    if args.certificate.is_none() && args.ca.is_none() {
        return Err(bad(
            "neither a certificate nor a CA was given; hint: the plan must carry at least one"
                .into(),
        ));
    }
    for (field, value) in [("certificate", &args.certificate), ("ca", &args.ca)] {
        if let Some(why) = value.as_deref().and_then(pem::only_certificates) {
            return Err(Error::CertificateInput {
                path: args.path.clone(),
                field,
                detail: why,
            });
        }
    }
    let file = load(&args.path)?;
    let mut rewrites = Vec::new();
    let mut notes = Vec::new();
    if let Some(doc) = pem::kubeconfig(&file.old) {
        kubeconfig(args, file, doc, &mut rewrites, &mut notes)?;
    } else {
        if args.ca.is_some() {
            return Err(bad(
                "a CA can only be set in a kubeconfig, and this is a PEM file; hint: write a CA file with the certificate field"
                    .into(),
            ));
        }
        let certificate = args.certificate.as_deref().unwrap_or_default();
        rewrites.push(pem_file(file, certificate)?);
    }
    rewrites.retain(|r| r.new != r.old);
    if rewrites.is_empty() {
        let mut message = format!("{} already holds these certificates", args.path.display());
        for note in &notes {
            message.push_str("; ");
            message.push_str(note);
        }
        return Ok(Outcome::unchanged(message));
    }
    let mut changes = Vec::new();
    for r in &rewrites {
        if !ctx.check_mode {
            write_keeping_metadata(&r.path, &r.new)?;
        }
        let via = r
            .via
            .as_ref()
            .map(|v| format!(" (via {})", v.display()))
            .unwrap_or_default();
        changes.push(format!("rewrite {}{via}: {}", r.path.display(), r.what));
    }
    changes.extend(notes);
    Ok(Outcome {
        changed: true,
        message: changes.join("; "),
        output: String::new(),
    })
}

/// The current text of `path`, following a symlink to the file it names.
fn load(path: &Path) -> Result<Rewrite> {
    let real = fs::canonicalize(path).map_err(|source| missing_or(path, source))?;
    let old = fs::read(&real).map_err(|source| missing_or(path, source))?;
    let old = String::from_utf8(old).map_err(|_| Error::CertificateFile {
        path: path.to_path_buf(),
        detail: "it is not text (not UTF-8), so neither a PEM file nor a kubeconfig".into(),
    })?;
    Ok(Rewrite {
        via: (real != path).then(|| path.to_path_buf()),
        path: real,
        new: old.clone(),
        old,
        what: String::new(),
    })
}

fn missing_or(path: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::NotFound {
        Error::CertificateFileMissing {
            path: path.to_path_buf(),
        }
    } else {
        Error::ReadFile {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn pem_file(mut file: Rewrite, certificate: &str) -> Result<Rewrite> {
    let others = pem::blocks(&file.old)
        .iter()
        .filter(|b| b.label != "CERTIFICATE")
        .count();
    let old_certs = pem::blocks(&file.old).len() - others;
    file.new = pem::replace_certificates(&file.old, certificate).ok_or_else(|| {
        Error::CertificateFile {
            path: file.via.clone().unwrap_or_else(|| file.path.clone()),
            detail: "it holds no PEM CERTIFICATE block to replace and is not a kubeconfig".into(),
        }
    })?;
    let new_certs = pem::certificates(certificate).len();
    file.what =
        format!("{old_certs} certificate(s) replaced by {new_certs}, {others} other block(s) kept");
    Ok(file)
}

/// Sets the `*-data` fields of a kubeconfig, and plans the rewrite of the PEM files its users
/// name with `client-certificate`.
fn kubeconfig(
    args: &CertificatesArgs,
    mut file: Rewrite,
    mut doc: Value,
    rewrites: &mut Vec<Rewrite>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let original = doc.clone();
    let dir = parent(&args.path).to_path_buf();
    let mut fields = Vec::new();
    if let Some(certificate) = &args.certificate {
        let mut users = 0;
        for (name, user) in pem::entries_mut(&mut doc, "users", "user") {
            if user.contains_key("client-certificate-data") {
                let data = pem::encode_data(certificate);
                if pem::setting(user, "client-certificate-data") != Some(data.as_str()) {
                    user.insert("client-certificate-data".into(), data.into());
                    fields.push(format!("users[{name}].client-certificate-data"));
                }
                users += 1;
            } else if let Some(named) = pem::setting(user, "client-certificate") {
                let referenced = load(&dir.join(named))?;
                rewrites.push(pem_file(referenced, certificate)?);
                users += 1;
            }
        }
        if users == 0 {
            return Err(Error::CertificateFile {
                path: args.path.clone(),
                detail: "no user of this kubeconfig has a client certificate (client-certificate-data or client-certificate)".into(),
            });
        }
    }
    if let Some(ca) = &args.ca {
        let mut clusters = 0;
        for (name, cluster) in pem::entries_mut(&mut doc, "clusters", "cluster") {
            clusters += 1;
            let has_data = cluster.contains_key("certificate-authority-data");
            match pem::setting(cluster, "certificate-authority") {
                Some(named) if !has_data => notes.push(format!(
                    "clusters[{name}] reads its CA from {}, left as it is",
                    dir.join(named).display()
                )),
                _ => {
                    let data = pem::encode_data(ca);
                    if pem::setting(cluster, "certificate-authority-data") != Some(data.as_str()) {
                        cluster.insert("certificate-authority-data".into(), data.into());
                        fields.push(format!("clusters[{name}].certificate-authority-data"));
                    }
                }
            }
        }
        if clusters == 0 {
            return Err(Error::CertificateFile {
                path: args.path.clone(),
                detail: "this kubeconfig has no clusters to set the CA of".into(),
            });
        }
    }
    // Compare documents, not text: a kubeconfig another tool formatted differently but that
    // already holds these certificates is left alone.
    if doc != original {
        file.new = serde_yaml::to_string(&doc).map_err(|e| Error::CertificateFile {
            path: args.path.clone(),
            detail: format!("the updated kubeconfig cannot be written as YAML ({e})"),
        })?;
        file.what = fields.join(", ");
        rewrites.insert(0, file);
    }
    Ok(())
}

/// Replaces `path` atomically, keeping its mode and owner.
fn write_keeping_metadata(path: &Path, content: &str) -> Result<()> {
    let meta = fs::metadata(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let perms = Perms {
        mode: meta.mode() & 0o7777,
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
    };
    atomic_write(path, content.as_bytes(), perms)
}

#[cfg(test)]
#[path = "certificates_tests.rs"]
mod tests;
