//! `kubegrid version`: this kubegrid's version, the agent it would push to hosts and the
//! bundle manifest formats it reads and writes.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use clap::Args;
use kubegrid_engine::agent::{self, Agents};
use serde::Serialize;

use super::Output;

/// Arguments of `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Also look for agents in this bundle's `agent/` folder, as `apply --bundle DIR` does.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
}

/// What `kubegrid version` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    /// This kubegrid's version.
    pub kubegrid: &'static str,
    /// The engine-agent wire protocol this kubegrid speaks.
    pub agent_protocol: u32,
    /// The agents `apply` would push, one per architecture found.
    pub agents: Vec<AgentVersion>,
    /// The bundle manifest format `bundle build` writes.
    pub bundle_format: u32,
    /// Every bundle manifest format this kubegrid reads.
    pub bundle_formats_read: Vec<u32>,
}

/// One agent binary.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentVersion {
    /// Architecture it is for.
    pub arch: String,
    /// Where it is.
    pub path: String,
    /// sha256 of the file, as hosts name it.
    pub sha256: String,
    /// What `kubegrid-agent version` printed; None for an agent of another architecture,
    /// which cannot run here.
    pub version: Option<String>,
    /// Why the version is unknown, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Prints the versions.
pub fn run(args: &VersionArgs, output: Output) -> anyhow::Result<()> {
    let agents = Agents::discover(&agent::default_dirs(args.bundle.as_deref()))?;
    let native = kubegrid_agent::facts::kube_arch(std::env::consts::ARCH);
    let versions = Versions {
        kubegrid: env!("CARGO_PKG_VERSION"),
        agent_protocol: kubegrid_agent::protocol::PROTOCOL_VERSION,
        agents: agents
            .all()
            .map(|(arch, bin)| {
                let (version, note) = if arch == native {
                    match agent_version(&bin.path) {
                        Ok(v) => (Some(v), None),
                        Err(why) => (None, Some(why)),
                    }
                } else {
                    (
                        None,
                        Some(format!("built for {arch}; this machine is {native}")),
                    )
                };
                AgentVersion {
                    arch: arch.to_string(),
                    path: bin.path.display().to_string(),
                    sha256: bin.sha256.clone(),
                    version,
                    note,
                }
            })
            .collect(),
        bundle_format: kubegrid_plan::MANIFEST_VERSION_2,
        bundle_formats_read: kubegrid_plan::MANIFEST_VERSIONS.to_vec(),
    };
    super::emit(output, &versions, || render(&versions))
}

/// Runs `<agent> version` and takes the version from its `kubegrid-agent X` line.
fn agent_version(path: &Path) -> Result<String, String> {
    let out = Command::new(path)
        .arg("version")
        .output()
        .map_err(|e| format!("could not run it: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().strip_prefix("kubegrid-agent ") {
        Some(v) if out.status.success() && !v.is_empty() => Ok(v.to_string()),
        _ => Err(format!(
            "`{} version` did not print a kubegrid-agent version",
            path.display()
        )),
    }
}

fn render(v: &Versions) -> String {
    let mut s = format!("kubegrid {}\n", v.kubegrid);
    if v.agents.is_empty() {
        s.push_str("agent: none found (apply looks in the bundle's agent/ folder and beside this executable)\n");
    }
    for a in &v.agents {
        let version = a.version.as_deref().unwrap_or("unknown");
        s.push_str(&format!("agent ({}) {version}: {}", a.arch, a.path));
        if let Some(note) = &a.note {
            s.push_str(&format!(" ({note})"));
        }
        s.push('\n');
    }
    s.push_str(&format!("agent protocol {}\n", v.agent_protocol));
    let read: Vec<String> = v.bundle_formats_read.iter().map(u32::to_string).collect();
    s.push_str(&format!(
        "bundle format {} (reads {})\n",
        v.bundle_format,
        read.join(", ")
    ));
    s
}
