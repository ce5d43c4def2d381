//! `kubegrid bundle build`: fetch and verify everything a release needs, assemble the bundle
//! directory with a version 2 manifest, and pack it as tar + zstd.
//!
//! The work happens in a work directory (`<out>.work` unless given): downloads go to
//! `downloads/<host>/<path>` (resumed from `.partial` files on a re-run), the bundle is
//! assembled in `bundle/`. The output file appears only complete. [`build`] does it all;
//! [`prepare`] stops before the images, so a caller can pull them itself
//! ([`Build::pull_images`], or its own writes into [`Build::dir`] recorded with
//! [`Build::add_image`]) before [`Build::finish`] packs.

mod assemble;
mod checksum;
mod debian;
mod extract;
mod fetch;
mod images;
mod mirror;
mod render;
mod rootfs;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kubegrid_plan::{Arch, BundleFile, MANIFEST_FILE, MANIFEST_VERSION_2, Manifest, ManifestImage};
use serde::Serialize;

pub(crate) use fetch::hash_file;
pub use mirror::{bundle_path, candidates as mirror_candidates, parse_mirror};

use crate::{
    Error, Result,
    sources::Sources,
    sources_plan::{BuildPlan, PlannedImage},
};

/// How to build a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// The Kubernetes version (a release in the sources).
    pub kubernetes: String,
    /// The arches to fetch for (amd64, arm64).
    pub arches: Vec<Arch>,
    /// Mirror base URLs, tried in order; empty fetches from upstream.
    pub mirrors: Vec<String>,
    /// A registry mirror to pull images through (upstream host as the first path element
    /// of each repository); `None` pulls from each image's own registry.
    pub image_mirror: Option<String>,
    /// Add the sources' OS packages for this distro and an apt repository for them.
    pub os_packages: Option<String>,
    /// Components of the release to leave out.
    pub without: Vec<String>,
    /// The bundle name in the manifest; defaults to `kubernetes-<version>-<arches>`.
    pub name: Option<String>,
    /// Where downloads and the bundle tree are kept; defaults to `<out>.work`, removed after
    /// a successful build. A given work directory is kept, as a download cache.
    pub work_dir: Option<PathBuf>,
    /// Downloads at a time.
    pub jobs: usize,
    /// Retries per URL after the first attempt, on transient errors.
    pub retries: u32,
    /// The first retry's wait; each further retry doubles it.
    pub backoff: Duration,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Sign the assembled bundle with this private key (`bundle keygen`) before packing, so
    /// the packed file carries manifest.yaml.sig.
    pub sign_key: Option<PathBuf>,
}

impl BuildOptions {
    /// Options with the defaults: no mirrors, no OS packages, 4 downloads at a time, 4
    /// retries from 1 s, a progress bar on a terminal.
    pub fn new(kubernetes: &str, arches: &[Arch]) -> BuildOptions {
        BuildOptions {
            kubernetes: kubernetes.to_string(),
            arches: arches.to_vec(),
            mirrors: Vec::new(),
            image_mirror: None,
            os_packages: None,
            without: Vec::new(),
            name: None,
            work_dir: None,
            jobs: 4,
            retries: 4,
            backoff: Duration::from_secs(1),
            progress: true,
            sign_key: None,
        }
    }
}

/// What a finished build wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    /// The packed bundle.
    pub output: PathBuf,
    /// sha256 of the packed bundle.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The bundle name.
    pub name: String,
    /// The Kubernetes version.
    pub kubernetes: String,
    /// The arches.
    pub arches: Vec<String>,
    /// Files in the manifest.
    pub artifacts: usize,
    /// Their total size.
    pub bytes: u64,
    /// Images in the manifest.
    pub images: usize,
    /// Images the sources pin for this release that the build did not add (`name:tag`).
    pub images_not_included: Vec<String>,
    /// The distro an apt repository was generated for, and where (`repos/<distro>`).
    pub apt_repository: Option<PathBuf>,
    /// Whether the packed bundle carries manifest.yaml.sig (built with a signing key).
    pub signed: bool,
}

/// A bundle being built: files fetched, verified and assembled, not packed yet.
#[derive(Debug)]
pub struct Build {
    plan: BuildPlan,
    work: PathBuf,
    remove_work: bool,
    dir: PathBuf,
    out: PathBuf,
    manifest: Manifest,
    apt_repository: Option<PathBuf>,
    sign_key: Option<PathBuf>,
}

/// Builds the bundle for `opts` from `sources` into `out`: files, images, manifest, pack.
pub async fn build(sources: &Sources, opts: &BuildOptions, out: &Path) -> Result<BuildReport> {
    let mut build = prepare(sources, opts, out).await?;
    build.pull_images(opts.image_mirror.as_deref()).await?;
    build.finish()
}

/// Fetches, verifies and assembles every file; the result waits for images and packing.
pub async fn prepare(sources: &Sources, opts: &BuildOptions, out: &Path) -> Result<Build> {
    // A key that cannot sign would otherwise surface only after every download.
    if let Some(key) = &opts.sign_key {
        crate::keys::read_private_key(key)?;
    }
    let plan = sources.plan(
        &opts.kubernetes,
        &opts.arches,
        opts.os_packages.as_deref(),
        &opts.without,
    )?;
    let mirrors = opts
        .mirrors
        .iter()
        .map(|m| parse_mirror(m))
        .collect::<Result<Vec<_>>>()?;
    let (work, remove_work) = match &opts.work_dir {
        Some(w) => (w.clone(), false),
        None => {
            let mut name = out.file_name().unwrap_or_default().to_os_string();
            name.push(".work");
            (out.with_file_name(name), true)
        }
    };
    let dir = work.join("bundle");
    // The tree is rebuilt from the downloads each run, so nothing stale survives into it.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| Error::WriteFile {
            path: dir.clone(),
            source,
        })?;
    }
    std::fs::create_dir_all(&dir).map_err(|source| Error::WriteFile {
        path: dir.clone(),
        source,
    })?;
    let bar = progress_bar(opts.progress);
    let fetcher = fetch::Fetcher::new(mirrors, opts.jobs, opts.retries, opts.backoff, bar.clone())?;
    let assembled = assemble::assemble(&plan, &fetcher, &work, &dir).await;
    bar.finish_and_clear();
    let mut assembled = assembled?;
    render::render_charts(&plan, &dir, &work, &mut assembled.files)?;
    let name = opts.name.clone().unwrap_or_else(|| {
        let arches: Vec<&str> = plan.arches.iter().map(|a| a.as_str()).collect();
        format!("kubernetes-{}-{}", plan.kubernetes, arches.join("-"))
    });
    let manifest = Manifest {
        version: MANIFEST_VERSION_2,
        name: Some(name),
        kubernetes: Some(plan.kubernetes.clone()),
        files: assembled.files,
        images: Vec::new(),
    };
    Ok(Build {
        plan,
        work,
        remove_work,
        dir,
        out: out.to_path_buf(),
        manifest,
        apt_repository: assembled.apt_repository,
        sign_key: opts.sign_key.clone(),
    })
}

impl Build {
    /// The bundle directory being assembled; the image puller writes `images/` here.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The images the sources pin for this release, for the asked arches.
    pub fn images(&self) -> &[PlannedImage] {
        &self.plan.images
    }

    /// The manifest so far.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Copies a kubegrid-agent into `agent/kubegrid-agent-<arch>` and lists it (`kind:
    /// agent`), refusing one that is not an amd64/arm64 executable or needs a glibc newer
    /// than [`crate::GLIBC_FLOOR`], or a second agent for an arch.
    pub fn add_agent(&mut self, agent: &Path) -> Result<BundleFile> {
        let file = crate::agent::add_agent(&self.dir, agent, &self.manifest.files)?;
        self.manifest.files.push(file.clone());
        Ok(file)
    }

    /// Records an image written to `images/`.
    pub fn add_image(&mut self, image: ManifestImage) {
        self.manifest.images.push(image);
    }

    /// Writes manifest.yaml, signs it when a key was given (which verifies every artifact and
    /// image first), packs the bundle into the output file (atomically), then removes a work
    /// directory the build chose itself.
    pub fn finish(self) -> Result<BuildReport> {
        let manifest_path = self.dir.join(MANIFEST_FILE);
        let yaml = serde_yaml::to_string(&self.manifest).map_err(|e| Error::WriteFile {
            path: manifest_path.clone(),
            source: std::io::Error::other(e),
        })?;
        let text = format!(
            "# kubegrid offline bundle manifest, written by `kubegrid bundle build`; format: offline-bundle/README.md\n{yaml}"
        );
        std::fs::write(&manifest_path, text).map_err(|source| Error::WriteFile {
            path: manifest_path.clone(),
            source,
        })?;
        if let Some(key) = &self.sign_key {
            crate::signature::sign(&self.dir, key)?;
        }
        crate::pack::pack(&self.dir, &self.out)?;
        let (size, sha256) = hash_file(&self.out)?;
        if self.remove_work {
            // Everything is in the packed file now; a leftover work directory only costs disk.
            let _ = std::fs::remove_dir_all(&self.work);
        }
        let added: Vec<String> = self
            .manifest
            .images
            .iter()
            .map(|i| format!("{}:{}", i.name, i.tag))
            .collect();
        Ok(BuildReport {
            output: self.out.clone(),
            sha256,
            size,
            name: self.manifest.name.clone().unwrap_or_default(),
            kubernetes: self.plan.kubernetes.clone(),
            arches: self
                .plan
                .arches
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            artifacts: self.manifest.files.len(),
            bytes: self.manifest.files.iter().map(|f| f.size).sum(),
            images: self.manifest.images.len(),
            images_not_included: self
                .plan
                .images
                .iter()
                .map(PlannedImage::reference)
                .filter(|r| !added.contains(r))
                .collect(),
            apt_repository: self.apt_repository.clone(),
            signed: self.sign_key.is_some(),
        })
    }
}

fn progress_bar(wanted: bool) -> ProgressBar {
    use std::io::IsTerminal as _;
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} downloading {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
