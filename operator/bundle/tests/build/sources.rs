//! offline-bundle/sources.yaml and its rules.

use kubegrid_bundle::{Error, ExpectedChecksum, KUBERNETES_COMPONENT, Sources};
use kubegrid_plan::{Arch, FileKind};

use crate::fixtures::Upstream;

#[test]
fn the_builtin_sources_cover_every_component_the_playbooks_install() {
    let sources = Sources::builtin().unwrap();
    let plan = sources
        .plan("1.34.2", &[Arch::Arm64], Some("debian-12"), &[])
        .unwrap();
    let mut names: Vec<(&str, FileKind)> = plan
        .files
        .iter()
        .flat_map(|f| {
            f.name.iter().map(move |n| (n.as_str(), f.kind)).chain(
                f.extract
                    .iter()
                    .map(|(_, n)| (n.as_str(), FileKind::Binary)),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("cni-plugins", FileKind::Archive),
            ("containerd", FileKind::Archive),
            ("crictl", FileKind::Binary),
            ("etcd", FileKind::Binary),
            ("etcdctl", FileKind::Binary),
            ("helm", FileKind::Binary),
            ("kata", FileKind::Archive),
            ("keda", FileKind::Chart),
            ("kubeadm", FileKind::Binary),
            ("kubectl", FileKind::Binary),
            ("kubelet", FileKind::Binary),
            ("nvidia-driver-runfile", FileKind::Binary),
            ("registry", FileKind::Binary),
            ("runc", FileKind::Binary),
        ]
    );
    // Only kata, NVIDIA's runfile and KEDA's chart are pinned here (their upstreams publish
    // no checksum file); everything else is checked against upstream's checksums.
    for f in &plan.files {
        assert_eq!(
            matches!(f.checksum, ExpectedChecksum::Pinned(_)),
            matches!(
                f.component.as_str(),
                "kata" | "nvidia-driver-runfile" | "keda"
            ),
            "{}",
            f.url
        );
    }
    let kubeadm = plan
        .files
        .iter()
        .find(|f| f.name.as_deref() == Some("kubeadm"))
        .unwrap();
    assert_eq!(
        kubeadm.url,
        "https://dl.k8s.io/release/v1.34.2/bin/linux/arm64/kubeadm"
    );
    let debs: Vec<_> = plan
        .debs
        .iter()
        .flat_map(|d| &d.packages)
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        debs.contains(&"nvidia-container-toolkit") && debs.contains(&"containerd"),
        "{debs:?}"
    );
    // The container check's rootfs: made of Debian's busybox-static, not the package itself.
    let busybox = plan
        .debs
        .iter()
        .flat_map(|d| &d.packages)
        .find(|p| p.name == "busybox-static")
        .unwrap();
    let rootfs = busybox.rootfs.as_ref().unwrap();
    assert_eq!(
        (
            rootfs.name.as_str(),
            &rootfs.files[..],
            busybox.version.as_deref()
        ),
        (
            "busybox",
            &["bin/busybox".to_string()][..],
            Some("1:1.35.0-4+deb12u1+b1")
        )
    );
    let images: Vec<_> = plan.images.iter().map(|i| i.reference()).collect();
    for want in [
        "registry.k8s.io/kube-apiserver:v1.34.2",
        "registry.k8s.io/pause:3.10.1",
        "registry.k8s.io/coredns/coredns:v1.12.1",
        "registry.k8s.io/etcd:3.6.5-0",
        "quay.io/cilium/cilium:v1.16.5",
        "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-distroless",
    ] {
        assert!(
            images.iter().any(|i| i == want),
            "{want} missing from {images:?}"
        );
    }
}

/// NVIDIA spells the arches its own way (`archNames`): x86_64 and aarch64 for runfiles,
/// x86_64 and sbsa for its CUDA repositories; the bundle still records amd64 and arm64.
#[test]
fn nvidia_artifacts_use_nvidias_arch_names() {
    let sources = Sources::builtin().unwrap();
    let plan = sources
        .plan(
            "1.34.2",
            &[Arch::Amd64, Arch::Arm64],
            None,
            &["kata".into()],
        )
        .unwrap();
    let runfiles: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.component == "nvidia-driver-runfile")
        .map(|f| (f.arch, f.url.as_str(), &f.checksum))
        .collect();
    assert_eq!(
        runfiles,
        [
            (
                Arch::Amd64,
                "https://us.download.nvidia.com/XFree86/Linux-x86_64/550.90.07/NVIDIA-Linux-x86_64-550.90.07.run",
                &ExpectedChecksum::Pinned(
                    "51acf579d5a9884f573a1d3f522e7fafa5e7841e22a9cec0b4bbeae31b0b9733".into()
                )
            ),
            (
                Arch::Arm64,
                "https://us.download.nvidia.com/XFree86/Linux-aarch64/550.90.07/NVIDIA-Linux-aarch64-550.90.07.run",
                &ExpectedChecksum::Pinned(
                    "b896b76ae465307afc5b269c40bd8ccb279e6ea7d3ecae95534a91ecb1971572".into()
                )
            ),
        ]
    );
    let driver: Vec<_> = plan
        .debs
        .iter()
        .filter(|d| d.origin == "nvidia-driver")
        .collect();
    assert_eq!(driver.len(), 2);
    for (debs, spelt) in driver.iter().zip(["x86_64", "sbsa"]) {
        assert_eq!(
            debs.repos,
            [(
                format!(
                    "https://developer.download.nvidia.com/compute/cuda/repos/debian12/{spelt}/Packages.gz"
                ),
                format!(
                    "https://developer.download.nvidia.com/compute/cuda/repos/debian12/{spelt}/"
                ),
            )]
        );
        // Fabric manager in exactly the driver's version.
        let fm = debs
            .packages
            .iter()
            .find(|p| p.name == "nvidia-fabricmanager-550")
            .unwrap();
        assert_eq!(fm.version.as_deref(), Some("550.90.07-1"));
        for name in [
            "nvidia-kernel-dkms",
            "libcuda1",
            "nvidia-smi",
            "nvidia-persistenced",
        ] {
            let p = debs.packages.iter().find(|p| p.name == name).unwrap();
            assert_eq!(p.version.as_deref(), Some("550.90.07-1"), "{name}");
        }
    }
    // A repo without archNames keeps kubegrid's names.
    let toolkit = plan
        .debs
        .iter()
        .find(|d| d.origin == "nvidia-container-toolkit" && d.arch == Arch::Arm64)
        .unwrap();
    assert_eq!(
        toolkit.repos[0].0,
        "https://nvidia.github.io/libnvidia-container/stable/deb/arm64/Packages"
    );
}

#[test]
fn arch_names_must_be_plain_words_for_real_arches() {
    for bad in [
        "{amd64: x86_64, arm64: ../sbsa}",
        "{all: x86_64}",
        "{amd64: \"\"}",
    ] {
        let text = Sources::builtin()
            .map(|_| {
                kubegrid_bundle::DEFAULT_SOURCES.replace(
                    "archNames: {amd64: x86_64, arm64: sbsa}",
                    &format!("archNames: {bad}"),
                )
            })
            .unwrap();
        let err = Sources::parse(&text, "test").unwrap_err().to_string();
        assert!(
            err.contains("archNames") && err.contains("debian12"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_file_without_its_pin_fails_the_plan_naming_it_unless_left_out() {
    // The shipped sources pin every file they list for both arches.
    let shipped = Sources::builtin().unwrap();
    let plan = shipped
        .plan("1.34.2", &[Arch::Amd64, Arch::Arm64], None, &[])
        .unwrap();
    assert!(plan.files.iter().any(|f| f.component == "kata"));
    // Without kata's amd64 pin (its upstream publishes no checksum), amd64 fails.
    let amd64_pin =
        "              amd64: 99cefb46d70bc27b7bcffd7595be9010c6bed43e1cdfcf8078554c19e7c9b19d\n";
    let text = include_str!("../../../../offline-bundle/sources.yaml");
    assert!(text.contains(amd64_pin), "the shipped kata amd64 pin moved");
    let sources = Sources::parse(&text.replace(amd64_pin, ""), "test").unwrap();
    let err = sources
        .plan("1.34.2", &[Arch::Amd64], None, &[])
        .unwrap_err();
    assert!(matches!(err, Error::MissingPin { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("kata 3.28.0 amd64 (https://github.com/kata-containers/kata-containers/releases/download/3.28.0/kata-static-3.28.0-amd64.tar.zst) has no sha256 pin"),
        "{text}"
    );
    assert!(text.contains("--without kata"), "{text}");
    assert!(err.is_input());
    let plan = sources
        .plan("1.34.2", &[Arch::Amd64], None, &["kata".into()])
        .unwrap();
    assert!(plan.files.iter().all(|f| f.component != "kata"));

    let err = sources
        .plan(
            "1.34.2",
            &[Arch::Amd64],
            None,
            &[KUBERNETES_COMPONENT.into()],
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no optional component `kubernetes`"),
        "{err}"
    );
}

#[test]
fn unknown_releases_and_distros_list_what_there_is() {
    let sources = Sources::builtin().unwrap();
    let err = sources
        .plan("1.99.0", &[Arch::Amd64], None, &[])
        .unwrap_err();
    assert!(err.to_string().contains("they have: 1.34.2"), "{err}");
    let err = sources
        .plan("1.34.2", &[Arch::Arm64], Some("centos-7"), &[])
        .unwrap_err();
    assert!(err.to_string().contains("they have: debian-12"), "{err}");
}

#[test]
fn invalid_sources_are_refused_naming_the_part() {
    let up = Upstream::start();
    let cases = [
        (
            // The fixture's release ends the file, so this adds an image to it.
            format!(
                "{}    images:\n      - {{name: registry.k8s.io/pause, tag: \"3.10\", arches: [amd64], component: kubernetes}}\n",
                up.sources
            ),
            "image `registry.k8s.io/pause:3.10` has no `digest`",
        ),
        (
            up.sources.replace("runc.{arch}\n", "runc.{os}\n"),
            "component `runc` artifact 1",
        ),
        (
            up.sources
                .replace("kata: 3.0.0}", "kata: 3.0.0, helm: 3.0.0}"),
            "release `1.0.0` names component `helm` 3.0.0",
        ),
        (
            up.sources.replace("format: single", "format: md5"),
            "unknown variant `md5`",
        ),
        (
            up.sources.replace(
                "checksum:\n          sha256:",
                "checksum:\n          file: https://x.example/SUMS\n          sha256:",
            ),
            "not both",
        ),
        (
            up.sources.replace(
                "  etcd:\n    artifacts:\n      - kind: archive",
                "  etcd:\n    artifacts:\n      - kind: binary",
            ),
            "only an `archive` can have `extract`",
        ),
        (
            up.sources.replace(
                "components: {kubernetes: 1.0.0,",
                "components: {kubernetes: 1.0.1,",
            ),
            "components.kubernetes must be `1.0.0`",
        ),
    ];
    for (text, want) in cases {
        let err = Sources::parse(&text, "test").unwrap_err().to_string();
        assert!(err.contains(want), "want `{want}` in: {err}");
    }
    let err = up
        .sources()
        .plan("1.0.0", &[Arch::Arm64], None, &[])
        .unwrap_err();
    assert!(
        err.to_string().starts_with("kata 3.0.0 arm64"),
        "a pin for amd64 does not cover arm64: {err}"
    );
}
