//! The certificates a host holds: PEM files, and the certificates embedded in (or named by)
//! kubeconfigs. Only CERTIFICATE blocks are reported; private keys, `client-key-data` and any
//! other file content never leave the host, not even in an error.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    fsutil::under_root,
    pem::{self, MAX_FILE_BYTES},
};

/// How deep a directory asked for is walked: its own files are level 1, so naming
/// /etc/kubernetes reaches /etc/kubernetes/pki/etcd/ca.crt.
pub const MAX_DEPTH: usize = 3;

/// The file name endings a directory walk reads.
pub const EXTENSIONS: [&str; 3] = ["crt", "pem", "conf"];

/// One file's certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertFile {
    /// The file parsed as a kubeconfig (`kind: Config`).
    pub kubeconfig: bool,
    /// The certificates found, in file order.
    pub certificates: Vec<FoundCert>,
    /// Why the file, or part of it, could not be read; never quotes file content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One certificate in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundCert {
    /// None for a PEM file; for a kubeconfig `clusters[NAME].certificate-authority-data` or
    /// `users[NAME].client-certificate-data`, or `users[NAME].client-certificate=/path` (and
    /// `clusters[NAME].certificate-authority=/path`) for a certificate read from the file a
    /// kubeconfig names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Exactly one `-----BEGIN CERTIFICATE-----` block, PEM.
    pub pem: String,
}

/// The certificates in `paths` (host paths, read under `root`), by absolute host path. A
/// directory is walked [`MAX_DEPTH`] levels down for files named `*.crt`, `*.pem` or
/// `*.conf`, and those holding neither a certificate nor a kubeconfig are left out; a named
/// file is always reported. Missing paths are left out.
pub fn certificates(root: &Path, paths: &[PathBuf]) -> BTreeMap<String, CertFile> {
    let mut out = BTreeMap::new();
    for path in paths {
        let host = absolute(path);
        let local = under_root(root, &host);
        match fs::metadata(&local) {
            Ok(meta) if meta.is_dir() => {
                let mut found = Vec::new();
                walk(&local, &host, 1, &mut found);
                for (host, local) in found {
                    let file = read(root, &host, &local);
                    if file.kubeconfig || !file.certificates.is_empty() || file.error.is_some() {
                        out.insert(host.to_string_lossy().into_owned(), file);
                    }
                }
            }
            Ok(_) => {
                let mut file = read(root, &host, &local);
                if !file.kubeconfig && file.certificates.is_empty() && file.error.is_none() {
                    file.error =
                        Some("holds no PEM certificate and is not a kubeconfig".to_string());
                }
                out.insert(host.to_string_lossy().into_owned(), file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                out.insert(
                    host.to_string_lossy().into_owned(),
                    failed(format!("cannot be read ({})", io_reason(&e))),
                );
            }
        }
    }
    out
}

/// Plans carry absolute paths; a relative one is taken from /.
fn absolute(path: &Path) -> PathBuf {
    Path::new("/").join(path)
}

/// Collects (host path, local path) of the matching files under `local`, sorted by name.
/// Symlinked files are read (kubelet-client-current.pem is one); symlinked directories are
/// not followed, so a loop cannot trap the walk.
fn walk(local: &Path, host: &Path, depth: usize, out: &mut Vec<(PathBuf, PathBuf)>) {
    let Ok(entries) = fs::read_dir(local) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let (local, host) = (entry.path(), host.join(entry.file_name()));
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth < MAX_DEPTH {
                walk(&local, &host, depth + 1, out);
            }
            continue;
        }
        let wanted = local
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e));
        if wanted && fs::metadata(&local).is_ok_and(|m| m.is_file()) {
            out.push((host, local));
        }
    }
}

fn failed(error: String) -> CertFile {
    CertFile {
        error: Some(error),
        ..CertFile::default()
    }
}

/// An I/O error's reason without the path (the caller names the file).
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// The file's text; Err says why not, without quoting it.
fn read_text(local: &Path) -> Result<String, String> {
    let unreadable = |e: io::Error| format!("cannot be read ({})", io_reason(&e));
    let meta = fs::metadata(local).map_err(unreadable)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "is {} bytes, larger than a certificate file can be ({MAX_FILE_BYTES} bytes)",
            meta.len()
        ));
    }
    let bytes = fs::read(local).map_err(unreadable)?;
    String::from_utf8(bytes).map_err(|_| "is not text (not UTF-8)".to_string())
}

fn read(root: &Path, host: &Path, local: &Path) -> CertFile {
    let text = match read_text(local) {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    if let Some(doc) = pem::kubeconfig(&text) {
        return read_kubeconfig(root, host, &doc);
    }
    let certificates = pem::certificates(&text)
        .into_iter()
        .map(|pem| FoundCert { field: None, pem })
        .collect();
    let malformed = pem::blocks(&text)
        .iter()
        .any(|b| b.label == "CERTIFICATE" && !b.well_formed);
    CertFile {
        kubeconfig: false,
        certificates,
        error: malformed.then(|| "a CERTIFICATE block's body is not base64".to_string()),
    }
}

/// Certificates in a kubeconfig: the `*-data` settings, and the files that `client-certificate`
/// and `certificate-authority` name (relative to the kubeconfig's directory).
fn read_kubeconfig(root: &Path, host: &Path, doc: &serde_yaml::Value) -> CertFile {
    let dir = host.parent().unwrap_or(Path::new("/"));
    let mut file = CertFile {
        kubeconfig: true,
        ..CertFile::default()
    };
    let mut errors = Vec::new();
    let lists = [
        ("clusters", "cluster", "certificate-authority"),
        ("users", "user", "client-certificate"),
    ];
    for (list, inner, setting) in lists {
        for (name, entry) in pem::entries(doc, list, inner) {
            let data_key = format!("{setting}-data");
            if let Some(data) = pem::setting(entry, &data_key) {
                let field = format!("{list}[{name}].{data_key}");
                let found = pem::decode_data(data)
                    .map(|text| pem::certificates(&text))
                    .unwrap_or_default();
                if found.is_empty() {
                    errors.push(format!("{field} holds no base64-encoded PEM certificate"));
                }
                file.certificates
                    .extend(found.into_iter().map(|pem| FoundCert {
                        field: Some(field.clone()),
                        pem,
                    }));
            } else if let Some(named) = pem::setting(entry, setting) {
                let target = dir.join(named);
                let field = format!("{list}[{name}].{setting}={}", target.display());
                let found = match read_text(&under_root(root, &target)) {
                    Ok(text) => pem::certificates(&text),
                    Err(e) => {
                        errors.push(format!("{field}: the file {e}"));
                        continue;
                    }
                };
                if found.is_empty() {
                    errors.push(format!("{field}: the file holds no PEM certificate"));
                }
                file.certificates
                    .extend(found.into_iter().map(|pem| FoundCert {
                        field: Some(field.clone()),
                        pem,
                    }));
            }
        }
    }
    if !errors.is_empty() {
        file.error = Some(errors.join("; "));
    }
    file
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
