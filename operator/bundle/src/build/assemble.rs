//! From a [`BuildPlan`] to a verified bundle tree: fetch checksum files and Debian indexes,
//! resolve what every download must hash to, download everything in parallel, then lay the
//! files out under their bundle paths with their manifest entries.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
};

use kubegrid_plan::{Arch, BundleFile, FileKind};
use reqwest::Url;
use tokio::task::JoinSet;

use super::{
    checksum,
    debian::{self, RepoEntry},
    extract,
    fetch::{Expect, Fetcher, hash_file},
    mirror::{bundle_path, file_name},
    rootfs,
};
use crate::{
    Error, Result,
    sources::DebRootfs,
    sources_plan::{BuildPlan, ExpectedChecksum, PlannedDebs},
};

/// The assembled tree's manifest entries.
pub(super) struct Assembled {
    pub files: Vec<BundleFile>,
    pub apt_repository: Option<PathBuf>,
}

/// A .deb chosen from an index.
#[derive(Debug, Clone)]
struct DebDownload {
    component: String,
    name: String,
    version: String,
    arch: Arch,
    url: String,
    sha256: String,
    distro: Option<String>,
    /// Whether the package itself goes into the bundle (not only root file systems of it).
    as_package: bool,
    /// Root file systems made of it.
    rootfs: Vec<DebRootfs>,
}

type Task<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// Runs tasks concurrently (the fetcher bounds the downloads), returning results in order;
/// the first error stops the rest.
async fn all<T: Send + 'static>(tasks: Vec<Task<T>>) -> Result<Vec<T>> {
    let mut set = JoinSet::new();
    let n = tasks.len();
    for (i, task) in tasks.into_iter().enumerate() {
        set.spawn(async move { (i, task.await) });
    }
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.map_err(|e| Error::Download {
            what: "a download task".into(),
            url: String::new(),
            problem: e.to_string(),
        })?;
        out[i] = Some(result?);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Fetches each URL once into `dir/<host>/<path>` and returns its bytes; `what` names the
/// kind of file in errors.
async fn fetch_texts(
    fetcher: &Arc<Fetcher>,
    urls: BTreeSet<String>,
    dir: &Path,
    what: &'static str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut tasks: Vec<Task<(String, Vec<u8>)>> = Vec::new();
    for url in urls {
        let fetcher = Arc::clone(fetcher);
        let dest = dir.join(bundle_path(&url)?);
        tasks.push(Box::pin(async move {
            fetcher.fetch(what, &url, &dest, Expect::Unverified).await?;
            let bytes = std::fs::read(&dest).map_err(|source| Error::ReadFile {
                path: dest.clone(),
                source,
            })?;
            Ok((url, bytes))
        }));
    }
    Ok(all(tasks).await?.into_iter().collect())
}

pub(super) async fn assemble(
    plan: &BuildPlan,
    fetcher: &Arc<Fetcher>,
    work: &Path,
    dir: &Path,
) -> Result<Assembled> {
    // What every URL-fetched file must hash to.
    let checksum_urls: BTreeSet<String> = plan
        .files
        .iter()
        .filter_map(|f| match &f.checksum {
            ExpectedChecksum::File { url, .. } => Some(url.clone()),
            ExpectedChecksum::Pinned(_) => None,
        })
        .collect();
    let checksum_files = fetch_texts(
        fetcher,
        checksum_urls,
        &work.join("checksums"),
        "a checksum file",
    )
    .await?;
    let mut expected = Vec::new();
    for f in &plan.files {
        expected.push(match &f.checksum {
            ExpectedChecksum::Pinned(hex) => hex.clone(),
            ExpectedChecksum::File { url, format, entry } => {
                let text = String::from_utf8_lossy(&checksum_files[url]);
                checksum::lookup(&text, *format, entry).map_err(|problem| Error::ChecksumFile {
                    what: label(&f.component, &f.version, f.arch, &f.url),
                    url: url.clone(),
                    problem,
                })?
            }
        });
    }

    // Debian packages, verified against their indexes.
    let index_urls: BTreeSet<String> = plan
        .debs
        .iter()
        .flat_map(|d| d.repos.iter().map(|(index, _)| index.clone()))
        .collect();
    let indexes = fetch_texts(
        fetcher,
        index_urls,
        &work.join("indexes"),
        "a package index",
    )
    .await?;
    let mut parsed = BTreeMap::new();
    for (url, bytes) in &indexes {
        let bad = |problem| Error::DebIndex {
            url: url.clone(),
            problem,
        };
        let text = debian::decompress(&file_name(url), bytes).map_err(bad)?;
        parsed.insert(url.clone(), debian::parse_stanzas(&text).map_err(bad)?);
    }
    let mut debs: Vec<DebDownload> = Vec::new();
    for d in &plan.debs {
        for deb in resolve_debs(d, &parsed)? {
            match debs.iter_mut().find(|seen| seen.url == deb.url) {
                // An arch-independent package shows up once per arch.
                Some(seen) => {
                    seen.distro = seen.distro.take().or(deb.distro);
                    seen.as_package |= deb.as_package;
                    for r in deb.rootfs {
                        if !seen.rootfs.contains(&r) {
                            seen.rootfs.push(r);
                        }
                    }
                }
                None => debs.push(deb),
            }
        }
    }

    // Everything else, in parallel.
    let downloads = work.join("downloads");
    let mut tasks: Vec<Task<(u64, String)>> = Vec::new();
    for (f, sha) in plan.files.iter().zip(&expected) {
        let (fetcher, url, sha) = (Arc::clone(fetcher), f.url.clone(), sha.clone());
        let what = label(&f.component, &f.version, f.arch, &f.url);
        let dest = downloads.join(bundle_path(&f.url)?);
        tasks.push(Box::pin(async move {
            fetcher
                .fetch(&what, &url, &dest, Expect::Sha256(&sha))
                .await
        }));
    }
    for deb in &debs {
        let (fetcher, url, sha) = (Arc::clone(fetcher), deb.url.clone(), deb.sha256.clone());
        let what = format!(
            "{} {} {} (deb {})",
            deb.component,
            deb.version,
            deb.arch.as_str(),
            deb.name
        );
        let dest = downloads.join(bundle_path(&deb.url)?);
        tasks.push(Box::pin(async move {
            fetcher
                .fetch(&what, &url, &dest, Expect::Sha256(&sha))
                .await
        }));
    }
    let fetched = all(tasks).await?;
    let (file_sizes, deb_sizes) = fetched.split_at(plan.files.len());

    // The bundle tree and its manifest entries.
    let mut files = Vec::new();
    let mut paths = BTreeSet::new();
    for (f, (size, sha256)) in plan.files.iter().zip(file_sizes) {
        let rel = bundle_path(&f.url)?;
        let downloaded = downloads.join(&rel);
        if let Some(name) = &f.name
            && paths.insert(rel.clone())
        {
            link_or_copy(&downloaded, &dir.join(&rel))?;
            files.push(BundleFile {
                path: rel.clone(),
                sha256: sha256.clone(),
                size: *size,
                arch: f.arch,
                kind: f.kind,
                name: Some(name.clone()),
                version: Some(f.version.clone()),
                component: Some(f.component.clone()),
                source: Some(f.url.clone()),
            });
        }
        if f.extract.is_empty() {
            continue;
        }
        let folder = rel.with_file_name(archive_stem(&file_name(&f.url)));
        let members: Vec<(String, PathBuf)> = f
            .extract
            .iter()
            .map(|(member, _)| {
                let base = Path::new(member).file_name().unwrap_or_default();
                (member.clone(), dir.join(folder.join(base)))
            })
            .collect();
        extract::extract(&downloaded, &members)?;
        for ((member, name), (_, dest)) in f.extract.iter().zip(&members) {
            let (size, sha256) = hash_file(dest)?;
            let rel = dest.strip_prefix(dir).unwrap_or(dest).to_path_buf();
            if paths.insert(rel.clone()) {
                files.push(BundleFile {
                    path: rel,
                    sha256,
                    size,
                    arch: f.arch,
                    kind: FileKind::Binary,
                    name: Some(name.clone()),
                    version: Some(f.version.clone()),
                    component: Some(f.component.clone()),
                    source: Some(format!("{}#{member}", f.url)),
                });
            }
        }
    }
    let mut repo: BTreeMap<String, Vec<RepoEntry>> = BTreeMap::new();
    for (deb, (size, sha256)) in debs.iter().zip(deb_sizes) {
        let rel = bundle_path(&deb.url)?;
        for r in &deb.rootfs {
            let made = rootfs::bundle_path(&rel, &r.name);
            rootfs::make(&downloads.join(&rel), r, &dir.join(&made))?;
            let (size, sha256) = hash_file(&dir.join(&made))?;
            if paths.insert(made.clone()) {
                files.push(BundleFile {
                    path: made,
                    sha256,
                    size,
                    arch: deb.arch,
                    kind: FileKind::Rootfs,
                    name: Some(r.name.clone()),
                    version: Some(deb.version.clone()),
                    component: Some(deb.component.clone()),
                    source: Some(format!("{}#{}", deb.url, r.files.join(","))),
                });
            }
        }
        if !deb.as_package {
            continue;
        }
        let staged = dir.join(&rel);
        link_or_copy(&downloads.join(&rel), &staged)?;
        if let Some(distro) = &deb.distro {
            let control = debian::read_control(&staged).map_err(|problem| Error::ReadDeb {
                path: staged.clone(),
                problem,
            })?;
            repo.entry(distro.clone()).or_default().push(RepoEntry {
                control,
                filename: rel.to_string_lossy().into_owned(),
                size: *size,
                sha256: sha256.clone(),
            });
        }
        if paths.insert(rel.clone()) {
            files.push(BundleFile {
                path: rel,
                sha256: sha256.clone(),
                size: *size,
                arch: deb.arch,
                kind: FileKind::Deb,
                name: Some(deb.name.clone()),
                version: Some(deb.version.clone()),
                component: Some(deb.component.clone()),
                source: Some(deb.url.clone()),
            });
        }
    }
    let mut apt_repository = None;
    for (distro, entries) in repo {
        let rel = PathBuf::from("repos").join(&distro);
        write_apt_repo(&dir.join(&rel), &entries)?;
        apt_repository = Some(rel);
    }
    Ok(Assembled {
        files,
        apt_repository,
    })
}

/// Picks each package of `d` from its indexes: the pinned version from the first repository
/// that has it, or else the highest version (the first repository wins a tie).
fn resolve_debs(
    d: &PlannedDebs,
    indexes: &BTreeMap<String, Vec<debian::Stanza>>,
) -> Result<Vec<DebDownload>> {
    let arch = d.arch.as_str();
    let mut out = Vec::new();
    for p in &d.packages {
        let mut best: Option<(debian::Found, &str)> = None;
        let mut seen = Vec::new();
        for (index, base) in &d.repos {
            for found in debian::candidates(&indexes[index], &p.name, arch) {
                seen.push(found.version.clone());
                let better = match (&p.version, &best) {
                    (Some(want), None) => *want == found.version,
                    (Some(_), Some(_)) => false,
                    (None, None) => true,
                    (None, Some((b, _))) => {
                        debian::compare_versions(&found.version, &b.version).is_gt()
                    }
                };
                if better {
                    best = Some((found, base.as_str()));
                }
            }
        }
        let Some((found, base)) = best else {
            return Err(Error::DebNotFound {
                origin: d.origin.clone(),
                package: format!(
                    "{} {}",
                    p.name,
                    p.version.as_deref().unwrap_or("(any version)")
                ),
                arch: arch.to_string(),
                repos: d
                    .repos
                    .iter()
                    .map(|(i, _)| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                available: if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(", ")
                },
            });
        };
        let bad_url = |problem: String| Error::DebIndex {
            url: base.to_string(),
            problem,
        };
        let base_url = Url::parse(&format!("{}/", base.trim_end_matches('/')))
            .map_err(|e| bad_url(e.to_string()))?;
        let url = base_url
            .join(&found.filename)
            .map_err(|e| bad_url(format!("Filename `{}`: {e}", found.filename)))?;
        if !kubegrid_plan::is_sha256_hex(&found.sha256) {
            return Err(bad_url(format!(
                "package {} {} has SHA256 `{}`, not a sha256",
                p.name, found.version, found.sha256
            )));
        }
        out.push(DebDownload {
            component: p.component.clone(),
            name: p.name.clone(),
            version: found.version,
            arch: if found.arch == "all" {
                Arch::All
            } else {
                d.arch
            },
            url: url.to_string(),
            sha256: found.sha256,
            distro: d.distro.clone(),
            as_package: p.rootfs.is_none(),
            rootfs: p.rootfs.iter().cloned().collect(),
        });
    }
    Ok(out)
}

/// `Packages`, `Packages.gz` and `Packages.xz` of a flat apt repository (no Release file);
/// hosts use it as
/// `deb [trusted=yes] file:<bundle> repos/<distro>/` (the Filename fields are relative to the
/// bundle root; the debs themselves are pinned by the signed manifest).
fn write_apt_repo(dir: &Path, entries: &[RepoEntry]) -> Result<()> {
    let index = debian::packages_index(entries).map_err(|problem| Error::ReadDeb {
        path: dir.to_path_buf(),
        problem,
    })?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|source| Error::WriteFile { path, source })
    };
    write("Packages", index.as_bytes())?;
    let gz = debian::gzip(&index).map_err(|source| Error::WriteFile {
        path: dir.join("Packages.gz"),
        source,
    })?;
    write("Packages.gz", &gz)?;
    let xz = debian::xz(&index).map_err(|source| Error::WriteFile {
        path: dir.join("Packages.xz"),
        source,
    })?;
    write("Packages.xz", &xz)
}

/// `etcd-v3.6.5-linux-amd64.tar.gz` → `etcd-v3.6.5-linux-amd64`.
fn archive_stem(name: &str) -> String {
    for suffix in [".tar.gz", ".tgz", ".tar.xz", ".tar.zst", ".tar"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return stem.to_string();
        }
    }
    format!("{name}.d")
}

fn label(component: &str, version: &str, arch: Arch, url: &str) -> String {
    format!("{component} {version} {} {}", arch.as_str(), file_name(url))
}

/// Puts a downloaded file into the bundle tree without copying when the file system allows.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let err = |source| Error::WriteFile {
        path: to.to_path_buf(),
        source,
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(err)?;
    }
    Ok(())
}
