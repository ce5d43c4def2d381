//! The cached base rootfs: Debian from debootstrap, built once per recipe.
//!
//! The cache folder holds one `base-<hash>` directory per recipe. The hash covers the
//! suite, the package list, the setup script and the machine's architecture, so any change
//! to the recipe builds a new base beside the old one; hosts keep the base they were created
//! on, because an overlay's lower layer must never change under it.

use std::{
    fs::{self, File},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use sha2::{Digest, Sha256};

use crate::{Error, Result, exec, mounts};

/// Debian suite the lab hosts run unless `lab up --release` names another.
pub const SUITE: &str = "bookworm";

/// The Debian releases a lab host can run: `(suite, major version)`. Each gets a base rootfs
/// of its own from the same mirror and recipe. bullseye (glibc 2.31) is there so the
/// kubegrid-agent can be shown to start on a glibc older than the machine's.
pub const RELEASES: &[(&str, &str)] = &[("bullseye", "11"), ("bookworm", "12")];

/// The default Debian mirror for debootstrap.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Packages on top of debootstrap's minbase: what a real server image has and what
/// installers expect (kubeadm's preflight wants conntrack, socat, ethtool, iptables,
/// ebtables; Ansible, used for side-by-side benchmarks, wants python3). A GPU host's image
/// also has dkms (with the compiler it pulls in), initramfs-tools and pciutils: the NVIDIA
/// driver packages build their module through the OS's dkms and check the GPUs with lspci
/// before they unpack, and a nouveau blacklist is written into the initramfs (docs/gpu.md).
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "iproute2",
    "kmod",
    "procps",
    "ca-certificates",
    "sudo",
    "iptables",
    "conntrack",
    "socat",
    "ethtool",
    "ebtables",
    "iputils-ping",
    "curl",
    "python3",
    "zstd",
    "xz-utils",
    "less",
    "netbase",
    "dkms",
    "initramfs-tools",
    "pciutils",
];

/// The script run inside the new rootfs to turn it into a lab image.
const SETUP_SCRIPT: &str = include_str!("../recipe/setup.sh");

/// File inside a finished base that marks it complete and names its recipe.
const MARKER: &str = "etc/kubegrid-lab-release";

/// How to build a base rootfs.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Debian suite.
    pub suite: &'static str,
    /// Extra packages.
    pub packages: &'static [&'static str],
    /// Setup script run in a chroot after debootstrap.
    pub setup_script: &'static str,
    /// Architecture of the machine (the rootfs runs natively).
    pub arch: &'static str,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            suite: SUITE,
            packages: PACKAGES,
            setup_script: SETUP_SCRIPT,
            arch: std::env::consts::ARCH,
        }
    }
}

impl Recipe {
    /// The default recipe for Debian release `release` (a suite name from [`RELEASES`]);
    /// an unknown name is refused, naming the ones there are.
    pub fn for_release(release: &str) -> Result<Recipe> {
        let (suite, _) = RELEASES
            .iter()
            .find(|(suite, version)| *suite == release || *version == release)
            .ok_or_else(|| {
                let known: Vec<String> = RELEASES
                    .iter()
                    .map(|(s, v)| format!("{s} (Debian {v})"))
                    .collect();
                Error::InvalidArgument(format!(
                    "--release `{}` is not a Debian release the lab can build; expected one of {}",
                    release.chars().take(40).collect::<String>(),
                    known.join(", ")
                ))
            })?;
        Ok(Recipe {
            suite,
            ..Recipe::default()
        })
    }

    /// A short content hash of the recipe; it names the cached base.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.suite,
            self.arch,
            &self.packages.join(","),
            self.setup_script,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..6])
    }

    /// Where this recipe's base lives in `cache_dir`.
    pub fn path(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(format!("base-{}", self.hash()))
    }
}

/// Whether the cache already holds a finished base for `recipe`.
pub fn is_built(recipe: &Recipe, cache_dir: &Path) -> bool {
    recipe.path(cache_dir).join(MARKER).exists()
}

/// Returns the base rootfs for `recipe`, building it first if the cache lacks it.
///
/// Concurrent callers wait on a lock instead of building twice. A build goes into a
/// `.partial` folder and is renamed into place only when finished, so an interrupted
/// build never leaves a base that looks complete.
pub fn ensure(
    recipe: &Recipe,
    cache_dir: &Path,
    mirror: &str,
    progress: &dyn Fn(&str),
) -> Result<PathBuf> {
    let target = recipe.path(cache_dir);
    if is_built(recipe, cache_dir) {
        return Ok(target);
    }
    fs::create_dir_all(cache_dir).map_err(Error::io("create cache directory", cache_dir))?;
    let lock_path = cache_dir.join(".lock");
    let lock = File::create(&lock_path).map_err(Error::io("create lock file", &lock_path))?;
    lock.lock().map_err(Error::io("lock", &lock_path))?;
    if is_built(recipe, cache_dir) {
        return Ok(target);
    }
    exec::require("debootstrap", "debootstrap")?;
    let started = Instant::now();
    progress(&format!(
        "building base rootfs {} (debootstrap {}, {} extra packages) in {}",
        recipe.hash(),
        recipe.suite,
        recipe.packages.len(),
        cache_dir.display()
    ));
    let partial = cache_dir.join(format!("base-{}.partial", recipe.hash()));
    remove_tree(&partial)?;
    let log_path = cache_dir.join(format!("base-{}.log", recipe.hash()));
    debootstrap(recipe, cache_dir, &partial, mirror, &log_path, progress)?;
    run_setup(recipe, &partial, &log_path)?;
    fs::write(
        partial.join(MARKER),
        format!("recipe={}\nsuite={}\n", recipe.hash(), recipe.suite),
    )
    .map_err(Error::io("write", partial.join(MARKER)))?;
    fs::rename(&partial, &target).map_err(Error::io("rename finished base to", &target))?;
    progress(&format!(
        "base rootfs {} built in {:.1}s",
        recipe.hash(),
        started.elapsed().as_secs_f64()
    ));
    Ok(target)
}

fn debootstrap(
    recipe: &Recipe,
    cache_dir: &Path,
    partial: &Path,
    mirror: &str,
    log_path: &Path,
    progress: &dyn Fn(&str),
) -> Result<()> {
    // debootstrap keeps downloaded .debs here, so a recipe change rebuilds without
    // downloading every package again.
    let debs = cache_dir.join("debs");
    fs::create_dir_all(&debs).map_err(Error::io("create directory", &debs))?;
    let mut log = File::create(log_path).map_err(Error::io("create build log", log_path))?;
    let (reader, writer) = std::io::pipe().map_err(Error::io("open pipe for", log_path))?;
    let writer2 = writer
        .try_clone()
        .map_err(Error::io("open pipe for", log_path))?;
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--include={}", recipe.packages.join(",")))
        .arg(format!("--cache-dir={}", debs.display()))
        .arg(recipe.suite)
        .arg(partial)
        .arg(mirror)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    let line = exec::command_line(&cmd);
    let _ = writeln!(log, "$ {line}");
    let mut child = cmd.spawn().map_err(|e| Error::RunCommand {
        command: line,
        detail: e.to_string(),
    })?;
    // The command holds the only write ends now; drop ours so the reader sees EOF.
    drop(cmd);
    let mut seen = std::collections::HashSet::new();
    for text in BufReader::new(reader).lines().map_while(|l| l.ok()) {
        let _ = writeln!(log, "{text}");
        // Show each stage ("Retrieving", "Unpacking", ...) once instead of a line per package.
        if let Some(word) = text
            .strip_prefix("I: ")
            .and_then(|t| t.split_whitespace().next())
            && seen.insert(word.to_string())
        {
            progress(&format!(
                "  debootstrap: {}",
                text.trim_start_matches("I: ")
            ));
        }
    }
    let status = child
        .wait()
        .map_err(Error::io("wait for debootstrap building", partial))?;
    if !status.success() {
        let _ = writeln!(log, "debootstrap exited with {status}");
        return Err(build_error(log_path));
    }
    Ok(())
}

fn run_setup(recipe: &Recipe, partial: &Path, log_path: &Path) -> Result<()> {
    let script = partial.join("tmp/kubegrid-lab-setup.sh");
    fs::write(&script, recipe.setup_script).map_err(Error::io("write", &script))?;
    let result = exec::output(Command::new("chroot").arg(partial).args([
        "/bin/sh",
        "-e",
        "/tmp/kubegrid-lab-setup.sh",
    ]));
    let _ = fs::remove_file(&script);
    if let Err(e) = result {
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(log_path)
            .map_err(Error::io("open build log", log_path))?;
        let _ = writeln!(log, "setup script failed: {e}");
        return Err(build_error(log_path));
    }
    Ok(())
}

fn build_error(log_path: &Path) -> Error {
    let text = fs::read_to_string(log_path).unwrap_or_default();
    Error::BuildBase {
        log: log_path.to_path_buf(),
        tail: exec::tail(&text, 15),
    }
}

/// Removes a directory tree, unmounting anything mounted below it first (an interrupted
/// debootstrap leaves /proc and /sys mounted in its target).
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    mounts::unmount_under(path)?;
    fs::remove_dir_all(path).map_err(Error::io("remove", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_hash_changes_with_every_ingredient() {
        let base = Recipe::default();
        let h = base.hash();
        assert_eq!(h.len(), 12);
        assert_eq!(h, Recipe::default().hash(), "hash must be stable");
        let other_suite = Recipe {
            suite: "trixie",
            ..base.clone()
        };
        let other_pkgs = Recipe {
            packages: &["systemd"],
            ..base.clone()
        };
        let other_script = Recipe {
            setup_script: "true",
            ..base.clone()
        };
        let other_arch = Recipe {
            arch: "aarch64",
            ..base.clone()
        };
        for r in [other_suite, other_pkgs, other_script, other_arch] {
            assert_ne!(r.hash(), h);
        }
    }

    #[test]
    fn releases_get_bases_of_their_own() {
        let bookworm = Recipe::for_release("bookworm").unwrap();
        assert_eq!(
            bookworm.hash(),
            Recipe::default().hash(),
            "bookworm is the default"
        );
        let bullseye = Recipe::for_release("bullseye").unwrap();
        assert_eq!(bullseye.suite, "bullseye");
        assert_eq!(Recipe::for_release("11").unwrap().suite, "bullseye");
        let cache = Path::new("/cache");
        assert_ne!(bullseye.path(cache), bookworm.path(cache));
        let err = Recipe::for_release("jessie").unwrap_err().to_string();
        assert!(
            err.contains("`jessie`") && err.contains("bullseye (Debian 11)"),
            "{err}"
        );
    }

    #[test]
    fn finished_base_is_reused_without_debootstrap() {
        let cache = tempfile::tempdir().unwrap();
        let recipe = Recipe::default();
        let base = recipe.path(cache.path());
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join(MARKER), "recipe").unwrap();
        let got = ensure(&recipe, cache.path(), "http://127.0.0.1:9/none", &|_| {}).unwrap();
        assert_eq!(got, base);
    }
}
