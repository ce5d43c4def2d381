//! Test fixtures: a real Docker registry (Debian's docker-registry 2.8) on loopback, and a
//! synthetic multi-arch image built in a layout.

use std::{path::Path, process::Stdio, time::Duration};

use kubegrid_oci::{
    Descriptor, Digest, Layout, Platform, RegistryEndpoint, Transport, Trust,
    media::{OCI_INDEX, OCI_MANIFEST},
    ping,
};
use serde_json::json;
use tempfile::TempDir;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

/// Where Debian installs the registry.
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// How long a registry may take to come up before the test gives up.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// A docker-registry process serving a temporary directory on a loopback port.
pub struct TestRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The CA that signed the registry's certificate, when it serves TLS.
    pub ca_pem: Option<Vec<u8>>,
    _child: Child,
    _dir: TempDir,
}

impl TestRegistry {
    /// Starts a plain HTTP registry.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Starts a registry serving TLS with a certificate for 127.0.0.1 from a fresh CA.
    pub async fn start_tls() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Self {
        let dir = TempDir::new().unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:0\n",
            dir.path().join("data").display()
        );
        let ca_pem = tls.then(|| {
            let (ca_pem, cert_pem, key_pem) = tls_material();
            std::fs::write(dir.path().join("tls.crt"), cert_pem).unwrap();
            std::fs::write(dir.path().join("tls.key"), key_pem).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("tls.crt").display(),
                dir.path().join("tls.key").display()
            ));
            ca_pem
        });
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {REGISTRY_BIN} (apt install docker-registry): {e}")
            });
        // Port 0 lets the kernel pick a free port; the registry logs the address it bound.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let host = tokio::time::timeout(STARTUP_DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, rest)) = line.split_once("listening on ") {
                    // `listening on 127.0.0.1:41234"`, or `listening on 127.0.0.1:41234, tls"`.
                    let end = rest.find(['"', ',', ' ']).unwrap_or(rest.len());
                    return rest[..end].to_owned();
                }
            }
            panic!("docker-registry exited before listening");
        })
        .await
        .expect("docker-registry did not log its address");
        // Keep draining its log so the registry never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let registry = Self {
            host,
            ca_pem,
            _child: child,
            _dir: dir,
        };
        let endpoint = registry.endpoint();
        let mut last = None;
        let answered = tokio::time::timeout(STARTUP_DEADLINE, async {
            loop {
                match ping(&endpoint).await {
                    Ok(()) => break,
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if answered.is_err() {
            panic!("docker-registry does not answer /v2/: {last:?}");
        }
        registry
    }

    /// How to reach it: plain HTTP, or HTTPS trusting only its CA.
    pub fn endpoint(&self) -> RegistryEndpoint {
        match &self.ca_pem {
            None => RegistryEndpoint::new(&self.host, Transport::Http),
            Some(ca) => {
                RegistryEndpoint::new(&self.host, Transport::Https(Trust::Only(vec![ca.clone()])))
            }
        }
    }
}

/// A CA, and a server certificate and key for 127.0.0.1 signed by it, all PEM.
fn tls_material() -> (Vec<u8>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem().into_bytes(), cert.pem(), key.serialize_pem())
}

/// What [`build_multiarch`] made.
pub struct Synthetic {
    /// The index's digest.
    pub index: Digest,
    /// The amd64 and arm64 manifests' digests.
    pub amd64: Digest,
    /// The arm64 manifest's digest.
    pub arm64: Digest,
    /// The attestation manifest's digest.
    pub attestation: Digest,
    /// Configs and layers of all three manifests, each once.
    pub blob_count: usize,
}

/// A one-file tar archive, as an image layer.
pub fn tar_layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": Digest::of(bytes).as_str(), "size": bytes.len()})
}

/// Writes an image manifest (config + layers) for `arch` and returns its bytes.
pub fn write_image(layout: &Layout, arch: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    layout.write_blob(&config).unwrap();
    let layer_descriptors: Vec<_> = layers
        .iter()
        .map(|layer| {
            layout.write_blob(layer).unwrap();
            descriptor("application/vnd.oci.image.layer.v1.tar", layer)
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layer_descriptors,
    }))
    .unwrap();
    layout.write_blob(&manifest).unwrap();
    manifest
}

/// Builds, in `layout` under `name`, an index with linux/amd64 and linux/arm64/v8 images that
/// share a base layer, plus a BuildKit-style attestation manifest for the amd64 image.
pub fn build_multiarch(layout: &Layout, name: &str) -> Synthetic {
    let base = tar_layer("etc/base", b"shared by both arches\n");
    let amd64 = write_image(
        layout,
        "amd64",
        &[base.clone(), tar_layer("hello", b"amd64\n")],
    );
    let arm64 = write_image(layout, "arm64", &[base, tar_layer("hello", b"arm64\n")]);
    let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#;
    layout.write_blob(statement).unwrap();
    let empty_config = b"{}";
    layout.write_blob(empty_config).unwrap();
    let mut statement_layer = descriptor("application/vnd.in-toto+json", statement);
    statement_layer["annotations"] =
        json!({"in-toto.io/predicate-type": "https://spdx.dev/Document"});
    let attestation = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", empty_config),
        "layers": [statement_layer],
    }))
    .unwrap();
    layout.write_blob(&attestation).unwrap();

    let mut amd64_entry = descriptor(OCI_MANIFEST, &amd64);
    amd64_entry["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let mut arm64_entry = descriptor(OCI_MANIFEST, &arm64);
    arm64_entry["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let mut attestation_entry = descriptor(OCI_MANIFEST, &attestation);
    attestation_entry["platform"] = json!({"architecture": "unknown", "os": "unknown"});
    attestation_entry["annotations"] = json!({
        "vnd.docker.reference.digest": Digest::of(&amd64).as_str(),
        "vnd.docker.reference.type": "attestation-manifest",
    });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [amd64_entry, arm64_entry, attestation_entry],
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }))
    .unwrap();
    let index_digest = layout.write_blob(&index).unwrap();
    layout
        .set_image(name, top_descriptor(OCI_INDEX, &index))
        .unwrap();
    Synthetic {
        index: index_digest,
        amd64: Digest::of(&amd64),
        arm64: Digest::of(&arm64),
        attestation: Digest::of(&attestation),
        // 2 configs + shared base + 2 hello layers + attestation config + statement.
        blob_count: 7,
    }
}

/// A descriptor for index.json.
pub fn top_descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: Digest::of(bytes).to_string(),
        size: bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
        extra: Default::default(),
    }
}

/// The platforms of the index stored under `digest`.
pub fn index_platforms(layout: &Layout, digest: &Digest) -> Vec<Platform> {
    let index: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(digest).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| serde_json::from_value(entry["platform"].clone()).unwrap())
        .collect()
}

/// A fresh layout in a fresh directory.
pub fn new_layout() -> (TempDir, Layout) {
    let dir = TempDir::new().unwrap();
    let layout = Layout::create(dir.path().join("images")).unwrap();
    (dir, layout)
}

/// Whether a path exists, for readable asserts.
pub fn exists(path: &Path) -> bool {
    path.exists()
}
