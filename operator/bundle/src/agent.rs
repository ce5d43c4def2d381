//! kubegrid-agent binaries in a bundle: which architecture an ELF file is built for, and the
//! newest glibc symbol version it needs to start.
//!
//! The agent runs on every host before preflight can say anything about the host, so it must
//! start on the oldest system kubegrid supports: RHEL 8, whose glibc is 2.28. An agent linked
//! against a newer glibc dies at once with "version `GLIBC_2.3x' not found", before it can
//! report anything; `bundle build` therefore refuses one (docs/agent.md says how to build a
//! suitable one).

use std::path::{Path, PathBuf};

use kubegrid_plan::{Arch, BundleFile, FileKind};
use object::{
    Endianness,
    elf::{self, FileHeader64},
    read::elf::FileHeader,
};

use crate::{Error, Result};

/// The oldest glibc kubegrid supports on a host (RHEL 8), as (major, minor).
pub const GLIBC_FLOOR: (u32, u32) = (2, 28);

/// The manifest name of agent entries.
pub const AGENT_NAME: &str = "kubegrid-agent";

/// What an agent binary is, as read from its ELF headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentElf {
    /// The architecture its ELF header names.
    pub arch: Arch,
    /// The newest `GLIBC_x.y` symbol version it requires; `None` for a binary that needs no
    /// glibc (static, or musl).
    pub glibc: Option<(u32, u32)>,
}

impl AgentElf {
    /// `GLIBC_2.28`, or `no glibc`.
    pub fn glibc_text(&self) -> String {
        match self.glibc {
            Some((a, b)) => format!("GLIBC_{a}.{b}"),
            None => "no glibc".to_string(),
        }
    }
}

/// Reads the architecture and the glibc symbol versions an ELF executable requires.
pub fn inspect_agent(path: &Path) -> Result<AgentElf> {
    let data = std::fs::read(path).map_err(|e| Error::Agent {
        path: path.to_path_buf(),
        problem: format!("it cannot be read ({e}); expected a kubegrid-agent executable"),
    })?;
    inspect_elf(&data).map_err(|problem| Error::Agent {
        path: path.to_path_buf(),
        problem,
    })
}

/// [`inspect_agent`] on bytes; the error says what was seen.
pub fn inspect_elf(data: &[u8]) -> std::result::Result<AgentElf, String> {
    let not_elf = || {
        "it is not a 64-bit ELF executable; expected a kubegrid-agent built for Linux amd64 or arm64"
            .to_string()
    };
    let header = FileHeader64::<Endianness>::parse(data).map_err(|_| not_elf())?;
    let endian = header.endian().map_err(|_| not_elf())?;
    let arch = match header.e_machine(endian) {
        elf::EM_X86_64 => Arch::Amd64,
        elf::EM_AARCH64 => Arch::Arm64,
        other => {
            return Err(format!(
                "its ELF header names machine type {other}; expected x86-64 (amd64) or AArch64 (arm64)"
            ));
        }
    };
    let corrupt = |e: object::Error| format!("its ELF headers cannot be read ({e})");
    let sections = header.sections(endian, data).map_err(corrupt)?;
    let mut glibc = None;
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data).map_err(corrupt)? {
        let strings = sections.strings(endian, data, link).map_err(corrupt)?;
        while let Some((_, mut auxes)) = needs.next().map_err(corrupt)? {
            while let Some(aux) = auxes.next().map_err(corrupt)? {
                let name = aux.name(endian, strings).map_err(corrupt)?;
                if let Some(v) = glibc_version(name) {
                    glibc = glibc.max(Some(v));
                }
            }
        }
    }
    Ok(AgentElf { arch, glibc })
}

/// `GLIBC_2.28` → (2, 28); other version names (`GLIBC_PRIVATE`, `GCC_3.0`) → None.
fn glibc_version(name: &[u8]) -> Option<(u32, u32)> {
    let rest = std::str::from_utf8(name).ok()?.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// Checks an agent for a bundle: an amd64/arm64 ELF executable that needs no glibc newer
/// than [`GLIBC_FLOOR`]. Returns what it is.
pub fn check_agent(agent: &Path) -> Result<AgentElf> {
    let seen = inspect_agent(agent)?;
    if let Some(need) = seen.glibc
        && need > GLIBC_FLOOR
    {
        return Err(Error::Agent {
            path: agent.to_path_buf(),
            problem: format!(
                "it requires {}, newer than GLIBC_{}.{} (RHEL 8), so it would not start on every supported host\n  hint: build it with `cargo zigbuild --release -p kubegrid-agent --target {}-unknown-linux-gnu.2.28` (docs/agent.md)",
                seen.glibc_text(),
                GLIBC_FLOOR.0,
                GLIBC_FLOOR.1,
                if seen.arch == Arch::Arm64 {
                    "aarch64"
                } else {
                    "x86_64"
                }
            ),
        });
    }
    Ok(seen)
}

/// Checks an agent ([`check_agent`]) and copies it to `<dir>/agent/kubegrid-agent-<arch>`,
/// returning its manifest entry; `files` are the bundle's entries so far, which must not hold
/// an agent for the same arch.
pub fn add_agent(dir: &Path, agent: &Path, files: &[BundleFile]) -> Result<BundleFile> {
    let seen = check_agent(agent)?;
    if files
        .iter()
        .any(|f| f.kind == FileKind::Agent && f.arch == seen.arch)
    {
        return Err(Error::Agent {
            path: agent.to_path_buf(),
            problem: format!(
                "the bundle already has a kubegrid-agent for {}\n  hint: give one --agent per architecture",
                seen.arch.as_str()
            ),
        });
    }
    let rel = PathBuf::from("agent").join(format!("{AGENT_NAME}-{}", seen.arch.as_str()));
    let dest = dir.join(&rel);
    let write = |source| Error::WriteFile {
        path: dest.clone(),
        source,
    };
    std::fs::create_dir_all(dest.parent().unwrap_or(dir)).map_err(write)?;
    std::fs::copy(agent, &dest).map_err(write)?;
    let (size, sha256) = crate::build::hash_file(&dest)?;
    Ok(BundleFile {
        path: rel,
        sha256,
        size,
        arch: seen.arch,
        kind: FileKind::Agent,
        name: Some(AGENT_NAME.to_string()),
        // The agent's own version is known only by running it, which an agent for another
        // architecture cannot do here.
        version: None,
        component: None,
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_glibc_version_names() {
        assert_eq!(glibc_version(b"GLIBC_2.28"), Some((2, 28)));
        assert_eq!(glibc_version(b"GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version(b"GLIBC_2.3"), Some((2, 3)));
        assert_eq!(glibc_version(b"GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version(b"GCC_3.0"), None);
        // 2.3 is older than 2.28: versions compare as numbers, not as text.
        assert!(glibc_version(b"GLIBC_2.3") < glibc_version(b"GLIBC_2.28"));
    }

    #[test]
    fn refuses_what_is_not_an_elf_executable() {
        let err = inspect_elf(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(err.contains("not a 64-bit ELF"), "{err}");
    }

    #[test]
    fn reads_this_test_binary() {
        // The test executable itself is a glibc-linked ELF for this machine.
        let exe = std::env::current_exe().unwrap();
        let seen = inspect_agent(&exe).unwrap();
        let native = match std::env::consts::ARCH {
            "x86_64" => Arch::Amd64,
            _ => Arch::Arm64,
        };
        assert_eq!(seen.arch, native);
        assert!(seen.glibc.is_some_and(|v| v >= (2, 2)), "{seen:?}");
    }
}
