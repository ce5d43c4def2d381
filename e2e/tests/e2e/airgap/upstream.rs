//! The UPSTREAM STAND-IN of the air-gap test, all on this machine's loopback (lab hosts cannot
//! reach it, nor anything else outside the lab):
//!
//! - a loopback HTTP server serving the e2e bundle's files under upstream-looking paths
//!   (`dl.k8s.io/release/v1.31.4/bin/linux/amd64/kubeadm`, `deb.debian.org/debian/pool/...`),
//!   laid out the way a `--mirror` keeps them (upstream host as the first path element). The
//!   kubeadm/kubelet/kubectl/crictl files are the e2e bundle's TEST STAND-INS
//!   (e2e/src/bin/kubegrid-standin), not upstream Kubernetes;
//! - Debian's real registry (`/usr/bin/docker-registry`) on loopback holding a test image
//!   `registry.k8s.io/kubegrid-e2e/hello:1` built here, under that name as its repository (a
//!   mirror's naming, what `--image-mirror` expects);
//! - a sources.yaml pinning every file by sha256 and the image by its digest.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use kubegrid_oci::{
    Descriptor, Digest, ImageRef, Layout, PushOptions, RegistryEndpoint, RepositoryNaming,
    Transport, media::OCI_MANIFEST,
};
use serde_json::{Value, json};

use super::server::Server;

/// The test image, under its upstream name.
pub const IMAGE: &str = "registry.k8s.io/kubegrid-e2e/hello:1";
/// What a container of the test image prints.
pub const HELLO: &str = "hello from the air-gapped bundle registry";

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
    pub name: String,
    /// Version (agents carry none).
    #[serde(default)]
    pub version: String,
    /// The sources.yaml component, where the entry names one (the NVIDIA packages do).
    #[serde(default)]
    pub component: Option<String>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    files: Vec<BundleFile>,
}

/// The e2e bundle's files the lab's spec installs: of its several containerd entries (the
/// bookworm packages, the 1.6, 1.7 and 2.1 release archives), the 2.1 archive and the runc
/// binary that `source: archive` takes, etcd 3.5 (not the 3.4 the upgrade tests start from)
/// and the stand-ins of the lab's Kubernetes version (not those the upgrade tests move to), as
/// upstream publishes them. Agents are left out: they are no upstream download, the bundle
/// builder takes them from `--agent` files. So are the sandboxed runtimes (gVisor, crun and
/// its library, Kata's stand-in archive) and the NVIDIA driver and toolkit packages: the
/// lab's spec runs runc only and has no `gpu` section.
pub fn bundle_files(bundle: &Path) -> Vec<BundleFile> {
    let text = std::fs::read_to_string(bundle.join("manifest.yaml")).expect("read manifest");
    let files = serde_yaml::from_str::<Manifest>(&text)
        .expect("parse e2e manifest")
        .files;
    // The lab's version is the first the manifest lists (e2e/standin-bundle.sh).
    let primary = files
        .iter()
        .find(|f| f.name == "kubeadm")
        .map(|f| f.version.clone())
        .unwrap_or_default();
    files
        .into_iter()
        .filter(|f| f.kind != "agent")
        .filter(|f| {
            !matches!(
                f.component.as_deref(),
                Some("nvidia-driver" | "nvidia-container-toolkit")
            )
        })
        .filter(|f| match f.name.as_str() {
            "containerd" => f.kind == "archive" && f.version.starts_with("2.1."),
            "runc" => f.kind == "binary",
            "etcd" | "etcdctl" => f.version.starts_with("3.5."),
            "kubeadm" | "kubelet" | "kubectl" | "crictl" => f.version == primary,
            "runsc" | "crun" | "libyajl2" | "kata" => false,
            _ => true,
        })
        .collect()
}

/// Where an e2e bundle file lives upstream, as (sources.yaml component, sources kind, URL
/// pattern with `{v}` and `{arch}`).
fn upstream_of(f: &BundleFile) -> (&'static str, &'static str, String) {
    let n = f.name.as_str();
    match n {
        "kubeadm" | "kubelet" | "kubectl" => (
            "kubernetes",
            "binary",
            format!("https://dl.k8s.io/release/v{{v}}/bin/linux/{{arch}}/{n}"),
        ),
        "crictl" => (
            "cri-tools",
            "binary",
            "https://github.com/kubernetes-sigs/cri-tools/releases/download/v{v}/crictl-linux-{arch}"
                .into(),
        ),
        "containerd" => (
            "containerd",
            "archive",
            "https://github.com/containerd/containerd/releases/download/v{v}/containerd-{v}-linux-{arch}.tar.gz"
                .into(),
        ),
        "runc" => (
            "runc",
            "binary",
            "https://github.com/opencontainers/runc/releases/download/v{v}/runc.{arch}".into(),
        ),
        "etcd" | "etcdctl" => (
            "etcd",
            "binary",
            format!("https://github.com/etcd-io/etcd/releases/download/v{{v}}/{n}-linux-{{arch}}"),
        ),
        "registry" => (
            "registry",
            "binary",
            "https://github.com/distribution/distribution/releases/download/v{v}/registry-linux-{arch}"
                .into(),
        ),
        "cni-plugins" => (
            "cni-plugins",
            "archive",
            "https://github.com/containernetworking/plugins/releases/download/v{v}/cni-plugins-linux-{arch}-v{v}.tgz"
                .into(),
        ),
        // The Debian version (`1:1.35.0-…`) has a colon, so the URL does not carry it.
        "busybox" if f.kind == "rootfs" => (
            "busybox",
            "rootfs",
            "https://deb.debian.org/kubegrid-e2e/busybox-rootfs-{arch}.tar".into(),
        ),
        other => panic!(
            "the e2e bundle has `{other}` ({}), which the air-gap test's upstream stand-in does not place; add it to upstream_of",
            f.kind
        ),
    }
}

/// A docker-registry process on a loopback port; killed when dropped.
pub struct UpstreamRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl UpstreamRegistry {
    /// Starts Debian's registry on 127.0.0.1 with a kernel-chosen port.
    pub fn start() -> UpstreamRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:0\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write registry config");
        let mut child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start /usr/bin/docker-registry (apt install docker-registry)");
        let stderr = child.stderr.take().expect("registry stderr");
        let (tx, rx) = mpsc::channel();
        // It logs the address it bound; the thread keeps draining the log afterwards so the
        // registry never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("listening on ") {
                    let end = rest.find(['"', ',', ' ']).unwrap_or(rest.len());
                    let _ = tx.send(rest[..end].to_string());
                }
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("docker-registry did not log the address it listens on");
        UpstreamRegistry {
            host,
            child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }
}

impl Drop for UpstreamRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the test image in a layout under `dir`: one uncompressed layer, the e2e bundle's
/// busybox rootfs, and a config whose command prints [`HELLO`]; pushes it into `registry` as
/// repository `registry.k8s.io/kubegrid-e2e/hello`, tag `1`. Returns its manifest digest.
pub fn push_test_image(registry: &UpstreamRegistry, busybox_tar: &Path, dir: &Path) -> String {
    let layout = Layout::create(dir.join("images")).expect("create layout");
    let layer = std::fs::read(busybox_tar).expect("read busybox rootfs");
    let layer_digest = layout.write_blob(&layer).expect("write layer");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "echo", HELLO]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.as_str()]},
    }))
    .expect("config JSON");
    let config_digest = layout.write_blob(&config).expect("write config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.as_str(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest.as_str(), "size": layer.len()}],
    }))
    .expect("manifest JSON");
    let digest = layout.write_blob(&manifest).expect("write manifest");
    layout
        .set_image(
            IMAGE,
            Descriptor {
                media_type: OCI_MANIFEST.to_string(),
                digest: digest.as_str().to_string(),
                size: manifest.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
                extra: BTreeMap::new(),
            },
        )
        .expect("record image");
    let image = ImageRef::parse(IMAGE).expect("image reference");
    let target = RegistryEndpoint::new(&registry.host, Transport::Http);
    let options = PushOptions {
        naming: RepositoryNaming::WithRegistry,
        ..PushOptions::default()
    };
    let pushed = tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(kubegrid_oci::push(&layout, &image, &target, &options))
        .expect("push the test image into the upstream stand-in registry");
    assert_eq!(pushed.digest, Digest::of(&manifest));
    digest.as_str().to_string()
}

/// Serves every e2e bundle file on `server` under its upstream path and returns the
/// sources.yaml text pinning them (and `image_digest` for the test image) for Kubernetes
/// `kubernetes`.
pub fn serve_and_pin(
    server: &Server,
    bundle: &Path,
    files: &[BundleFile],
    kubernetes: &str,
    image_digest: &str,
) -> String {
    let mut components: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut versions: BTreeMap<&str, String> = BTreeMap::new();
    for f in files {
        let (component, kind, pattern) = upstream_of(f);
        let version = if component == "kubernetes" {
            kubernetes.to_string()
        } else {
            f.version.clone()
        };
        if let Some(seen) = versions.insert(component, version.clone()) {
            assert_eq!(
                seen, version,
                "component {component} has two versions in the e2e bundle"
            );
        }
        let url = pattern.replace("{v}", &version).replace("{arch}", &f.arch);
        let path = url.strip_prefix("https:/").expect("https URL");
        server.put(
            path,
            std::fs::read(bundle.join(&f.path)).expect("read bundle file"),
        );
        components.entry(component).or_default().push(json!({
            "name": f.name,
            "kind": kind,
            "url": pattern,
            "checksum": {"sha256": {version: {f.arch.as_str(): f.sha256}}},
        }));
    }
    let sources = json!({
        "version": 1,
        "components": components
            .into_iter()
            .map(|(c, artifacts)| (c.to_string(), json!({"artifacts": artifacts})))
            .collect::<serde_json::Map<_, _>>(),
        "releases": {
            kubernetes: {
                "components": versions,
                "images": [{
                    "name": IMAGE.rsplit_once(':').expect("tag").0,
                    "tag": IMAGE.rsplit_once(':').expect("tag").1,
                    "digest": image_digest,
                    "arches": ["amd64"],
                    "component": "kubernetes",
                }],
            },
        },
    });
    format!(
        "# UPSTREAM STAND-IN sources for the air-gap e2e test: the e2e bundle's files (with the\n# kubeadm/kubelet/kubectl/crictl TEST STAND-INS) pinned by sha256, served on loopback.\n{}",
        serde_yaml::to_string(&sources).expect("sources YAML")
    )
}
