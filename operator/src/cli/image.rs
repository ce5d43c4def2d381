//! `kubegrid image build`: the operator's container image, written into an OCI image layout
//! (a directory, or a bundle's `images/` with the image listed in its manifest) by
//! kubegrid-oci, with no container engine.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use clap::{Args, Subcommand};
use kubegrid_oci::{BuiltImage, ImageArch, ImageSpec, Layout};
use kubegrid_plan::{Arch, IMAGES_DIR, MANIFEST_FILE, MANIFEST_VERSION_2, ManifestImage};
use serde::Serialize;

use super::{Output, UsageError, emit};

/// The repository the chart pulls the operator from by default.
pub const DEFAULT_REPOSITORY: &str = "ghcr.io/kubegrid/kubegrid";
/// The bundle manifest's `component` for the operator image.
const COMPONENT: &str = "operator";
/// Debian's (and Ubuntu's) CA bundle, from the ca-certificates package.
const DEFAULT_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Arguments of `kubegrid image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// `kubegrid image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the operator image from static kubegrid binaries into an OCI image layout, and
    /// print its digest (the chart's image.digest).
    Build(BuildArgs),
}

/// Arguments of `kubegrid image build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A statically linked kubegrid binary and its architecture, as ARCH=PATH (amd64 or
    /// arm64); repeat for a multi-architecture image. The amd64 one is required: its
    /// `version` output names the image's version.
    #[arg(long = "binary", value_name = "ARCH=PATH", required = true, value_parser = parse_binary)]
    pub binaries: Vec<(ImageArch, PathBuf)>,

    /// Write the image into this OCI image layout (created when missing).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "bundle",
        conflicts_with = "bundle"
    )]
    pub layout: Option<PathBuf>,

    /// Write the image into this bundle's images/ layout and list it in its manifest.yaml, so
    /// `apply` pushes it into the bundle registry. Sign the bundle again afterwards.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,

    /// The image's repository; its tag is the binary's version.
    #[arg(long, value_name = "REPOSITORY", default_value = DEFAULT_REPOSITORY)]
    pub repository: String,

    /// The CA certificates (PEM) the image carries at /etc/ssl/certs/ca-certificates.crt.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CA)]
    pub ca_certificates: PathBuf,

    /// The source revision (e.g. a git commit) for the org.opencontainers.image.revision label;
    /// left out when not given.
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<String>,

    /// The image's creation time in seconds since the epoch: its `created` and every file's
    /// mtime. Without it the image has no `created` and mtimes are 0, so the digest depends
    /// on the inputs only.
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS", value_parser = parse_epoch)]
    pub source_date_epoch: Option<u64>,
}

/// What `kubegrid image build` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// `repository:tag`, as index.json names it.
    image: String,
    /// The index digest: what the chart's image.digest takes.
    digest: String,
    /// Each architecture's manifest digest.
    manifests: BTreeMap<String, String>,
    /// The layout written.
    layout: String,
    /// The bundle manifest that now lists the image, with --bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    bundle_manifest: Option<String>,
}

/// Runs `kubegrid image`.
pub fn run(args: &ImageArgs, output: Output) -> anyhow::Result<()> {
    match &args.command {
        ImageCommand::Build(build) => run_build(build, output),
    }
}

fn run_build(args: &BuildArgs, output: Output) -> anyhow::Result<()> {
    let mut binaries = BTreeMap::new();
    for (arch, path) in &args.binaries {
        if binaries.insert(*arch, path.clone()).is_some() {
            return Err(UsageError(format!(
                "--binary: {arch} is given twice; expected one binary per architecture"
            ))
            .into());
        }
    }
    let Some(amd64) = binaries.get(&ImageArch::Amd64) else {
        return Err(UsageError(
            "--binary: no amd64 binary; expected --binary amd64=PATH (its `version` output names the image's version; an arm64 binary may be added beside it)".to_owned(),
        )
        .into());
    };
    let layout_dir = match (&args.layout, &args.bundle) {
        (_, Some(bundle)) => {
            check_bundle_manifest(bundle)?;
            bundle.join(IMAGES_DIR)
        }
        (Some(dir), None) => dir.clone(),
        (None, None) => unreachable!("clap requires --layout or --bundle"),
    };
    // Every binary is checked before the amd64 one is run for its version and before any
    // file is written.
    for (arch, path) in &binaries {
        kubegrid_oci::check_image_binary(*arch, path).map_err(input_or_failure)?;
    }
    let version = binary_version(amd64)?;
    let mut labels = BTreeMap::from([
        ("org.opencontainers.image.title", "kubegrid".to_owned()),
        (
            "org.opencontainers.image.description",
            env!("CARGO_PKG_DESCRIPTION").to_owned(),
        ),
        ("org.opencontainers.image.version", version.clone()),
        (
            "org.opencontainers.image.licenses",
            env!("CARGO_PKG_LICENSE").to_owned(),
        ),
        (
            "org.opencontainers.image.source",
            env!("CARGO_PKG_REPOSITORY").to_owned(),
        ),
    ]);
    if let Some(revision) = &args.revision {
        labels.insert("org.opencontainers.image.revision", revision.clone());
    }
    if let Some(epoch) = args.source_date_epoch {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
        labels.insert(
            "org.opencontainers.image.created",
            humantime::format_rfc3339_seconds(time).to_string(),
        );
    }
    let spec = ImageSpec {
        name: format!("{}:{version}", args.repository),
        binaries,
        ca_certificates: args.ca_certificates.clone(),
        cmd: vec!["operator".to_owned()],
        labels: labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        created: args.source_date_epoch,
    };
    let layout = Layout::create(&layout_dir)?;
    let built = kubegrid_oci::build_image(&layout, &spec).map_err(input_or_failure)?;
    let bundle_manifest = match &args.bundle {
        Some(bundle) => Some(list_in_bundle(bundle, &args.repository, &version, &built)?),
        None => None,
    };
    let report = Report {
        image: built.name.clone(),
        digest: built.index.digest.clone(),
        manifests: built
            .manifests
            .iter()
            .map(|(a, d)| (a.to_string(), d.to_string()))
            .collect(),
        layout: layout_dir.display().to_string(),
        bundle_manifest: bundle_manifest.map(|p| p.display().to_string()),
    };
    emit(output, &report, || render(&report, args))
}

fn render(r: &Report, args: &BuildArgs) -> String {
    let mut s = format!("image {} in {}\ndigest {}\n", r.image, r.layout, r.digest);
    for (arch, digest) in &r.manifests {
        s.push_str(&format!("  linux/{arch} {digest}\n"));
    }
    if let Some(manifest) = &r.bundle_manifest {
        s.push_str(&format!(
            "listed in {manifest}; sign the bundle again: kubegrid bundle sign {} --key KEY\n",
            args.bundle.as_deref().unwrap_or(Path::new(".")).display()
        ));
    }
    s.push_str(&format!("chart: --set image.digest={}\n", r.digest));
    s
}

/// The version `<binary> version -o json` reports; running it also shows it starts.
fn binary_version(binary: &Path) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .args(["version", "-o", "json"])
        .output()
        .map_err(|e| {
            UsageError(format!(
                "--binary amd64={}: cannot run it ({e}); expected a kubegrid binary built for this machine",
                binary.display()
            ))
        })?;
    let parsed: Option<String> = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["kubegrid"].as_str().map(str::to_owned));
    match parsed {
        Some(version) if out.status.success() && !version.is_empty() => Ok(version),
        _ => Err(UsageError(format!(
            "--binary amd64={}: `version -o json` printed no kubegrid version (exit {:?}); expected a kubegrid binary",
            binary.display(),
            out.status.code()
        ))
        .into()),
    }
}

/// Refuses a bundle whose manifest cannot list images before anything is written.
fn check_bundle_manifest(bundle: &Path) -> anyhow::Result<()> {
    let manifest = kubegrid_plan::read_manifest(bundle)?;
    if manifest.version < MANIFEST_VERSION_2 {
        return Err(UsageError(format!(
            "--bundle {}: its manifest is format {}, which cannot list images; expected format {MANIFEST_VERSION_2}; hint: build the bundle with `kubegrid bundle build`, or use --layout DIR",
            bundle.display(),
            manifest.version
        ))
        .into());
    }
    Ok(())
}

/// Lists (or replaces) the image in the bundle's manifest.yaml; returns the manifest's path.
fn list_in_bundle(
    bundle: &Path,
    repository: &str,
    tag: &str,
    built: &BuiltImage,
) -> anyhow::Result<PathBuf> {
    let mut manifest = kubegrid_plan::read_manifest(bundle)?;
    manifest
        .images
        .retain(|i| !(i.name == repository && i.tag == tag));
    manifest.images.push(ManifestImage {
        name: repository.to_owned(),
        tag: tag.to_owned(),
        digest: built.index.digest.clone(),
        upstream_digest: None,
        arches: built
            .manifests
            .keys()
            .map(|a| match a {
                ImageArch::Amd64 => Arch::Amd64,
                ImageArch::Arm64 => Arch::Arm64,
            })
            .collect(),
        component: Some(COMPONENT.to_owned()),
    });
    let path = bundle.join(MANIFEST_FILE);
    // The manifest's leading comment lines (what the bundle is, its format's documentation)
    // are kept; serde_yaml writes none.
    let original = std::fs::read_to_string(&path)?;
    let mut text: String = original
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&serde_yaml::to_string(&manifest)?);
    let temp = path.with_extension("yaml.partial");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, &path)?;
    Ok(path)
}

/// Bad binaries and missing files are the user's input (exit 2); the rest is a failure.
fn input_or_failure(e: kubegrid_oci::Error) -> anyhow::Error {
    match e {
        kubegrid_oci::Error::UnfitImageBinary { .. }
        | kubegrid_oci::Error::ReadImageBinary { .. }
        | kubegrid_oci::Error::ReadImageFile { .. } => UsageError(e.to_string()).into(),
        other => other.into(),
    }
}

fn parse_binary(text: &str) -> Result<(ImageArch, PathBuf), String> {
    let (arch, path) = text
        .split_once('=')
        .ok_or_else(|| "expected ARCH=PATH, e.g. amd64=target/release/kubegrid".to_owned())?;
    let arch = ImageArch::parse(arch)
        .ok_or_else(|| format!("architecture `{arch}` is not amd64 or arm64"))?;
    if path.is_empty() {
        return Err("the path after `=` is empty".to_owned());
    }
    Ok((arch, PathBuf::from(path)))
}

fn parse_epoch(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| {
        format!(
            "expected whole seconds since 1970-01-01 UTC (like `date +%s` prints), saw `{text}`"
        )
    })
}
