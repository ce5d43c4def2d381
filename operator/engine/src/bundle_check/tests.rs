use std::path::Path;

use super::*;

/// A spec with one control-plane/etcd/worker Node `cp` and one worker `w`; `endpoint` is
/// the controlPlaneEndpoint, `extra` goes into spec.bundle.
fn spec(version: &str, endpoint: &str, bundle_extra: &str, arch: &str) -> Manifest {
    spec_runtime(version, endpoint, bundle_extra, arch, "1.7", "archive")
}

/// [`spec`] with containerd `line` from `source`.
fn spec_runtime(
    version: &str,
    endpoint: &str,
    bundle_extra: &str,
    arch: &str,
    line: &str,
    source: &str,
) -> Manifest {
    let text = format!(
        "apiVersion: kubegrid.io/v1alpha1
kind: Cluster
metadata: {{name: t}}
spec:
  kubernetesVersion: {version}
  controlPlaneEndpoint: {endpoint}
  network: {{podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}}
  containerRuntime: {{containerd: {{version: \"{line}\"}}, source: {source}}}
  bundle: {{source: bundle{bundle_extra}}}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {{name: cp}}
spec: {{clusterName: t, address: 192.0.2.10, roles: [control-plane, etcd, worker]{arch}}}
---
apiVersion: kubegrid.io/v1alpha1
kind: Node
metadata: {{name: w}}
spec: {{clusterName: t, address: 192.0.2.11, roles: [worker]{arch}}}
"
    );
    kubegrid_api::parse(&text, Path::new("/nonexistent/spec.yaml")).unwrap()
}

/// Everything the install playbook takes, for `arch`, Kubernetes `k8s`, containerd `ctrd`.
fn bundle(arch: &str, k8s: &str, ctrd: &str, images: &str) -> kubegrid_plan::Manifest {
    let mut yaml = format!("version: 2\nkubernetes: \"{k8s}\"\nfiles:\n");
    let entries = [
        ("archive", "containerd", ctrd),
        ("binary", "runc", "1.1.5"),
        ("rootfs", "busybox", "1.35"),
        ("binary", "kubeadm", k8s),
        ("binary", "kubelet", k8s),
        ("binary", "kubectl", k8s),
        ("binary", "crictl", "1.31.0"),
        ("binary", "etcd", "3.5.15"),
        ("binary", "etcdctl", "3.5.15"),
        ("binary", "registry", "2.8"),
        ("archive", "cni-plugins", "1.5.0"),
    ];
    for (i, (kind, name, version)) in entries.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{path: f{i}, sha256: {}, size: 1, arch: {arch}, kind: {kind}, name: {name}, version: \"{version}\"}}\n",
            "a".repeat(64)
        ));
    }
    yaml.push_str(images);
    serde_yaml::from_str(&yaml).unwrap()
}

fn run(m: &Manifest, b: &kubegrid_plan::Manifest, until: Option<&str>) -> Result<(), String> {
    let ctx = crate::spec::cluster_context(m).unwrap();
    let playbook = Playbook::builtin("install").unwrap();
    check(m, &ctx, Path::new("/b.tar.zst"), b, &playbook, until).map_err(|e| e.to_string())
}

const LB: &str = "{address: 192.0.2.10}";

#[test]
fn a_bundle_that_fits_passes() {
    let m = spec("v1.31.4", LB, "", "");
    run(&m, &bundle("amd64", "1.31.4", "1.7.24~ds1-1", ""), None).unwrap();
    let m = spec("v1.31.4", LB, "", ", arch: arm64");
    run(&m, &bundle("arm64", "1.31.4", "1.7.24", ""), None).unwrap();
}

#[test]
fn another_kubernetes_version_is_refused_naming_both_pre_releases_included() {
    let m = spec("v1.32.0-rc.1", LB, "", "");
    let err = run(&m, &bundle("amd64", "1.32.0", "1.7.24", ""), None).unwrap_err();
    assert!(
        err.contains("spec.kubernetesVersion is v1.32.0-rc.1")
            && err.contains("kubeadm (amd64) 1.32.0"),
        "{err}"
    );
    assert!(err.contains("--k8s-version 1.32.0-rc.1"), "{err}");
    assert_eq!(
        err.matches("kubernetesVersion is").count(),
        1,
        "once: {err}"
    );
    // Preparing hosts only (`--until container-runtime`) needs no Kubernetes at all.
    run(
        &m,
        &bundle("amd64", "1.32.0", "1.7.24", ""),
        Some("container-runtime"),
    )
    .unwrap();
}

#[test]
fn another_containerd_line_is_refused_naming_both() {
    let m = spec("v1.31.4", LB, "", "");
    let err = run(&m, &bundle("amd64", "1.31.4", "2.1.4", ""), None).unwrap_err();
    assert!(
        err.contains("asks for containerd 1.7 from a release archive")
            && err.contains("containerd 2.1.4 (archive amd64, f0)"),
        "{err}"
    );
}

/// The dev bundle's mix: bookworm's containerd 1.6 package and sid's 2.1 release archive.
fn deb_and_archive() -> kubegrid_plan::Manifest {
    let mut b = bundle("amd64", "1.31.4", "2.1.9", "");
    let mut deb = b.files[0].clone();
    deb.path = "debs/containerd_1.6.20~ds1-1+deb12u3_amd64.deb".into();
    deb.kind = kubegrid_plan::FileKind::Deb;
    deb.version = Some("1.6.20~ds1-1+deb12u3".into());
    let mut runc = b.files[1].clone();
    runc.path = "debs/runc_1.1.5+ds1-1+deb12u1_amd64.deb".into();
    runc.kind = kubegrid_plan::FileKind::Deb;
    runc.version = Some("1.1.5+ds1-1+deb12u1".into());
    b.files.extend([deb, runc]);
    b
}

#[test]
fn the_specs_source_picks_one_of_two_containerd_kinds_and_its_line_the_version() {
    let b = deb_and_archive();
    let archive_21 = spec_runtime("v1.31.4", LB, "", "", "2.1", "archive");
    run(&archive_21, &b, None).unwrap();
    let packages_16 = spec_runtime("v1.31.4", LB, "", "", "1.6", "packages");
    run(&packages_16, &b, None).unwrap();
    let archive_17 = spec_runtime("v1.31.4", LB, "", "", "1.7", "archive");
    let err = run(&archive_17, &b, None).unwrap_err();
    for part in [
        "spec.containerRuntime asks for containerd 1.7 from a release archive (kind archive) (source: archive)",
        "containerd 1.6.20~ds1-1+deb12u3 (deb amd64, debs/containerd_1.6.20~ds1-1+deb12u3_amd64.deb)",
        "containerd 2.1.9 (archive amd64, f0)",
        "hint: use a bundle with containerd 1.7 as a release archive",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    // The right line as the other kind: the hint names the source that has it.
    let archive_16 = spec_runtime("v1.31.4", LB, "", "", "1.6", "archive");
    let err = run(&archive_16, &b, None).unwrap_err();
    assert!(
        err.contains("set spec.containerRuntime.source to packages (the bundle has 1.6 that way)"),
        "{err}"
    );
}

#[test]
fn a_bundle_for_another_arch_is_refused_per_node_with_what_it_has() {
    let m = spec("v1.31.4", LB, "", ", arch: amd64");
    let err = run(&m, &bundle("arm64", "1.31.4", "1.7.24", ""), None).unwrap_err();
    assert!(
        err.starts_with("bundle /b.tar.zst does not fit the spec"),
        "{err}"
    );
    assert!(
        err.contains("Node w (amd64; the bundle has no files for amd64) needs, in phase container-runtime: archive containerd"),
        "{err}"
    );
    assert!(
        err.contains(
            "Node cp (amd64; the bundle has no files for amd64) needs, in phase container-runtime:"
        ) && err.contains("in phase etcd: binary etcd, binary etcdctl"),
        "{err}"
    );
    assert!(
        err.contains("the bundle has: archive cni-plugins 1.5.0 (arm64)"),
        "{err}"
    );
    assert!(err.contains("archive containerd 1.7.24 (arm64)"), "{err}");
    assert!(err.contains("--arch amd64"), "{err}");
}

#[test]
fn a_bundle_without_files_is_refused() {
    let m = spec("v1.31.4", LB, "", "");
    let empty: kubegrid_plan::Manifest = serde_yaml::from_str("version: 1\nfiles: []\n").unwrap();
    let err = run(&m, &empty, None).unwrap_err();
    assert!(err.contains("the bundle has: no files"), "{err}");
    assert!(err.contains("binary kubeadm"), "{err}");
}

#[test]
fn an_air_gapped_vip_needs_kube_vip_in_the_bundle() {
    let vip = "{vip: 192.0.2.100}";
    let registry = ", registry: {host: cp}";
    let m = spec("v1.31.4", vip, registry, "");
    let err = run(&m, &bundle("amd64", "1.31.4", "1.7.24", ""), None).unwrap_err();
    assert!(
        err.contains("no image ghcr.io/kube-vip/kube-vip:v0.8.9") && err.contains("sources.yaml"),
        "{err}"
    );
    let (name, tag) = kubegrid_plan::KUBE_VIP_IMAGE.rsplit_once(':').unwrap();
    let images = format!(
        "images:\n  - {{name: {name}, tag: {tag}, digest: \"sha256:{}\", arches: [amd64]}}\n",
        "b".repeat(64)
    );
    run(&m, &bundle("amd64", "1.31.4", "1.7.24", &images), None).unwrap();
    // Without a bundle registry, hosts pull kube-vip upstream; nothing to carry.
    let m = spec("v1.31.4", vip, "", "");
    run(&m, &bundle("amd64", "1.31.4", "1.7.24", ""), None).unwrap();
    // A run that stops before the control plane starts no kube-vip.
    let m = spec("v1.31.4", vip, registry, "");
    run(
        &m,
        &bundle("amd64", "1.31.4", "1.7.24", ""),
        Some("kubernetes-packages"),
    )
    .unwrap();
}

#[test]
fn check_dir_reads_the_manifest_alone() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle("amd64", "1.31.4", "1.7.24", "");
    std::fs::write(
        dir.path().join("manifest.yaml"),
        serde_yaml::to_string(&b).unwrap(),
    )
    .unwrap();
    let m = spec("v1.31.4", LB, "", "");
    // The artifacts are not there; only the manifest is read.
    check_dir(&m, dir.path()).unwrap();
    let m = spec("v1.31.5", LB, "", "");
    let err = check_dir(&m, dir.path()).unwrap_err().to_string();
    assert!(err.contains("v1.31.5"), "{err}");
}

/// [`bundle`] plus kubeadm, kubelet and kubectl of `extra` versions (the e2e bundle's
/// stand-ins for three minors).
fn multi_version_bundle(primary: &str, extra: &[&str]) -> kubegrid_plan::Manifest {
    let mut b = bundle("amd64", primary, "1.7.24", "");
    let template = b.files[3].clone();
    for v in extra {
        for name in kubegrid_plan::KUBERNETES_BINARIES {
            let mut f = template.clone();
            f.path = format!("standin/amd64/v{v}/{name}").into();
            f.name = Some(name.to_string());
            f.version = Some((*v).to_string());
            b.files.push(f);
        }
    }
    b
}

#[test]
fn a_bundle_with_several_kubernetes_versions_serves_each_of_them() {
    let b = multi_version_bundle("1.31.4", &["1.32.4", "1.33.4"]);
    // The manifest's kubernetes stays the primary version; the spec may ask for any other
    // version the bundle carries.
    assert_eq!(b.kubernetes.as_deref(), Some("1.31.4"));
    for version in ["v1.31.4", "v1.32.4", "v1.33.4"] {
        run(&spec(version, LB, "", ""), &b, None).unwrap();
    }
    let err = run(&spec("v1.34.2", LB, "", ""), &b, None).unwrap_err();
    assert!(
        err.contains("spec.kubernetesVersion is v1.34.2, but the bundle carries Kubernetes kubeadm (amd64) 1.31.4 and 1.32.4 and 1.33.4, kubelet (amd64) 1.31.4 and 1.32.4 and 1.33.4, kubectl (amd64) 1.31.4 and 1.32.4 and 1.33.4"),
        "{err}"
    );
}

#[test]
fn every_kubernetes_binary_must_carry_the_specs_version() {
    // kubeadm and kubectl of 1.32.4 but no kubelet of it: kubelet is named.
    let mut b = multi_version_bundle("1.31.4", &["1.32.4"]);
    b.files.retain(|f| {
        !(f.name.as_deref() == Some("kubelet") && f.version.as_deref() == Some("1.32.4"))
    });
    let err = run(&spec("v1.32.4", LB, "", ""), &b, None).unwrap_err();
    assert!(
        err.contains("but the bundle carries Kubernetes kubelet (amd64) 1.31.4")
            && !err.contains("kubeadm (amd64)"),
        "{err}"
    );
}
