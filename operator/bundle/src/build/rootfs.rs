//! A root file system made of files of a Debian package (sources.yaml `debs` packages with a
//! `rootfs`): busybox-static's bin/busybox and a bin/sh link for the post-install container
//! check. The tar is written byte for byte as GNU tar writes it with `--sort=name
//! --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu` from the unpacked files, the
//! way offline-bundle/dev-bundle.sh makes the development bundle's rootfs, so the same package
//! always gives the same sha256, here and there.

use std::{
    collections::BTreeMap,
    io::Read as _,
    path::{Component, Path, PathBuf},
};

use super::debian;
use crate::{Error, Result, sources::DebRootfs};

const BLOCK: usize = 512;
/// GNU tar's default record: 20 blocks; the archive is padded to a whole record.
const RECORD: usize = 20 * BLOCK;

/// One entry of the root file system tree.
#[derive(Debug)]
enum Node {
    Dir(BTreeMap<String, Node>),
    File { mode: u32, data: Vec<u8> },
    Link(String),
}

/// Makes `rootfs` of the package `deb` and writes the tar to `out`.
pub(crate) fn make(deb: &Path, rootfs: &DebRootfs, out: &Path) -> Result<()> {
    let fail = |problem: String| Error::Rootfs {
        name: rootfs.name.clone(),
        deb: deb.to_path_buf(),
        problem,
    };
    let data = debian::read_data_tar(deb).map_err(&fail)?;
    let files = take_files(&data, &rootfs.files).map_err(&fail)?;
    let mut root = BTreeMap::new();
    for (path, mode, bytes) in files {
        insert(&mut root, &path, Node::File { mode, data: bytes }).map_err(&fail)?;
    }
    for (path, target) in &rootfs.links {
        insert(&mut root, path, Node::Link(target.clone())).map_err(&fail)?;
    }
    let tar = write_tar(&root).map_err(&fail)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::WriteFile {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(out, tar).map_err(|source| Error::WriteFile {
        path: out.to_path_buf(),
        source,
    })
}

/// `./bin/busybox` and `bin/busybox` name the same member.
fn normal(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The regular files `wanted` of a package's data tar, as (path, permission bits, bytes), in
/// the order asked.
fn take_files(
    data: &[u8],
    wanted: &[String],
) -> std::result::Result<Vec<(String, u32, Vec<u8>)>, String> {
    let mut found: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    let mut seen = Vec::new();
    let mut tar = tar::Archive::new(data);
    for entry in tar.entries().map_err(|e| format!("data.tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("data.tar: {e}"))?;
        let path = normal(&entry.path().map_err(|e| format!("data.tar: {e}"))?);
        if !wanted.contains(&path) {
            if seen.len() < 12 && entry.header().entry_type().is_file() {
                seen.push(path);
            }
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(format!(
                "`{path}` in the package is not a regular file (a link or directory); hint: list the file it points to"
            ));
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|e| format!("`{path}`: {e}"))?
            & 0o7777;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("`{path}`: {e}"))?;
        found.insert(path, (mode, bytes));
    }
    wanted
        .iter()
        .map(|w| {
            found
                .remove(w)
                .map(|(mode, bytes)| (w.clone(), mode, bytes))
                .ok_or_else(|| {
                    format!(
                        "the package has no file `{w}`; files in it include: {}",
                        if seen.is_empty() {
                            "none".into()
                        } else {
                            seen.join(", ")
                        }
                    )
                })
        })
        .collect()
}

/// Puts `node` at `path`, creating its parent directories.
fn insert(
    root: &mut BTreeMap<String, Node>,
    path: &str,
    node: Node,
) -> std::result::Result<(), String> {
    let parts: Vec<&str> = path.split('/').collect();
    let (last, dirs) = parts
        .split_last()
        .ok_or_else(|| "an empty path".to_string())?;
    let mut here = root;
    for dir in dirs {
        let next = here
            .entry((*dir).to_string())
            .or_insert_with(|| Node::Dir(BTreeMap::new()));
        here = match next {
            Node::Dir(children) => children,
            _ => {
                return Err(format!(
                    "`{path}`: `{dir}` is a file or link, not a directory"
                ));
            }
        };
    }
    if here.insert((*last).to_string(), node).is_some() {
        return Err(format!("`{path}` is given twice"));
    }
    Ok(())
}

/// The tar: `./`, then each directory's entries sorted by name, depth first (GNU tar's
/// `--sort=name`), two zero blocks, padded to a whole record.
fn write_tar(root: &BTreeMap<String, Node>) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    out.extend_from_slice(&header("./", 0o755, 0, b'5', "")?);
    write_dir(&mut out, "./", root)?;
    out.resize(out.len() + 2 * BLOCK, 0);
    out.resize(out.len().div_ceil(RECORD) * RECORD, 0);
    Ok(out)
}

fn write_dir(
    out: &mut Vec<u8>,
    prefix: &str,
    dir: &BTreeMap<String, Node>,
) -> std::result::Result<(), String> {
    for (name, node) in dir {
        match node {
            Node::Dir(children) => {
                let path = format!("{prefix}{name}/");
                out.extend_from_slice(&header(&path, 0o755, 0, b'5', "")?);
                write_dir(out, &path, children)?;
            }
            Node::File { mode, data } => {
                let path = format!("{prefix}{name}");
                out.extend_from_slice(&header(&path, *mode, data.len() as u64, b'0', "")?);
                out.extend_from_slice(data);
                out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
            }
            Node::Link(target) => {
                let path = format!("{prefix}{name}");
                out.extend_from_slice(&header(&path, 0o777, 0, b'2', target)?);
            }
        }
    }
    Ok(())
}

/// A GNU tar header: owner 0:0 without names, time zero, octal fields zero-padded and NUL
/// terminated, the checksum as six digits, NUL, space.
fn header(
    name: &str,
    mode: u32,
    size: u64,
    typeflag: u8,
    link: &str,
) -> std::result::Result<[u8; BLOCK], String> {
    let mut h = [0u8; BLOCK];
    if name.len() > 100 || link.len() > 100 {
        return Err(format!(
            "`{name}`: a name or link target longer than 100 bytes does not fit a tar header"
        ));
    }
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode))?;
    octal(&mut h[108..116], 0)?;
    octal(&mut h[116..124], 0)?;
    octal(&mut h[124..136], size)?;
    octal(&mut h[136..148], 0)?;
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// `value` in octal, zero-padded to the field less one byte, then NUL.
fn octal(field: &mut [u8], value: u64) -> std::result::Result<(), String> {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    if digits.len() > width {
        return Err(format!("{value} does not fit a tar header field"));
    }
    field[..width].copy_from_slice(digits.as_bytes());
    field[width] = 0;
    Ok(())
}

/// Where the rootfs made of the .deb at bundle path `deb` goes: beside it, in a folder named
/// after the package file, as `<name>.tar` (the way files taken out of archives are placed).
pub(crate) fn bundle_path(deb: &Path, name: &str) -> PathBuf {
    let stem = deb
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".deb").to_string())
        .unwrap_or_default();
    deb.with_file_name(stem).join(format!("{name}.tar"))
}

#[cfg(test)]
mod tests;
