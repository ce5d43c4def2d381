//! `kubegrid bundle`: building, keys, signatures and inspection of offline bundles.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use kubegrid_bundle::{BuildOptions, BuildReport, BundleDiff, Inspection, Sources};
use kubegrid_plan::Arch;
use serde_json::json;

use super::{Output, UsageError, block_on, bundle_agents, emit, packed::with_bundle};
use crate::exit;

/// `kubegrid bundle`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BundleCommand,
}

/// Bundle commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Download and verify everything a Kubernetes release needs, and pack it as one
    /// tar + zstd bundle with a version 2 manifest.
    Build(Box<BuildArgs>),
    /// Make an Ed25519 key pair for signing bundles; never overwrites a file.
    Keygen {
        /// Where to write the private key (mode 0600).
        #[arg(long, value_name = "FILE")]
        private: PathBuf,
        /// Where to write the public key.
        #[arg(long, value_name = "FILE")]
        public: PathBuf,
    },
    /// Verify every artifact, then sign the manifest (writes DIR/manifest.yaml.sig).
    Sign {
        /// The bundle directory.
        dir: PathBuf,
        /// The private key from `bundle keygen`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Check the manifest's signature, then every artifact's size and sha256.
    Verify {
        /// The bundle: a directory, or a packed .tar.zst (unpacked once into a cache).
        dir: PathBuf,
        /// The public key from `bundle keygen`.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
    /// Show the versions, arches and artifacts a bundle holds (reads the manifest only).
    Inspect {
        /// The bundle: a directory, or a packed .tar.zst (unpacked once into a cache).
        dir: PathBuf,
    },
    /// Compare two bundles' artifacts by kind, name and arch.
    Diff {
        /// The old bundle (directory or packed .tar.zst).
        a: PathBuf,
        /// The new bundle (directory or packed .tar.zst).
        b: PathBuf,
    },
}

/// `kubegrid bundle build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The Kubernetes version (a release in the sources, e.g. 1.34.2).
    #[arg(long = "k8s-version", value_name = "VERSION")]
    pub k8s_version: String,
    /// Architectures to fetch, comma-separated.
    #[arg(
        long,
        value_name = "ARCH,...",
        value_delimiter = ',',
        default_value = "amd64"
    )]
    pub arch: Vec<String>,
    /// Fetch through this mirror: https://<host>/<path> becomes URL/<host>/<path>. Repeat to
    /// try several in order; upstream is then never contacted.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Pull images through this registry mirror, which holds each image under its upstream
    /// host (`registry.k8s.io/pause` is repository `registry.k8s.io/pause` there).
    #[arg(long, value_name = "URL")]
    pub image_mirror: Option<String>,
    /// Add the sources' OS packages for this distribution (e.g. debian-12) with an apt
    /// repository for them.
    #[arg(long, value_name = "DISTRO")]
    pub include_os_packages: Option<String>,
    /// Leave a component of the release out (e.g. kata); repeatable.
    #[arg(long = "without", value_name = "COMPONENT")]
    pub without: Vec<String>,
    /// The sources file; defaults to the offline-bundle/sources.yaml built into kubegrid.
    #[arg(long, value_name = "FILE")]
    pub sources: Option<PathBuf>,
    /// Where to write the bundle (.tar.zst); it appears only complete.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Keep downloads here (a cache across builds); defaults to OUT.work, removed after a
    /// successful build. A failed build keeps it so a re-run resumes.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Downloads at a time.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// Retries per URL on transient errors (connection cut, 5xx, 429), with backoff.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub retries: u32,
    /// Milliseconds before the first retry; each further retry waits twice as long.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub retry_wait_ms: u64,
    /// The bundle name in the manifest; defaults to kubernetes-<version>-<arches>.
    #[arg(long)]
    pub name: Option<String>,
    /// Sign the bundle with this private key (`bundle keygen`) before packing, so the packed
    /// file carries manifest.yaml.sig.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// A kubegrid-agent to put in the bundle's agent/ folder, its arch read from the file;
    /// repeat for each arch. It must need at most GLIBC_2.28 (docs/agent.md). Default: the
    /// kubegrid-agent-<arch> files beside this kubegrid, where there are any.
    #[arg(long = "agent", value_name = "FILE")]
    pub agents: Vec<PathBuf>,
}

/// Runs a `bundle` command.
pub fn run(args: &BundleArgs, output: Output) -> anyhow::Result<u8> {
    match &args.command {
        BundleCommand::Build(b) => return block_on(build(b, output)),
        BundleCommand::Keygen { private, public } => {
            let key = kubegrid_bundle::generate_key(private, public)?;
            let doc = json!({
                "privateKey": private,
                "publicKey": public,
                "fingerprint": key.fingerprint(),
            });
            emit(output, &doc, || {
                format!(
                    "wrote private key {} (mode 0600, keep it secret)\nwrote public key  {}\nfingerprint {}\n",
                    private.display(),
                    public.display(),
                    key.fingerprint()
                )
            })?;
        }
        BundleCommand::Sign { dir, key } => {
            let signature = kubegrid_bundle::sign(dir, key)?;
            emit(output, &json!({ "signature": signature }), || {
                format!("signed {}: {}\n", dir.display(), signature.display())
            })?;
        }
        BundleCommand::Verify { dir, public_key } => {
            let report = with_bundle(dir, |d| Ok(kubegrid_bundle::verify(d, public_key)?))?;
            emit(output, &report, || {
                format!(
                    "bundle {} verified: signed by {}, {} artifacts, {}\n",
                    report.name.as_deref().unwrap_or(&dir.display().to_string()),
                    report.key_fingerprint,
                    report.artifacts,
                    size(report.bytes)
                )
            })?;
        }
        BundleCommand::Inspect { dir } => {
            let seen = with_bundle(dir, |d| Ok(kubegrid_bundle::inspect(d)?))?;
            emit(output, &seen, || inspection_text(&seen))?;
        }
        BundleCommand::Diff { a, b } => {
            let d = with_bundle(a, |a| with_bundle(b, |b| Ok(kubegrid_bundle::diff(a, b)?)))?;
            emit(output, &d, || diff_text(&d))?;
        }
    }
    Ok(exit::OK)
}

async fn build(args: &BuildArgs, output: Output) -> anyhow::Result<u8> {
    let mut arches = Vec::new();
    for a in &args.arch {
        let arch = match a.trim() {
            "amd64" => Arch::Amd64,
            "arm64" => Arch::Arm64,
            other => {
                return Err(UsageError(format!(
                    "--arch: unknown architecture `{other}`; expected amd64 and/or arm64"
                ))
                .into());
            }
        };
        if !arches.contains(&arch) {
            arches.push(arch);
        }
    }
    let sources = match &args.sources {
        Some(path) => Sources::read(path)?,
        None => Sources::builtin()?,
    };
    let mut opts = BuildOptions::new(&args.k8s_version, &arches);
    opts.mirrors.clone_from(&args.mirrors);
    opts.image_mirror.clone_from(&args.image_mirror);
    opts.os_packages.clone_from(&args.include_os_packages);
    opts.without.clone_from(&args.without);
    opts.work_dir.clone_from(&args.work_dir);
    opts.name.clone_from(&args.name);
    opts.sign_key.clone_from(&args.sign_key);
    opts.jobs = args.jobs;
    opts.retries = args.retries;
    opts.backoff = Duration::from_millis(args.retry_wait_ms);
    opts.progress = output == Output::Text;
    // Checked before anything is downloaded: a wrong agent is bad input.
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(std::path::Path::to_path_buf));
    let mut agents = bundle_agents::choose(&args.agents, &arches, exe_dir.as_deref())?;
    let mut build = kubegrid_bundle::prepare(&sources, &opts, &args.out).await?;
    for agent in &mut agents {
        agent.path = Some(build.add_agent(&agent.from)?.path);
    }
    build.pull_images(opts.image_mirror.as_deref()).await?;
    let report = build.finish()?;
    let mut doc = serde_json::to_value(&report)?;
    doc["agents"] = serde_json::to_value(&agents)?;
    emit(output, &doc, || {
        build_text(&report) + &bundle_agents::text(&agents, &report.arches)
    })?;
    Ok(exit::OK)
}

fn build_text(r: &BuildReport) -> String {
    let mut s = format!(
        "wrote {} ({}, sha256 {})
bundle {}: Kubernetes {} for {}, {} artifacts ({}), {} images
",
        r.output.display(),
        size(r.size),
        r.sha256,
        r.name,
        r.kubernetes,
        r.arches.join(", "),
        r.artifacts,
        size(r.bytes),
        r.images
    );
    if r.signed {
        s.push_str("signed: manifest.yaml.sig is in the bundle\n");
    }
    if let Some(repo) = &r.apt_repository {
        s.push_str(&format!(
            "apt repository: {} (on a host: deb [trusted=yes] file:<bundle dir> {}/)
",
            repo.display(),
            repo.display()
        ));
    }
    if !r.images_not_included.is_empty() {
        s.push_str(&format!(
            "images not in this bundle: {}
",
            r.images_not_included.join(", ")
        ));
    }
    s
}

fn inspection_text(seen: &Inspection) -> String {
    let name = seen
        .name
        .clone()
        .unwrap_or_else(|| seen.dir.display().to_string());
    let mut s = format!(
        "bundle {name}  manifest v{}  {}\n{}arches: {}\n",
        seen.manifest_version,
        if seen.signed {
            "signed (signature not checked; use `bundle verify`)"
        } else {
            "unsigned"
        },
        seen.kubernetes
            .as_ref()
            .map(|k| format!("kubernetes: {k}\n"))
            .unwrap_or_default(),
        seen.arches.join(", ")
    );
    let mut rows = vec![["KIND", "NAME", "VERSION", "ARCH", "SIZE"].map(String::from)];
    for (kind, artifacts) in &seen.kinds {
        for a in artifacts {
            rows.push([
                kind.clone(),
                a.name
                    .clone()
                    .unwrap_or_else(|| a.path.display().to_string()),
                a.version.clone().unwrap_or_else(|| "-".into()),
                a.arch.clone(),
                size(a.size),
            ]);
        }
    }
    s.push_str(&table(&rows));
    s.push_str(&format!(
        "{} artifacts, {}\n",
        seen.artifacts,
        size(seen.bytes)
    ));
    if !seen.images.is_empty() {
        let mut rows = vec![["IMAGE", "TAG", "ARCHES", "DIGEST"].map(String::from)];
        for i in &seen.images {
            let arches: Vec<&str> = i.arches.iter().map(|a| a.as_str()).collect();
            rows.push([
                i.name.clone(),
                i.tag.clone(),
                arches.join(","),
                i.digest.clone(),
            ]);
        }
        s.push_str(&table(&rows));
        s.push_str(&format!("{} images\n", seen.images.len()));
    }
    s
}

fn diff_text(d: &BundleDiff) -> String {
    if d.is_empty() {
        return "the bundles hold the same artifacts\n".into();
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![["", "KIND", "NAME", "ARCH", "FROM", "TO"].map(String::from)];
    for v in &d.added {
        let k = &v.key;
        rows.push(["+", &k.kind, &k.name, &k.arch, "-", &or_dash(&v.version)].map(String::from));
    }
    for v in &d.removed {
        let k = &v.key;
        rows.push(["-", &k.kind, &k.name, &k.arch, &or_dash(&v.version), "-"].map(String::from));
    }
    for c in &d.changed {
        let k = &c.key;
        let (from, to) = if c.from_version == c.to_version {
            // Same version, other bytes: the sha256 prefixes are what tells them apart.
            (
                format!("{} ({})", or_dash(&c.from_version), &c.from_sha256[..12]),
                format!("{} ({})", or_dash(&c.to_version), &c.to_sha256[..12]),
            )
        } else {
            (or_dash(&c.from_version), or_dash(&c.to_version))
        };
        rows.push(["~", &k.kind, &k.name, &k.arch, &from, &to].map(String::from));
    }
    let mut s = table(&rows);
    s.push_str(&format!(
        "{} added, {} removed, {} changed\n",
        d.added.len(),
        d.removed.len(),
        d.changed.len()
    ));
    s
}

/// Left-aligned columns two spaces apart, sized to the widest cell.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

/// Bytes in binary units, one decimal.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "one decimal place is all that is shown"
    )]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
