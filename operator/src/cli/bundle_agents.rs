//! The kubegrid-agents `kubegrid bundle build` puts into a bundle's `agent/` folder: the
//! `--agent` files, or else the `kubegrid-agent-<arch>` files beside the kubegrid executable
//! (where a release archive ships them). Each is checked before anything is downloaded.

use std::path::{Path, PathBuf};

use kubegrid_bundle::{AgentElf, check_agent};
use kubegrid_plan::Arch;
use serde::Serialize;

use super::UsageError;

/// An agent chosen for the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChosenAgent {
    /// The file it is copied from.
    pub from: PathBuf,
    /// Its architecture, from its ELF header.
    pub arch: &'static str,
    /// The newest glibc symbol version it requires (`GLIBC_2.28`, or `no glibc`).
    pub glibc: String,
    /// Where it goes in the bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// Checks the `--agent` files (or, with none, those beside `exe_dir`) against the bundle's
/// arches: each must be an amd64/arm64 executable for one of `arches` that needs at most
/// GLIBC_2.28, one per arch.
pub fn choose(
    given: &[PathBuf],
    arches: &[Arch],
    exe_dir: Option<&Path>,
) -> anyhow::Result<Vec<ChosenAgent>> {
    let mut chosen: Vec<ChosenAgent> = Vec::new();
    let candidates: Vec<PathBuf> = if given.is_empty() {
        let Some(dir) = exe_dir else {
            return Ok(chosen);
        };
        arches
            .iter()
            .map(|a| dir.join(format!("{}-{}", kubegrid_bundle::AGENT_NAME, a.as_str())))
            .filter(|p| p.is_file())
            .collect()
    } else {
        given.to_vec()
    };
    for path in candidates {
        let seen: AgentElf = check_agent(&path)?;
        if !arches.contains(&seen.arch) {
            let list: Vec<&str> = arches.iter().map(|a| a.as_str()).collect();
            return Err(UsageError(format!(
                "--agent {}: it is built for {}, but the bundle is for {}\n  hint: add {} to --arch, or leave this agent out",
                path.display(),
                seen.arch.as_str(),
                list.join(", "),
                seen.arch.as_str()
            ))
            .into());
        }
        if let Some(other) = chosen.iter().find(|c| c.arch == seen.arch.as_str()) {
            return Err(UsageError(format!(
                "--agent {}: a second kubegrid-agent for {} (the first is {})\n  hint: give one --agent per architecture",
                path.display(),
                seen.arch.as_str(),
                other.from.display()
            ))
            .into());
        }
        chosen.push(ChosenAgent {
            from: path,
            arch: seen.arch.as_str(),
            glibc: seen.glibc_text(),
            path: None,
        });
    }
    Ok(chosen)
}

/// The text lines `bundle build` prints about agents.
pub fn text(chosen: &[ChosenAgent], arches: &[String]) -> String {
    let mut s = String::new();
    for c in chosen {
        s.push_str(&format!(
            "agent {}: {} (from {}, needs {})\n",
            c.arch,
            c.path.as_deref().unwrap_or(Path::new("?")).display(),
            c.from.display(),
            c.glibc
        ));
    }
    let missing: Vec<&str> = arches
        .iter()
        .map(String::as_str)
        .filter(|a| !chosen.iter().any(|c| c.arch == *a))
        .collect();
    if !missing.is_empty() {
        s.push_str(&format!(
            "no kubegrid-agent in the bundle for {}: hosts of that arch need one beside kubegrid or in KUBEGRID_AGENT_DIR (add it with --agent; docs/agent.md)\n",
            missing.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_script_before_any_download() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("kubegrid-agent-amd64");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let err = choose(&[script], &[Arch::Amd64], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a 64-bit ELF"), "{err}");
    }

    #[test]
    fn without_agents_beside_kubegrid_none_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let chosen = choose(&[], &[Arch::Amd64], Some(dir.path())).unwrap();
        assert!(chosen.is_empty());
        let t = text(&chosen, &["amd64".to_string()]);
        assert!(
            t.contains("no kubegrid-agent in the bundle for amd64"),
            "{t}"
        );
    }
}
