//! Charts rendered at build time: each `chart` artifact is run through `helm template` with
//! the helm this very bundle carries for the build machine's arch, and the output is stored
//! beside the chart as a `manifests` file (arch `all`). The engine applies those objects as
//! they are, with images pinned from the bundle, so no helm runs in the operator and what is
//! deployed is exactly what the signature covers.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use kubegrid_plan::{Arch, BundleFile, FileKind};

use super::{fetch::hash_file, mirror::bundle_path};
use crate::{Error, Result, sources_plan::BuildPlan};

/// The helm binary's name in the bundle (sources.yaml's `helm` component extracts it).
const HELM: &str = "helm";

/// Where a chart's rendered objects go: beside the chart, `.tgz` replaced by `.yaml`.
fn rendered_path(chart: &Path) -> PathBuf {
    let name = chart.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".tgz").unwrap_or(&name);
    chart.with_file_name(format!("{stem}.yaml"))
}

/// Renders every chart of `plan` found in `files` (the assembled tree under `dir`), adding
/// a `manifests` entry for each; `work` holds helm's own cache and config.
pub(super) fn render_charts(
    plan: &BuildPlan,
    dir: &Path,
    work: &Path,
    files: &mut Vec<BundleFile>,
) -> Result<()> {
    for f in &plan.files {
        let Some(render) = &f.render else { continue };
        let what = format!("{} {} ({})", f.component, f.version, f.url);
        let fail = |problem: String| Error::RenderChart {
            what: what.clone(),
            problem,
        };
        let arch = kubegrid_agent::facts::kube_arch(std::env::consts::ARCH);
        let helm = files
            .iter()
            .find(|b| {
                b.kind == FileKind::Binary && b.name.as_deref() == Some(HELM) && b.arch.serves(arch)
            })
            .ok_or_else(|| {
                fail(format!(
                    "the bundle has no helm for this machine's arch ({arch}); expected the release's `helm` component; hint: build with --arch {arch} too, and without `--without helm`"
                ))
            })?;
        let helm = dir.join(&helm.path);
        let chart = bundle_path(&f.url)?;
        let out = rendered_path(&chart);
        let home = work.join("helm-home");
        std::fs::create_dir_all(&home).map_err(|source| Error::WriteFile {
            path: home.clone(),
            source,
        })?;
        let output = Command::new(&helm)
            .args(["template", &render.release])
            .arg(dir.join(&chart))
            .args(["--namespace", &render.namespace])
            .args(["--include-crds", "--skip-tests"])
            .args(["--kube-version", &plan.kubernetes])
            // Rendering needs no cluster and no repositories: helm gets an empty home and no
            // kubeconfig, so nothing of the build machine's own helm setup leaks in.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("KUBECONFIG", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run {}: {e}", helm.display())))?;
        if !output.status.success() {
            return Err(fail(format!(
                "`helm template` exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Err(fail("`helm template` printed no objects".into()));
        }
        let dest = dir.join(&out);
        std::fs::write(&dest, &output.stdout).map_err(|source| Error::WriteFile {
            path: dest.clone(),
            source,
        })?;
        let (size, sha256) = hash_file(&dest)?;
        files.push(BundleFile {
            path: out,
            sha256,
            size,
            arch: Arch::All,
            kind: FileKind::Manifests,
            name: f.name.clone(),
            version: Some(f.version.clone()),
            component: Some(f.component.clone()),
            source: Some(format!(
                "{}#helm template {} --namespace {}",
                f.url, render.release, render.namespace
            )),
        });
    }
    Ok(())
}
