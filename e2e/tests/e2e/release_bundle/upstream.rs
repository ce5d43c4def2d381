//! The UPSTREAM STAND-IN of the release-bundle test, on this machine's loopback only: the e2e
//! bundle's files repacked into the layouts upstream publishes, at upstream's paths, with the
//! checksum files upstream publishes beside them, served the way a `--mirror` keeps them
//! (upstream host as the first path element):
//!
//! - `dl.k8s.io/release/v<k>/bin/linux/amd64/{kubeadm,kubelet,kubectl}` + `.sha256` (the hash
//!   alone), and `crictl-v<v>-linux-amd64.tar.gz` (`crictl` at its root) + `.sha256`: the e2e
//!   bundle's Kubernetes TEST STAND-INS (e2e/src/bin/kubegrid-standin), not upstream programs;
//! - `containerd-<v>-linux-amd64.tar.gz` + `.sha256sum` (the e2e bundle's release-layout
//!   archive of Debian's containerd), `runc.amd64` + `runc.sha256sum`,
//!   `cni-plugins-linux-amd64-v<v>.tgz` + `.sha256`, `etcd-v<v>-linux-amd64.tar.gz`
//!   (`etcd-v<v>-linux-amd64/{etcd,etcdctl}`) + `SHA256SUMS`, `registry_<v>_linux_amd64.tar.gz`
//!   (`registry`, `README.md`, `LICENSE`) + `.sha256` (the hash alone): Debian's real binaries;
//! - Debian's `bookworm` Packages.xz listing a busybox-static .deb built here around the e2e
//!   rootfs's busybox binary (Debian's busybox-static), and the e2e bundle's containerd and
//!   runc .debs for `--include-os-packages debian-12`; empty indexes for bookworm-updates
//!   and bookworm-security.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use kubegrid_oci::Digest;

use crate::airgap::server::Server;

/// A file of the e2e bundle's manifest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BundleFile {
    /// Path in the bundle.
    pub path: PathBuf,
    /// Hex sha256.
    pub sha256: String,
    /// amd64 | arm64 | all.
    pub arch: String,
    /// Manifest kind.
    pub kind: String,
    /// Bundle name.
    #[serde(default)]
    pub name: Option<String>,
    /// Version.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    files: Vec<BundleFile>,
}

/// The files of the bundle manifest in `dir`.
pub fn bundle_files(dir: &Path) -> Vec<BundleFile> {
    let text = std::fs::read_to_string(dir.join("manifest.yaml")).expect("read manifest");
    serde_yaml::from_str::<Manifest>(&text)
        .expect("parse manifest")
        .files
}

/// The one amd64 entry of `kind` and `name`, or the one whose version starts with `prefix`
/// among several.
pub fn entry<'a>(files: &'a [BundleFile], kind: &str, name: &str, prefix: &str) -> &'a BundleFile {
    let found: Vec<&BundleFile> = files
        .iter()
        .filter(|f| f.kind == kind && f.name.as_deref() == Some(name) && f.arch != "arm64")
        .filter(|f| f.version.as_deref().is_some_and(|v| v.starts_with(prefix)))
        .collect();
    match found[..] {
        [one] => one,
        _ => panic!(
            "the e2e bundle should have one amd64 `{kind} {name}` with a version starting `{prefix}`, found {found:?}; rebuild it with e2e/standin-bundle.sh"
        ),
    }
}

/// The versions of the test release, taken from the e2e bundle's files.
#[derive(Debug, Clone)]
pub struct Versions {
    /// Kubernetes (the stand-ins claim it).
    pub kubernetes: String,
    /// containerd, the 2.x release-layout archive.
    pub containerd: String,
    /// runc.
    pub runc: String,
    /// The CNI plugins.
    pub cni: String,
    /// crictl (a stand-in).
    pub crictl: String,
    /// etcd and etcdctl.
    pub etcd: String,
    /// distribution's registry.
    pub registry: String,
    /// busybox-static's Debian version.
    pub busybox: String,
}

fn version(f: &BundleFile) -> String {
    f.version.clone().expect("a version")
}

/// `sha256` hex of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Digest::of(bytes)
        .as_str()
        .trim_start_matches("sha256:")
        .to_string()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a packing tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tar.gz of `members` (paths relative to `dir`), as upstream release archives are packed.
fn tar_gz(dir: &Path, members: &[&str]) -> Vec<u8> {
    let out = dir.with_extension("tar.gz");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
        .arg(&out)
        .arg("-C")
        .arg(dir)
        .args(members));
    std::fs::read(out).expect("read archive")
}

/// Writes `files` (path, bytes, mode) under `dir`.
fn stage(dir: &Path, files: &[(&str, &[u8], u32)]) {
    use std::os::unix::fs::PermissionsExt as _;
    for (path, bytes, mode) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).expect("chmod");
    }
}

fn xz(text: &str, dir: &Path) -> Vec<u8> {
    let path = dir.join(format!("index-{}", sha256(text.as_bytes())));
    std::fs::write(&path, text).expect("write index");
    run(Command::new("xz").args(["-k", "-f"]).arg(&path));
    std::fs::read(path.with_extension("xz")).expect("read Packages.xz")
}

/// A Packages stanza: the .deb's control file plus where it is and its size and sha256.
fn stanza(deb: &Path, filename: &str, bytes: &[u8]) -> String {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .output()
        .expect("dpkg-deb -f");
    assert!(out.status.success(), "dpkg-deb -f {}", deb.display());
    format!(
        "{}Filename: {filename}\nSize: {}\nSHA256: {}\n\n",
        String::from_utf8_lossy(&out.stdout),
        bytes.len(),
        sha256(bytes)
    )
}

/// Serves everything on `server` and returns the release's versions. `work` holds the
/// repacked files.
pub fn serve(server: &Server, bundle: &Path, files: &[BundleFile], work: &Path) -> Versions {
    let read = |f: &BundleFile| std::fs::read(bundle.join(&f.path)).expect("read bundle file");
    // The e2e bundle carries stand-ins for several Kubernetes versions and etcd 3.4 beside
    // 3.5 (for the upgrade tests): the release is the lab's, the first kubeadm listed.
    let k8s = files
        .iter()
        .find(|f| f.name.as_deref() == Some("kubeadm"))
        .and_then(|f| f.version.clone())
        .expect("kubeadm in the e2e bundle");
    let kubeadm = entry(files, "binary", "kubeadm", &k8s);
    let containerd = entry(files, "archive", "containerd", "2.");
    let runc = entry(files, "binary", "runc", "");
    let cni = entry(files, "archive", "cni-plugins", "");
    let crictl = entry(files, "binary", "crictl", &k8s);
    let etcd = entry(files, "binary", "etcd", "3.5.");
    let etcdctl = entry(files, "binary", "etcdctl", "3.5.");
    let registry = entry(files, "binary", "registry", "");
    let rootfs = files
        .iter()
        .find(|f| f.kind == "rootfs" && f.arch == "amd64")
        .expect("a rootfs in the e2e bundle");
    assert_eq!(version(etcd), version(etcdctl), "etcd and etcdctl versions");
    let v = Versions {
        kubernetes: version(kubeadm),
        containerd: version(containerd),
        runc: version(runc),
        cni: version(cni),
        crictl: version(crictl),
        etcd: version(etcd),
        registry: version(registry),
        busybox: version(rootfs),
    };
    let gh = "github.com";
    let put = |path: String, bytes: Vec<u8>| server.put(&format!("/{path}"), bytes);

    // Kubernetes: one binary per URL, each with a `.sha256` holding the hash alone.
    for name in ["kubeadm", "kubelet", "kubectl"] {
        let bytes = read(entry(files, "binary", name, &k8s));
        let path = format!("dl.k8s.io/release/v{}/bin/linux/amd64/{name}", v.kubernetes);
        put(format!("{path}.sha256"), sha256(&bytes).into_bytes());
        put(path, bytes);
    }
    let dir = work.join("crictl");
    stage(&dir, &[("crictl", &read(crictl), 0o755)]);
    let archive = tar_gz(&dir, &["crictl"]);
    let path = format!(
        "{gh}/kubernetes-sigs/cri-tools/releases/download/v{0}/crictl-v{0}-linux-amd64.tar.gz",
        v.crictl
    );
    put(format!("{path}.sha256"), sha256(&archive).into_bytes());
    put(path, archive);

    // containerd: the release archive with a `.sha256sum` (`<hash>  <file>`).
    let name = format!("containerd-{}-linux-amd64.tar.gz", v.containerd);
    let bytes = read(containerd);
    let base = format!(
        "{gh}/containerd/containerd/releases/download/v{}",
        v.containerd
    );
    put(
        format!("{base}/{name}.sha256sum"),
        format!("{}  {name}\n", sha256(&bytes)).into_bytes(),
    );
    put(format!("{base}/{name}"), bytes);

    // runc: one checksum file for every asset of the release.
    let bytes = read(runc);
    let base = format!("{gh}/opencontainers/runc/releases/download/v{}", v.runc);
    put(
        format!("{base}/runc.sha256sum"),
        format!(
            "{}  runc.arm64\n{}  runc.amd64\n",
            sha256(b"not served"),
            sha256(&bytes)
        )
        .into_bytes(),
    );
    put(format!("{base}/runc.amd64"), bytes);

    // CNI plugins: `.sha256` in sha256sum form.
    let name = format!("cni-plugins-linux-amd64-v{}.tgz", v.cni);
    let bytes = read(cni);
    let base = format!(
        "{gh}/containernetworking/plugins/releases/download/v{}",
        v.cni
    );
    put(
        format!("{base}/{name}.sha256"),
        format!("{}  {name}\n", sha256(&bytes)).into_bytes(),
    );
    put(format!("{base}/{name}"), bytes);

    // etcd: a folder in the tarball; SHA256SUMS for the whole release.
    let folder = format!("etcd-v{}-linux-amd64", v.etcd);
    let dir = work.join("etcd");
    stage(
        &dir,
        &[
            (&format!("{folder}/etcd"), &read(etcd), 0o755),
            (&format!("{folder}/etcdctl"), &read(etcdctl), 0o755),
            (&format!("{folder}/README.md"), b"etcd", 0o644),
        ],
    );
    let archive = tar_gz(&dir, &[&folder]);
    let base = format!("{gh}/etcd-io/etcd/releases/download/v{}", v.etcd);
    put(
        format!("{base}/SHA256SUMS"),
        format!("{}  {folder}.tar.gz\n", sha256(&archive)).into_bytes(),
    );
    put(format!("{base}/{folder}.tar.gz"), archive);

    // distribution's registry: `registry`, README.md and LICENSE at the archive's root, and
    // a `.sha256` with the hash alone.
    let dir = work.join("registry");
    stage(
        &dir,
        &[
            ("registry", &read(registry), 0o755),
            ("README.md", b"distribution", 0o644),
            ("LICENSE", b"Apache-2.0", 0o644),
        ],
    );
    let archive = tar_gz(&dir, &["registry", "README.md", "LICENSE"]);
    let name = format!("registry_{}_linux_amd64.tar.gz", v.registry);
    let base = format!(
        "{gh}/distribution/distribution/releases/download/v{}",
        v.registry
    );
    put(
        format!("{base}/{name}.sha256"),
        sha256(&archive).into_bytes(),
    );
    put(format!("{base}/{name}"), archive);

    // Debian: busybox-static around the e2e rootfs's busybox, and the bundle's own debs.
    let mut index = String::new();
    let pkg = work.join("busybox-static");
    let unpacked = work.join("busybox-rootfs");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(bundle.join(&rootfs.path))
        .arg("-C")
        .arg(&unpacked)
        .arg("./bin/busybox"));
    let control = format!(
        "Package: busybox-static\nVersion: {}\nArchitecture: amd64\nMaintainer: kubegrid e2e <e2e@kubegrid.invalid>\nDescription: Debian's busybox binary, repacked by the release-bundle e2e test\n",
        v.busybox
    );
    stage(
        &pkg,
        &[
            ("DEBIAN/control", control.as_bytes(), 0o644),
            (
                "bin/busybox",
                &std::fs::read(unpacked.join("bin/busybox")).expect("read busybox"),
                0o755,
            ),
        ],
    );
    let deb = work.join("busybox-static.deb");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&pkg)
        .arg(&deb));
    let upstream_version = v.busybox.split_once(':').map_or(&*v.busybox, |(_, u)| u);
    let mut debs: Vec<(String, PathBuf)> = vec![(
        format!("pool/main/b/busybox/busybox-static_{upstream_version}_amd64.deb"),
        deb,
    )];
    for f in files.iter().filter(|f| f.kind == "deb") {
        let name = f.name.clone().expect("deb name");
        let file = f.path.file_name().expect("file name").to_string_lossy();
        debs.push((
            format!("pool/main/{}/{name}/{file}", &name[..1]),
            bundle.join(&f.path),
        ));
    }
    for (filename, path) in &debs {
        let bytes = std::fs::read(path).expect("read deb");
        index.push_str(&stanza(path, filename, &bytes));
        put(format!("deb.debian.org/debian/{filename}"), bytes);
    }
    let mut indexes = BTreeMap::new();
    indexes.insert("deb.debian.org/debian/dists/bookworm/main", index);
    indexes.insert(
        "deb.debian.org/debian/dists/bookworm-updates/main",
        String::new(),
    );
    indexes.insert(
        "deb.debian.org/debian-security/dists/bookworm-security/main",
        String::new(),
    );
    for (dist, text) in indexes {
        put(format!("{dist}/binary-amd64/Packages.xz"), xz(&text, work));
    }
    v
}

/// The shipped offline-bundle/sources.yaml with its `releases:` section (the file's last) replaced
/// by one release of `v`, whose optional components `without` keep the shipped versions (the
/// build leaves them out with `--without`).
pub fn sources(shipped: &str, v: &Versions, without: &[&str]) -> String {
    let (head, releases) = shipped
        .split_once("\nreleases:\n")
        .expect("the shipped sources have a `releases:` section");
    let parsed: serde_yaml::Value =
        serde_yaml::from_str(&format!("releases:\n{releases}")).expect("parse releases");
    let shipped_release = parsed["releases"]
        .as_mapping()
        .and_then(|m| m.values().next())
        .expect("a shipped release");
    let mut components = serde_json::json!({
        "kubernetes": v.kubernetes,
        "containerd": v.containerd,
        "runc": v.runc,
        "cni-plugins": v.cni,
        "crictl": v.crictl,
        "etcd": v.etcd,
        "registry": v.registry,
        "busybox": v.busybox,
    });
    for c in without {
        let version = shipped_release["components"][*c]
            .as_str()
            .unwrap_or_else(|| panic!("the shipped release has no component {c}"));
        components[*c] = serde_json::Value::from(version);
    }
    let release =
        serde_json::json!({ "releases": { v.kubernetes.clone(): { "components": components } } });
    format!(
        "{head}\n# RELEASE-BUNDLE E2E TEST release: the e2e bundle's versions (Kubernetes binaries\n# are TEST STAND-INS), served by a loopback upstream stand-in.\n{}",
        serde_yaml::to_string(&release).expect("releases YAML")
    )
}
