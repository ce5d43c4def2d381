//! Debian repositories: reading `Packages` indexes to find and verify .deb files, comparing
//! Debian versions, and writing the `Packages` index of the bundle's own flat apt repository
//! from each .deb's control file.

use std::{cmp::Ordering, io::Read, path::Path};

use flate2::{Compression, write::GzEncoder};

/// One stanza of a `Packages` index: its fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// A field's value (multi-line values keep their continuation lines).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses deb822 text (a `Packages` index or a control file) into stanzas.
pub(crate) fn parse_stanzas(text: &str) -> Result<Vec<Stanza>, String> {
    let mut stanzas = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                stanzas.push(Stanza {
                    fields: std::mem::take(&mut fields),
                });
            }
        } else if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(format!("line {}: a continuation line with no field", n + 1));
            };
            value.push('\n');
            value.push_str(line);
        } else if let Some((key, value)) = line.split_once(':') {
            fields.push((key.to_string(), value.trim().to_string()));
        } else {
            return Err(format!("line {}: `{line}` is not `Field: value`", n + 1));
        }
    }
    if !fields.is_empty() {
        stanzas.push(Stanza { fields });
    }
    Ok(stanzas)
}

/// Decompresses an index by its file name (`Packages`, `Packages.gz`, `Packages.xz`).
pub(crate) fn decompress(name: &str, bytes: &[u8]) -> Result<String, String> {
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
    } else if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(bytes), &mut out)
            .map_err(|e| format!("xz: {e}"))?;
    } else {
        out = bytes.to_vec();
    }
    String::from_utf8(out).map_err(|_| "the index is not UTF-8".to_string())
}

/// A package found in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Debian version.
    pub version: String,
    /// `Architecture` (`amd64`, `arm64` or `all`).
    pub arch: String,
    /// `Filename`, relative to the repository base.
    pub filename: String,
    /// `SHA256`.
    pub sha256: String,
    /// `Size`.
    pub size: u64,
}

/// The stanzas for `package` on `arch` (or `all`) in an index, as [`Found`]s.
pub(crate) fn candidates(stanzas: &[Stanza], package: &str, arch: &str) -> Vec<Found> {
    stanzas
        .iter()
        .filter(|s| s.get("Package") == Some(package))
        .filter(|s| matches!(s.get("Architecture"), Some(a) if a == arch || a == "all"))
        .filter_map(|s| {
            Some(Found {
                version: s.get("Version")?.to_string(),
                arch: s.get("Architecture")?.to_string(),
                filename: s.get("Filename")?.to_string(),
                sha256: s.get("SHA256")?.to_ascii_lowercase(),
                size: s.get("Size")?.parse().ok()?,
            })
        })
        .collect()
}

/// Compares Debian versions as dpkg does: epoch, then upstream version, then revision, each
/// by alternating non-digit runs (`~` sorts before everything, letters before other
/// characters) and numbers.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

fn split_version(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// The control file of a .deb: an `ar` archive whose `control.tar[.gz|.xz|.zst]` holds
/// `./control`.
pub(crate) fn read_control(deb: &Path) -> Result<String, String> {
    let file = std::fs::File::open(deb).map_err(|e| e.to_string())?;
    let mut archive = ar::Archive::new(file);
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.map_err(|e| format!("not an ar archive: {e}"))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).to_string();
        if !name.starts_with("control.tar") {
            continue;
        }
        let mut compressed = Vec::new();
        entry
            .read_to_end(&mut compressed)
            .map_err(|e| format!("{name}: {e}"))?;
        let tar_bytes = decompress_member(&name, &compressed)?;
        let mut tar = tar::Archive::new(tar_bytes.as_slice());
        for file in tar.entries().map_err(|e| format!("{name}: {e}"))? {
            let mut file = file.map_err(|e| format!("{name}: {e}"))?;
            let path = file
                .path()
                .map_err(|e| format!("{name}: {e}"))?
                .into_owned();
            if path == Path::new("./control") || path == Path::new("control") {
                let mut text = String::new();
                file.read_to_string(&mut text)
                    .map_err(|e| format!("{name}/control: {e}"))?;
                return Ok(text);
            }
        }
        return Err(format!("{name} has no control file"));
    }
    Err("no control.tar member; is this a .deb?".into())
}

/// The package's files: its `data.tar[.gz|.xz|.zst]` member, decompressed.
pub(crate) fn read_data_tar(deb: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(deb).map_err(|e| e.to_string())?;
    let mut archive = ar::Archive::new(file);
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.map_err(|e| format!("not an ar archive: {e}"))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).to_string();
        if !name.starts_with("data.tar") {
            continue;
        }
        let mut compressed = Vec::new();
        entry
            .read_to_end(&mut compressed)
            .map_err(|e| format!("{name}: {e}"))?;
        return decompress_member(&name, &compressed);
    }
    Err("no data.tar member; is this a .deb?".into())
}

/// A `control.tar*` or `data.tar*` member, decompressed by its name's suffix.
fn decompress_member(name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let result = match name.split_once(".tar").map(|(_, suffix)| suffix) {
        Some("") => {
            out = bytes.to_vec();
            Ok(())
        }
        Some(".gz") => flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map(drop)
            .map_err(|e| e.to_string()),
        Some(".xz") => lzma_rs::xz_decompress(&mut std::io::BufReader::new(bytes), &mut out)
            .map_err(|e| e.to_string()),
        Some(".zst") => zstd::stream::read::Decoder::new(bytes)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => Err("an unknown compression; kubegrid reads .gz, .xz, .zst or none".into()),
    };
    result.map_err(|e| format!("{name}: {e}"))?;
    Ok(out)
}

/// One package of the bundle's apt repository.
#[derive(Debug, Clone)]
pub(crate) struct RepoEntry {
    /// The .deb's control file text.
    pub control: String,
    /// Path relative to the repository root (the bundle directory).
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// A `Packages` index: each control stanza with `Filename`, `Size` and `SHA256` added, sorted
/// by package, version and arch so the same debs always give the same bytes.
pub(crate) fn packages_index(entries: &[RepoEntry]) -> Result<String, String> {
    let mut stanzas = Vec::new();
    for e in entries {
        let mut parsed = parse_stanzas(&e.control)?;
        let Some(mut stanza) = parsed.pop().filter(|_| parsed.is_empty()) else {
            return Err(format!(
                "{}: the control file is not one stanza",
                e.filename
            ));
        };
        stanza.fields.retain(|(k, _)| {
            !["Filename", "Size", "SHA256", "MD5sum", "SHA1"]
                .iter()
                .any(|f| k.eq_ignore_ascii_case(f))
        });
        stanza.fields.push(("Filename".into(), e.filename.clone()));
        stanza.fields.push(("Size".into(), e.size.to_string()));
        stanza.fields.push(("SHA256".into(), e.sha256.clone()));
        stanzas.push(stanza);
    }
    let key = |s: &Stanza| {
        (
            s.get("Package").unwrap_or_default().to_string(),
            s.get("Version").unwrap_or_default().to_string(),
            s.get("Architecture").unwrap_or_default().to_string(),
        )
    };
    stanzas.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then_with(|| compare_versions(&ka.1, &kb.1))
            .then_with(|| ka.2.cmp(&kb.2))
    });
    let mut out = String::new();
    for s in &stanzas {
        for (k, v) in &s.fields {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push('\n');
        }
        out.push('\n');
    }
    Ok(out)
}

/// xz of `text`; apt asks a repository without a Release file for `Packages.xz` first, so
/// having it keeps `apt-get update` free of errors about missing files.
pub(crate) fn xz(text: &str) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    lzma_rs::xz_compress(&mut text.as_bytes(), &mut out)?;
    Ok(out)
}

/// gzip of `text` with no name and time in the header, so it is reproducible.
pub(crate) fn gzip(text: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(text.as_bytes())?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_compare_as_dpkg_does() {
        let less = [
            ("1.0", "1.1"),
            ("1.0~rc1", "1.0"),
            ("1.6.20~ds1-1+deb12u2", "1.6.20~ds1-1+deb12u3"),
            ("1.9", "1.10"),
            ("2.0-1", "1:1.0-1"),
            ("1.0-1", "1.0-1.1"),
            ("1.0a", "1.0+"),
            ("1.17.8-1", "1.18.0-1"),
        ];
        for (a, b) in less {
            assert_eq!(compare_versions(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare_versions(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare_versions("1.0-1", "1.00-1"), Ordering::Equal);
    }
}
