//! Fixtures shared by the test modules: contexts, a fake bundle, golden files and a TOML
//! structure check.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use kubegrid_agent::facts::Facts;
use kubegrid_plan::{ClusterContext, HostContext, RegistryMirror, sha256_file};
use semver::Version;

/// A Debian amd64 host with every role.
pub fn host(arch: &str, roles: &[&str]) -> HostContext {
    HostContext {
        name: "node-1".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        facts: Facts {
            hostname: "node-1".into(),
            os_id: "debian".into(),
            os_version: "12".into(),
            arch: arch.into(),
            kernel: "6.1.0-13-amd64".into(),
            cpus: 4,
            memory_mib: 8192,
            ..Facts::default()
        },
        ..Default::default()
    }
}

/// The default host: Debian, amd64, all roles.
pub fn lab_host() -> HostContext {
    host("amd64", &["control-plane", "etcd", "worker"])
}

/// A runc-only cluster on a containerd line.
pub fn runc_cluster(line: &str) -> ClusterContext {
    ClusterContext::new("lab", line).unwrap()
}

/// A runc-only cluster whose containerd and runc come from the bundle's packages.
pub fn packages_cluster(line: &str) -> ClusterContext {
    let mut cluster = runc_cluster(line);
    cluster.containerd_source = kubegrid_plan::ContainerdSource::Packages;
    cluster
}

/// kata (qemu and clh), nvidia, gvisor, crun and three registry mirrors on a containerd line,
/// with the pause image Kubernetes 1.34 pins.
pub fn full_cluster(line: &str) -> ClusterContext {
    let mut cluster = ClusterContext::new("gpu-prod", line).unwrap();
    cluster.runtimes = vec![
        "runc".into(),
        "kata-qemu".into(),
        "kata-clh".into(),
        "nvidia".into(),
        "gvisor".into(),
        "crun".into(),
    ];
    cluster.sandbox_image = ClusterContext::sandbox_image_for(&Version::new(1, 34, 2)).unwrap();
    let mut k8s = RegistryMirror::new("registry.k8s.io", vec!["https://mirror.lab:5000".into()]);
    k8s.ca_file = Some("/etc/containerd/certs.d/registry.k8s.io/ca.crt".into());
    let docker = RegistryMirror::new(
        "docker.io",
        vec![
            "https://mirror.lab:5000".into(),
            "http://10.0.0.5:5000".into(),
        ],
    );
    let mut default = RegistryMirror::new("_default", vec!["https://mirror.lab:5000".into()]);
    default.skip_verify = true;
    cluster.registry_mirrors = vec![k8s, docker, default];
    cluster
}

/// The named contexts golden files are rendered from.
pub fn golden_contexts() -> Vec<(&'static str, ClusterContext)> {
    vec![
        ("runc-1.6", runc_cluster("1.6")),
        ("runc-1.7", runc_cluster("1.7")),
        ("full-1.7", full_cluster("1.7")),
        ("runc-2.1", runc_cluster("2.1")),
        ("full-2.1", full_cluster("2.1")),
    ]
}

/// tests/golden/<template without .tera, context label before the extension>, e.g.
/// containerd/config-v2.runc-1.6.toml.
pub fn golden_path(template: &str, label: &str) -> PathBuf {
    let stem = template.strip_suffix(".tera").unwrap_or(template);
    let name = match stem.rsplit_once('.') {
        Some((base, ext)) => format!("{base}.{label}.{ext}"),
        None => format!("{stem}.{label}"),
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with a golden file; UPDATE_GOLDEN=1 rewrites the file instead.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is unreadable ({e}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "rendered output differs from {}; if the change is intended, regenerate with UPDATE_GOLDEN=1\n--- rendered ---\n{actual}",
        path.display()
    );
}

/// The TOML subset the templates produce, checked line by line: `[table]` headers, bare
/// `key = value` lines whose value is a boolean, an integer, a basic string or an array of
/// strings. A table defined twice or a key set twice in one table fails, as in TOML. Returns
/// (table, key) → raw value.
pub fn toml_structure(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut tables = vec![String::new()];
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = format!("line {}: `{raw}`", n + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header
                .strip_suffix(']')
                .unwrap_or_else(|| panic!("{at}: unclosed header"));
            assert!(
                !tables.contains(&header.to_string()),
                "{at}: table defined twice"
            );
            tables.push(header.to_string());
            continue;
        }
        let (key, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("{at}: not key = value"));
        assert!(
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{at}: not a bare key"
        );
        let value_ok = value == "true"
            || value == "false"
            || value.parse::<i64>().is_ok()
            || (value.starts_with('"') && serde_json::from_str::<String>(value).is_ok())
            || (value.starts_with('[') && serde_json::from_str::<Vec<String>>(value).is_ok());
        assert!(
            value_ok,
            "{at}: not a boolean, integer, string or string array"
        );
        let table = tables.last().unwrap().clone();
        let previous = out.insert((table, key.to_string()), value.to_string());
        assert!(previous.is_none(), "{at}: key set twice in one table");
    }
    out
}

/// One file of a fake bundle.
pub struct FakeFile {
    pub path: &'static str,
    pub arch: &'static str,
    pub kind: &'static str,
    pub name: &'static str,
    pub version: &'static str,
}

/// containerd and runc for amd64, only containerd for arm64, and an amd64 rootfs; containerd
/// as packages (1.6) and as release archives (1.7 and 2.1), runc as a package and a binary.
pub const FAKE_FILES: &[FakeFile] = &[
    FakeFile {
        path: "debs/amd64/containerd_1.6.20~ds1-1+deb12u3_amd64.deb",
        arch: "amd64",
        kind: "deb",
        name: "containerd",
        version: "1.6.20~ds1-1+deb12u3",
    },
    FakeFile {
        path: "debs/amd64/runc_1.1.5+ds1-1+deb12u1_amd64.deb",
        arch: "amd64",
        kind: "deb",
        name: "runc",
        version: "1.1.5+ds1-1+deb12u1",
    },
    FakeFile {
        path: "debs/arm64/containerd_1.6.20~ds1-1+deb12u3_arm64.deb",
        arch: "arm64",
        kind: "deb",
        name: "containerd",
        version: "1.6.20~ds1-1+deb12u3",
    },
    FakeFile {
        path: "rootfs/amd64/busybox.tar",
        arch: "amd64",
        kind: "rootfs",
        name: "busybox",
        version: "1:1.35.0-4+deb12u1+b1",
    },
    FakeFile {
        path: "containerd/amd64/containerd-1.7.24-linux-amd64.tar.gz",
        arch: "amd64",
        kind: "archive",
        name: "containerd",
        version: "1.7.24",
    },
    FakeFile {
        path: "containerd/amd64/containerd-2.1.9-linux-amd64.tar.gz",
        arch: "amd64",
        kind: "archive",
        name: "containerd",
        version: "2.1.9",
    },
    FakeFile {
        path: "bin/amd64/runc",
        arch: "amd64",
        kind: "binary",
        name: "runc",
        version: "1.1.5",
    },
    FakeFile {
        path: "containerd/arm64/containerd-2.1.9-linux-arm64.tar.gz",
        arch: "arm64",
        kind: "archive",
        name: "containerd",
        version: "2.1.9",
    },
];

/// Writes a fake bundle (content = the path repeated, so sizes differ) into `dir`.
pub fn write_bundle(dir: &Path) {
    let mut manifest = String::from("version: 1\nname: test\nfiles:\n");
    for f in FAKE_FILES {
        let path = dir.join(f.path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, f.path.repeat(100)).unwrap();
        let sha = sha256_file(&path).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        manifest.push_str(&format!(
            "  - path: {}\n    sha256: {sha}\n    size: {size}\n    arch: {}\n    kind: {}\n    name: {}\n    version: \"{}\"\n",
            f.path, f.arch, f.kind, f.name, f.version
        ));
    }
    fs::write(dir.join("manifest.yaml"), manifest).unwrap();
}

/// sha256 of a fake bundle file.
pub fn sha_of(dir: &Path, path: &str) -> String {
    sha256_file(&dir.join(path)).unwrap()
}
