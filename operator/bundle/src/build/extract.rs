//! Taking executables out of upstream tarballs (etcd and etcdctl from etcd's release
//! tarball, crictl, helm), since playbooks install them as single binaries.

use std::{
    io::{Read, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Component, Path, PathBuf},
};

use crate::{Error, Result};

/// A reader that decompresses `archive` by its name.
fn open(archive: &Path) -> std::io::Result<Box<dyn Read>> {
    let file = std::io::BufReader::new(std::fs::File::open(archive)?);
    let name = archive.to_string_lossy();
    Ok(if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if name.ends_with(".tar.zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(file)?)
    } else if name.ends_with(".tar.xz") {
        // lzma-rs decompresses whole streams; the members we take come from small tarballs.
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut { file }, &mut out)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Box::new(std::io::Cursor::new(out))
    } else {
        Box::new(file)
    })
}

/// `a/./b` and `./a/b` name the same member as `a/b`.
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Writes each `(member, dest)` of `archive` to `dest` with mode 0755, in one pass.
pub(crate) fn extract(archive: &Path, members: &[(String, PathBuf)]) -> Result<()> {
    let fail = |member: &str, problem: String| Error::Extract {
        archive: archive.to_path_buf(),
        member: member.to_string(),
        problem,
    };
    let first = members.first().map_or("", |(m, _)| m.as_str());
    let reader = open(archive).map_err(|e| fail(first, e.to_string()))?;
    let mut tar = tar::Archive::new(reader);
    let mut left: Vec<(PathBuf, &str, &PathBuf)> = members
        .iter()
        .map(|(m, dest)| (normal(Path::new(m)), m.as_str(), dest))
        .collect();
    let mut seen = Vec::new();
    for entry in tar.entries().map_err(|e| fail(first, e.to_string()))? {
        let mut entry = entry.map_err(|e| fail(first, e.to_string()))?;
        let path = normal(&entry.path().map_err(|e| fail(first, e.to_string()))?);
        let Some(i) = left.iter().position(|(want, _, _)| *want == path) else {
            if seen.len() < 12 && entry.header().entry_type().is_file() {
                seen.push(path.display().to_string());
            }
            continue;
        };
        let (_, member, dest) = left.swap_remove(i);
        if !entry.header().entry_type().is_file() {
            return Err(fail(member, "the member is not a regular file".into()));
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::WriteFile {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let write_err = |source| Error::WriteFile {
            path: dest.clone(),
            source,
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(dest)
            .map_err(write_err)?;
        std::io::copy(&mut entry, &mut out).map_err(|e| fail(member, e.to_string()))?;
        out.flush().map_err(write_err)?;
        if left.is_empty() {
            return Ok(());
        }
    }
    match left.first() {
        None => Ok(()),
        Some((_, member, _)) => Err(fail(
            member,
            format!(
                "the archive has no such file; files in it include: {}",
                seen.join(", ")
            ),
        )),
    }
}
