//! Finding the agent binary for a host's architecture and the shell lines that place it.
//!
//! The agent lives on a host at `/var/lib/kubegrid/agent/kubegrid-agent-<sha256>`: naming it
//! by content makes "already uploaded" one `test -x`, and an upgrade of kubegrid simply
//! brings a new file next to the old one.

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

use kubegrid_plan::{Bundle, FileKind};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Where agents live on hosts.
pub const REMOTE_DIR: &str = "/var/lib/kubegrid/agent";

/// An agent binary on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBinary {
    /// Local file.
    pub path: PathBuf,
    /// Its sha256, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where it was found, for reports: `bundle agent/kubegrid-agent-amd64`,
    /// `KUBEGRID_AGENT_DIR /dir/kubegrid-agent`, `beside kubegrid /usr/bin/kubegrid-agent`.
    pub source: String,
}

impl AgentBinary {
    /// The path it is installed at on a host.
    pub fn remote_path(&self) -> String {
        format!("{REMOTE_DIR}/kubegrid-agent-{}", self.sha256)
    }
}

/// Agent binaries by architecture ("amd64", "arm64").
#[derive(Debug, Clone, Default)]
pub struct Agents {
    by_arch: BTreeMap<String, AgentBinary>,
    looked: Vec<String>,
}

impl Agents {
    /// The agents for a run from `bundle`: a `KUBEGRID_AGENT_DIR` override first (a developer's
    /// own build), then the bundle's `kind: agent` entries (verified with the bundle when it
    /// was opened, so covered by its signature), then the agents beside this executable.
    pub fn for_bundle(bundle: &Bundle) -> Result<Agents, Error> {
        let mut agents = Agents::default();
        if let Some(dir) = std::env::var_os(AGENT_DIR_ENV) {
            agents.add_dir(&PathBuf::from(dir), AGENT_DIR_ENV)?;
        }
        for arch in ["amd64", "arm64"] {
            if agents.by_arch.contains_key(arch) {
                continue;
            }
            agents.looked.push(format!(
                "the bundle's manifest (kind: agent, arch: {arch}) in {}",
                bundle.dir().display()
            ));
            let entry = bundle
                .manifest()
                .files
                .iter()
                .find(|f| f.kind == FileKind::Agent && f.arch.as_str() == arch);
            if let Some(f) = entry {
                agents.by_arch.insert(
                    arch.to_string(),
                    AgentBinary {
                        path: bundle.dir().join(&f.path),
                        sha256: f.sha256.clone(),
                        size: f.size,
                        source: format!("bundle {}", f.path.display()),
                    },
                );
            }
        }
        if let Some(dir) = exe_dir() {
            agents.add_dir(&dir, "beside kubegrid")?;
        }
        Ok(agents)
    }

    /// Looks in `dirs` (in order) for `kubegrid-agent-<arch>`, and for a plain
    /// `kubegrid-agent` that is taken to be built for this machine's own architecture.
    pub fn discover(dirs: &[PathBuf]) -> Result<Agents, Error> {
        let mut agents = Agents::default();
        for dir in dirs {
            agents.add_dir(dir, "in")?;
        }
        Ok(agents)
    }

    /// Adds the agents in `dir` for arches that have none yet; `how` says in reports why
    /// the folder was searched.
    fn add_dir(&mut self, dir: &Path, how: &str) -> Result<(), Error> {
        let native = kubegrid_agent::facts::kube_arch(std::env::consts::ARCH);
        for arch in ["amd64", "arm64"] {
            let candidates = [
                (dir.join(format!("kubegrid-agent-{arch}")), true),
                (dir.join("kubegrid-agent"), arch == native),
            ];
            for (path, applies) in candidates {
                if !applies || self.by_arch.contains_key(arch) {
                    continue;
                }
                self.looked.push(path.display().to_string());
                if path.is_file() {
                    let mut found = hash_file(&path)?;
                    found.source = format!("{how} {}", path.display());
                    self.by_arch.insert(arch.to_string(), found);
                }
            }
        }
        Ok(())
    }

    /// The agent for `arch` (from the host's `uname -m` output `machine`), or an error naming
    /// the host, what it is and where an agent for it was looked for.
    pub fn for_arch(&self, host: &str, machine: &str, arch: &str) -> Result<&AgentBinary, Error> {
        self.by_arch.get(arch).ok_or_else(|| Error::AgentMissing {
            host: host.to_string(),
            machine: machine.trim().to_string(),
            arch: arch.to_string(),
            looked: self.looked.join(", "),
        })
    }

    /// All known agents.
    pub fn all(&self) -> impl Iterator<Item = (&str, &AgentBinary)> {
        self.by_arch.iter().map(|(a, b)| (a.as_str(), b))
    }
}

/// The environment variable naming a folder whose agents override every other.
pub const AGENT_DIR_ENV: &str = "KUBEGRID_AGENT_DIR";

/// The places `kubegrid version` lists agents from: `KUBEGRID_AGENT_DIR`, the bundle's
/// `agent/` folder, then beside this executable. Runs take theirs from
/// [`Agents::for_bundle`].
pub fn default_dirs(bundle_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(AGENT_DIR_ENV) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(b) = bundle_dir {
        dirs.push(b.join("agent"));
    }
    dirs.extend(exe_dir());
    dirs
}

fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
}

fn hash_file(path: &Path) -> Result<AgentBinary, Error> {
    let read = |e| Error::ReadLocal {
        path: path.to_path_buf(),
        source: e,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(read)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(AgentBinary {
        path: path.to_path_buf(),
        sha256: hex::encode(hasher.finalize()),
        size,
        source: path.display().to_string(),
    })
}

/// Quotes a word for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Wraps a shell script so it runs as root: as is for root, through `sudo -n` otherwise
/// (`-n` because nothing can answer a password prompt; a sudo that wants one fails at once).
pub fn privileged(script: &str, sudo: bool) -> String {
    if sudo {
        format!("sudo -n sh -c {}", shell_quote(script))
    } else {
        format!("sh -c {}", shell_quote(script))
    }
}

/// The first round trip: the host's machine name and which known agents it already has.
pub fn probe_script(agents: &Agents) -> String {
    let mut s = String::from("uname -m");
    for (_, a) in agents.all() {
        let p = a.remote_path();
        s.push_str(&format!("; if [ -x {p} ]; then echo have {p}; fi"));
    }
    s
}

/// Runs an agent that is already installed, with subcommand `cmd` (`run`, `fanout`).
pub fn run_installed(agent: &AgentBinary, cmd: &str) -> String {
    format!("exec {} {cmd}", agent.remote_path())
}

/// Receives the agent on stdin (exactly `size` bytes), verifies its checksum, installs it
/// under its content name and then runs it on the rest of stdin. `head -c` reads no more than
/// it is told to, so the plan (or job) that follows the binary reaches the agent intact.
pub fn install_and_run(agent: &AgentBinary, cmd: &str) -> String {
    format!(
        "set -e; umask 077; mkdir -p {REMOTE_DIR}; t=$(mktemp -p {REMOTE_DIR}); \
         head -c {size} > \"$t\"; \
         if ! echo '{sha}  '\"$t\" | sha256sum -c --status; then rm -f \"$t\"; echo 'kubegrid: agent upload corrupted' >&2; exit 97; fi; \
         chmod 0755 \"$t\"; mv -f \"$t\" {dest}; exec {dest} {cmd}",
        size = agent.size,
        sha = agent.sha256,
        dest = agent.remote_path(),
    )
}

/// Dry runs must not leave anything behind: the agent goes to a temporary file that is
/// removed when the run ends.
pub fn run_transient(agent: &AgentBinary) -> String {
    format!(
        "set -e; t=$(mktemp -p /tmp); trap 'rm -f \"$t\"' EXIT; \
         head -c {size} > \"$t\"; \
         if ! echo '{sha}  '\"$t\" | sha256sum -c --status; then echo 'kubegrid: agent upload corrupted' >&2; exit 97; fi; \
         chmod 0700 \"$t\"; \"$t\" run",
        size = agent.size,
        sha = agent.sha256,
    )
}

/// Maps `uname -m` to Kubernetes' architecture names.
pub fn arch_from_uname(machine: &str) -> Option<&'static str> {
    match machine.trim() {
        "x86_64" | "amd64" => Some("amd64"),
        "aarch64" | "arm64" => Some("arm64"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("/var/lib/x"), "/var/lib/x");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn sudo_wraps_the_whole_script() {
        assert_eq!(privileged("echo hi", false), "sh -c 'echo hi'");
        assert_eq!(privileged("echo hi", true), "sudo -n sh -c 'echo hi'");
    }

    #[test]
    fn maps_uname() {
        assert_eq!(arch_from_uname("x86_64\n"), Some("amd64"));
        assert_eq!(arch_from_uname("aarch64"), Some("arm64"));
        assert_eq!(arch_from_uname("riscv64"), None);
    }

    #[test]
    fn a_bundles_listed_agent_is_used_and_a_missing_arch_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("agent")).unwrap();
        std::fs::write(
            dir.path().join("agent/kubegrid-agent-amd64"),
            b"amd64 agent",
        )
        .unwrap();
        // An unlisted file is not covered by the manifest (or its signature): never used.
        std::fs::write(dir.path().join("agent/kubegrid-agent-arm64"), b"stray").unwrap();
        let sha = hex::encode(Sha256::digest(b"amd64 agent"));
        std::fs::write(
            dir.path().join("manifest.yaml"),
            format!(
                "version: 1\nfiles:\n  - path: agent/kubegrid-agent-amd64\n    sha256: {sha}\n    size: 11\n    arch: amd64\n    kind: agent\n    name: kubegrid-agent\n"
            ),
        )
        .unwrap();
        let bundle = Bundle::open(dir.path()).unwrap();
        let agents = Agents::for_bundle(&bundle).unwrap();
        let a = agents.for_arch("h1", "x86_64", "amd64").unwrap();
        assert_eq!(a.source, "bundle agent/kubegrid-agent-amd64");
        assert_eq!(a.sha256, sha);
        assert_eq!(a.path, dir.path().join("agent/kubegrid-agent-amd64"));
        if let Ok(other) = agents.for_arch("h1", "aarch64", "arm64") {
            // Only an arm64 agent beside this test binary may serve arm64.
            assert!(other.source.starts_with("beside kubegrid"), "{other:?}");
            return;
        }
        let err = agents
            .for_arch("h1", "aarch64\n", "arm64")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "h1: the host is aarch64 (arm64) and there is no kubegrid-agent for arm64"
            ) && err.contains("the bundle's manifest (kind: agent, arch: arm64)")
                && err.contains("hint:"),
            "{err}"
        );
    }

    #[test]
    fn discovers_a_native_agent_by_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubegrid-agent"), b"agent bytes").unwrap();
        let agents = Agents::discover(&[dir.path().to_path_buf()]).unwrap();
        let native = kubegrid_agent::facts::kube_arch(std::env::consts::ARCH);
        let a = agents.for_arch("h1", "x", native).unwrap();
        assert_eq!(a.size, 11);
        assert_eq!(a.sha256, hex::encode(Sha256::digest(b"agent bytes")));
        assert!(a.remote_path().ends_with(&a.sha256));
        let other = if native == "amd64" { "arm64" } else { "amd64" };
        let err = agents.for_arch("h1", "m", other).unwrap_err().to_string();
        assert!(err.contains(&format!("kubegrid-agent-{other}")), "{err}");
    }
}
