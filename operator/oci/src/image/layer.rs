//! The image's one layer: a gzip-compressed tar of a minimal root filesystem, written so that
//! identical inputs give identical bytes (entries in path order, fixed owners, modes and
//! mtimes, no user or group names, a gzip header without a timestamp or file name).

use std::io::Write as _;

use flate2::{Compression, GzBuilder};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The non-root user (and group) the image runs as; the chart's pod securityContext uses the
/// same number.
pub const IMAGE_USER_ID: u32 = 65532;
/// Its name in /etc/passwd and /etc/group.
pub const IMAGE_USER_NAME: &str = "kubegrid";
/// Where the binary lives in the image (its entrypoint).
pub const IMAGE_BINARY_PATH: &str = "/kubegrid";
/// Where the CA certificates live: the path rustls' native roots, OpenSSL and Go look at on
/// Debian-style systems.
pub const IMAGE_CA_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One entry of the root filesystem.
struct Entry<'a> {
    path: String,
    mode: u32,
    owner: u32,
    content: Option<&'a [u8]>,
}

/// A built layer: the compressed bytes and the digest of the uncompressed tar (the config's
/// `diff_id`).
pub(super) struct Layer {
    pub compressed: Vec<u8>,
    pub diff_id: Digest,
}

/// Builds the layer holding `binary`, `ca_certificates` and the user database; every entry
/// gets `mtime` (seconds since the epoch).
pub(super) fn build(binary: &[u8], ca_certificates: &[u8], mtime: u64) -> std::io::Result<Layer> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\n{IMAGE_USER_NAME}:x:{IMAGE_USER_ID}:{IMAGE_USER_ID}:kubegrid operator:/home/{IMAGE_USER_NAME}:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\n{IMAGE_USER_NAME}:x:{IMAGE_USER_ID}:\n");
    let home = format!("home/{IMAGE_USER_NAME}/");
    let ca_path = &IMAGE_CA_PATH[1..];
    let binary_path = &IMAGE_BINARY_PATH[1..];
    let mut entries = vec![
        dir("etc/", 0o755, 0),
        file("etc/group", 0o644, group.as_bytes()),
        file("etc/passwd", 0o644, passwd.as_bytes()),
        dir("etc/ssl/", 0o755, 0),
        dir("etc/ssl/certs/", 0o755, 0),
        file(ca_path, 0o644, ca_certificates),
        dir("home/", 0o755, 0),
        dir(&home, 0o700, IMAGE_USER_ID),
        file(binary_path, 0o755, binary),
        // The chart mounts an emptyDir here; a runtime without one still gets a usable /tmp.
        dir("tmp/", 0o1777, 0),
    ];
    entries.sort_by(|a, b| a.path.cmp(&b.path));

    let mut tar = tar::Builder::new(Vec::with_capacity(binary.len() + ca_certificates.len()));
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in &entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_uid(u64::from(entry.owner));
        header.set_gid(u64::from(entry.owner));
        header.set_mtime(mtime);
        match entry.content {
            Some(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                tar.append_data(&mut header, &entry.path, content)?;
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, &entry.path, std::io::empty())?;
            }
        }
    }
    let raw = tar.into_inner()?;
    let diff_id = Digest::from_hasher(Sha256::new_with_prefix(&raw));
    // GzBuilder writes mtime 0 and no file name unless told otherwise.
    let mut gz = GzBuilder::new().write(Vec::with_capacity(raw.len() / 2), Compression::default());
    gz.write_all(&raw)?;
    Ok(Layer {
        compressed: gz.finish()?,
        diff_id,
    })
}

fn dir(path: &str, mode: u32, owner: u32) -> Entry<'static> {
    Entry {
        path: path.to_owned(),
        mode,
        owner,
        content: None,
    }
}

fn file<'a>(path: &str, mode: u32, content: &'a [u8]) -> Entry<'a> {
    Entry {
        path: path.to_owned(),
        mode,
        owner: 0,
        content: Some(content),
    }
}
