//! `build_image`: the operator image validates against the OCI image spec (oci-spec's types,
//! every descriptor's media type, size and digest, the layer's diff_id and contents), a real
//! registry (Debian's docker-registry 2.8) accepts it, the same inputs give the same digest
//! and any changed input byte a different one, and unfit binaries are refused.

use std::{collections::BTreeMap, io::Read as _};

use kubegrid_oci::{
    Digest, Error, IMAGE_USER_ID, ImageArch, ImageRef, ImageSpec, Layout, PushOptions, build_image,
    push,
};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde_json::Value;
use tempfile::TempDir;

use crate::common::{TestRegistry, new_layout};

const NAME: &str = "ghcr.io/kubegrid/kubegrid:0.1.0";
const X86_64: u16 = 62;
const AARCH64: u16 = 183;

/// A minimal 64-bit little-endian ELF executable for `machine`: the header, one PT_LOAD and,
/// with `interp`, a PT_INTERP naming a dynamic loader; `filler` makes binaries differ.
fn elf(machine: u16, interp: Option<&str>, filler: &[u8]) -> Vec<u8> {
    let phnum: u16 = if interp.is_some() { 2 } else { 1 };
    let data_at = 64 + 56 * u64::from(phnum);
    let mut out = Vec::new();
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0x40_1000u64.to_le_bytes()); // entry
    out.extend_from_slice(&64u64.to_le_bytes()); // phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, phnum, 64, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut phdr = |kind: u32, offset: u64, size: u64| {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&5u32.to_le_bytes());
        for v in [
            offset,
            0x40_0000 + offset,
            0x40_0000 + offset,
            size,
            size,
            8,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    };
    let interp = interp.map(|i| format!("{i}\0"));
    let interp_len = interp.as_ref().map_or(0, |i| i.len() as u64);
    phdr(1, 0, data_at + interp_len + filler.len() as u64);
    if interp.is_some() {
        phdr(3, data_at, interp_len);
    }
    out.extend_from_slice(interp.unwrap_or_default().as_bytes());
    out.extend_from_slice(filler);
    out
}

/// Inputs on disk: binaries per arch and a CA file.
struct Inputs {
    dir: TempDir,
}

impl Inputs {
    fn new(amd64: &[u8], arm64: Option<&[u8]>, ca: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubegrid-amd64"), amd64).unwrap();
        if let Some(arm64) = arm64 {
            std::fs::write(dir.path().join("kubegrid-arm64"), arm64).unwrap();
        }
        std::fs::write(dir.path().join("ca.crt"), ca).unwrap();
        Self { dir }
    }

    fn spec(&self, created: Option<u64>) -> ImageSpec {
        let mut binaries = BTreeMap::new();
        for arch in ImageArch::ALL {
            let path = self.dir.path().join(format!("kubegrid-{arch}"));
            if path.exists() {
                binaries.insert(arch, path);
            }
        }
        ImageSpec {
            name: NAME.to_owned(),
            binaries,
            ca_certificates: self.dir.path().join("ca.crt"),
            cmd: vec!["operator".to_owned()],
            labels: [
                ("org.opencontainers.image.title", "kubegrid"),
                ("org.opencontainers.image.version", "0.1.0"),
                ("org.opencontainers.image.licenses", "Apache-2.0"),
                (
                    "org.opencontainers.image.source",
                    "https://example.invalid/x",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            created,
        }
    }
}

fn standard_inputs() -> Inputs {
    Inputs::new(
        &elf(X86_64, None, b"amd64 kubegrid"),
        Some(&elf(AARCH64, None, b"arm64 kubegrid")),
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
}

fn build_digest(inputs: &Inputs, created: Option<u64>) -> String {
    let (_dir, layout) = new_layout();
    build_image(&layout, &inputs.spec(created))
        .unwrap()
        .index
        .digest
}

/// Reads the blob `digest` names and checks its size and sha256 against the descriptor.
fn blob(
    layout: &Layout,
    media_type: &str,
    digest: &str,
    size: u64,
    want_type: MediaType,
) -> Vec<u8> {
    assert_eq!(media_type, want_type.to_string(), "media type of {digest}");
    let bytes = layout.read_blob(&Digest::parse(digest).unwrap()).unwrap();
    assert_eq!(bytes.len() as u64, size, "size of {digest}");
    assert_eq!(Digest::of(&bytes).as_str(), digest, "content of {digest}");
    bytes
}

/// Parses `bytes` as `T` and checks that writing it back loses nothing: every field the
/// document has is a field of the image spec, spelled as the spec spells it.
fn spec_doc<T: serde::de::DeserializeOwned + serde::Serialize>(bytes: &[u8]) -> T {
    let doc: T = serde_json::from_slice(bytes).unwrap();
    let original: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(serde_json::to_value(&doc).unwrap(), original);
    doc
}

#[test]
fn built_image_validates_against_the_image_spec() {
    let inputs = standard_inputs();
    let (_dir, layout) = new_layout();
    let built = build_image(&layout, &inputs.spec(Some(1_700_000_000))).unwrap();
    assert_eq!(built.name, NAME);
    assert_eq!(layout.image(NAME).unwrap().unwrap(), built.index);
    layout
        .verify(&[Digest::parse(&built.index.digest).unwrap()])
        .unwrap();
    let layout_file: Value =
        serde_json::from_slice(&std::fs::read(layout.root().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout_file["imageLayoutVersion"], "1.0.0");

    let index_bytes = blob(
        &layout,
        &built.index.media_type,
        &built.index.digest,
        built.index.size,
        MediaType::ImageIndex,
    );
    let index: ImageIndex = spec_doc(&index_bytes);
    assert_eq!(index.schema_version(), 2);
    assert_eq!(index.media_type(), &Some(MediaType::ImageIndex));
    let arches: Vec<String> = index
        .manifests()
        .iter()
        .map(|m| m.platform().as_ref().unwrap().architecture().to_string())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);

    for entry in index.manifests() {
        let platform = entry.platform().as_ref().unwrap();
        assert_eq!(platform.os().to_string(), "linux");
        let arch = platform.architecture().to_string();
        let manifest_bytes = blob(
            &layout,
            entry.media_type().as_ref(),
            entry.digest().as_ref(),
            entry.size(),
            MediaType::ImageManifest,
        );
        assert_eq!(
            built.manifests[&ImageArch::parse(&arch).unwrap()].as_str(),
            entry.digest().as_ref()
        );
        let manifest: ImageManifest = spec_doc(&manifest_bytes);
        assert_eq!(manifest.schema_version(), 2);
        let c = manifest.config();
        let config_bytes = blob(
            &layout,
            c.media_type().as_ref(),
            c.digest().as_ref(),
            c.size(),
            MediaType::ImageConfig,
        );
        let config: ImageConfiguration = spec_doc(&config_bytes);
        assert_eq!(config.architecture().to_string(), arch);
        assert_eq!(config.os().to_string(), "linux");
        assert_eq!(config.created().as_deref(), Some("2023-11-14T22:13:20Z"));
        let run = config.config().as_ref().unwrap();
        assert_eq!(
            run.user().as_deref(),
            Some(format!("{IMAGE_USER_ID}:{IMAGE_USER_ID}").as_str())
        );
        assert_eq!(
            run.entrypoint().as_deref(),
            Some(&["/kubegrid".to_owned()][..])
        );
        assert_eq!(run.cmd().as_deref(), Some(&["operator".to_owned()][..]));
        assert_eq!(
            run.labels().as_ref().unwrap()["org.opencontainers.image.version"],
            "0.1.0"
        );

        let [layer] = &manifest.layers()[..] else {
            panic!("expected one layer: {manifest:?}");
        };
        let compressed = blob(
            &layout,
            layer.media_type().as_ref(),
            layer.digest().as_ref(),
            layer.size(),
            MediaType::ImageLayerGzip,
        );
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(
            config.rootfs().diff_ids(),
            &[Digest::of(&raw).to_string()],
            "diff_id is the uncompressed layer's digest"
        );
        check_rootfs(&raw, &inputs, &arch);
    }
}

/// The layer holds exactly the minimal root filesystem, in path order, owned by root except
/// the user's home, every mtime the created time.
fn check_rootfs(raw: &[u8], inputs: &Inputs, arch: &str) {
    let mut archive = tar::Archive::new(raw);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let header = entry.header();
        let (mode, uid, gid) = (
            header.mode().unwrap(),
            header.uid().unwrap(),
            header.gid().unwrap(),
        );
        assert_eq!(header.mtime().unwrap(), 1_700_000_000, "{path}");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        match path.as_str() {
            "kubegrid" => {
                assert_eq!(mode, 0o755);
                let binary = std::fs::read(inputs.dir.path().join(format!("kubegrid-{arch}")));
                assert_eq!(content, binary.unwrap());
            }
            "etc/passwd" => {
                let text = String::from_utf8(content).unwrap();
                assert!(
                    text.contains(&format!("kubegrid:x:{IMAGE_USER_ID}:{IMAGE_USER_ID}:")),
                    "{text}"
                );
            }
            "etc/group" => {
                let text = String::from_utf8(content).unwrap();
                assert!(
                    text.contains(&format!("kubegrid:x:{IMAGE_USER_ID}:")),
                    "{text}"
                );
            }
            "etc/ssl/certs/ca-certificates.crt" => {
                assert_eq!(
                    content,
                    std::fs::read(inputs.dir.path().join("ca.crt")).unwrap()
                );
            }
            "home/kubegrid/" => assert_eq!((mode, uid, gid), (0o700, 65532, 65532)),
            "tmp/" => assert_eq!(mode, 0o1777),
            _ => {}
        }
        if path != "home/kubegrid/" {
            assert_eq!((uid, gid), (0, 0), "{path}");
        }
        seen.push(path);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "entries are in path order");
    assert_eq!(
        seen,
        [
            "etc/",
            "etc/group",
            "etc/passwd",
            "etc/ssl/",
            "etc/ssl/certs/",
            "etc/ssl/certs/ca-certificates.crt",
            "home/",
            "home/kubegrid/",
            "kubegrid",
            "tmp/",
        ]
    );
}

#[test]
fn identical_inputs_give_an_identical_digest_and_any_changed_byte_another() {
    let inputs = standard_inputs();
    let first = build_digest(&inputs, None);
    // Separate layouts and fresh label maps (whose iteration order differs between maps).
    for _ in 0..3 {
        assert_eq!(build_digest(&inputs, None), first);
    }
    // Building into the same layout again changes nothing.
    let (_dir, layout) = new_layout();
    let once = build_image(&layout, &inputs.spec(None)).unwrap();
    let index_json = std::fs::read(layout.index_path()).unwrap();
    let twice = build_image(&layout, &inputs.spec(None)).unwrap();
    assert_eq!(
        (once, index_json),
        (twice, std::fs::read(layout.index_path()).unwrap())
    );

    let mut amd64 = elf(X86_64, None, b"amd64 kubegrid");
    let last = amd64.len() - 1;
    amd64[last] ^= 1;
    let ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let changed_binary = Inputs::new(&amd64, Some(&elf(AARCH64, None, b"arm64 kubegrid")), ca);
    let mut other_ca = ca.to_vec();
    other_ca[30] = b'C';
    let changed_ca = Inputs::new(
        &elf(X86_64, None, b"amd64 kubegrid"),
        Some(&elf(AARCH64, None, b"arm64 kubegrid")),
        &other_ca,
    );
    let digests = [
        first.clone(),
        build_digest(&changed_binary, None),
        build_digest(&changed_ca, None),
        build_digest(&inputs, Some(1)),
    ];
    let distinct: std::collections::BTreeSet<&String> = digests.iter().collect();
    assert_eq!(distinct.len(), digests.len(), "{digests:?}");
}

#[test]
fn unfit_binaries_are_refused_naming_the_file_and_the_fix() {
    let check = |amd64: &[u8], want: &[&str]| {
        let inputs = Inputs::new(amd64, None, b"ca");
        let (_dir, layout) = new_layout();
        let err = build_image(&layout, &inputs.spec(None)).unwrap_err();
        assert!(matches!(err, Error::UnfitImageBinary { .. }), "{err:?}");
        let text = err.to_string();
        for w in want {
            assert!(text.contains(w), "{text} lacks {w}");
        }
        assert!(layout.images().unwrap().is_empty(), "nothing is recorded");
    };
    check(
        &elf(X86_64, Some("/lib64/ld-linux-x86-64.so.2"), b""),
        &[
            "dynamically linked",
            "/lib64/ld-linux-x86-64.so.2",
            "crt-static",
            "kubegrid-amd64",
        ],
    );
    check(
        &elf(AARCH64, None, b""),
        &["built for arm64, expected amd64"],
    );
    check(b"#!/bin/sh\necho hi\n", &["not a 64-bit ELF executable"]);

    let inputs = standard_inputs();
    let mut spec = inputs.spec(None);
    spec.binaries.clear();
    let (_dir, layout) = new_layout();
    let err = build_image(&layout, &spec).unwrap_err();
    assert!(err.to_string().contains("no binary was given"), "{err}");
}

#[tokio::test]
async fn a_real_registry_accepts_the_built_image() {
    let registry = TestRegistry::start().await;
    let inputs = standard_inputs();
    let (_dir, layout) = new_layout();
    let built = build_image(&layout, &inputs.spec(None)).unwrap();
    let pushed = push(
        &layout,
        &ImageRef::parse(NAME).unwrap(),
        &registry.endpoint(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(pushed.digest.as_str(), built.index.digest);
    // The index and both architectures' manifests.
    assert_eq!(pushed.manifests_pushed, 3);
}
