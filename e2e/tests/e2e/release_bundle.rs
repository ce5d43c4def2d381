//! A bundle built from the SHIPPED offline-bundle/sources.yaml applies with the shipped
//! playbook (issue #14): the file is taken unchanged except its `releases:` section, which
//! is replaced by one test release whose versions are those of the e2e bundle's files, and
//! `kubegrid bundle build --mirror` reads a loopback UPSTREAM STAND-IN that serves those
//! files in upstream's release layouts with upstream's checksum files
//! (release_bundle/upstream.rs): containerd's release archive, runc's binary, the CNI plugins,
//! crictl's and etcd's tarballs, distribution's registry archive, Debian's busybox-static
//! behind a Packages index, and (`--include-os-packages debian-12`) the containerd and runc
//! .debs beside the archive and binary of the same names. The Kubernetes binaries are the e2e
//! bundle's TEST STAND-INS, so no kube-apiserver runs and the API checks are skipped, as in
//! the air-gap test. Components that cannot be had here (kata, helm,
//! nvidia-container-toolkit) keep their shipped versions in the release and are left out with
//! `--without`; KEDA's chart, rendered by the bundled helm, is not in the test release
//! (operator/bundle/tests/build/charts.rs builds one with a stand-in helm CLI).
//!
//! Then `bundle verify`, `plan` (the bundle check accepts the two containerd entries for a
//! `source: archive` spec), `apply` on 2 lab hosts with the bundle registry on lab-1, and:
//! containerd 2.x runs from /usr/local/bin with a version 3 config and no containerd package
//! installed, the registry binary is distribution's from its archive, and a re-apply changes
//! nothing.

mod upstream;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::airgap::{kubegrid, ok, s, server::Server};
use kubegrid_e2e::{LabGuard, bundle_dir, total_changed};
use serde_json::Value;

/// The sources file kubegrid ships (and compiles in).
const SHIPPED_SOURCES: &str = include_str!("../../../offline-bundle/sources.yaml");
/// Components of the shipped release no loopback stand-in serves here.
const WITHOUT: [&str; 3] = ["kata", "helm", "nvidia-container-toolkit"];

/// The lab's spec with the packed bundle, its key, the bundle registry on `registry_host`,
/// and the containerd release line of the test release.
fn spec(lab: &LabGuard, bundle: &Path, key: &Path, registry_host: &str, line: &str) -> PathBuf {
    lab.spec_with("release-bundle", |c| {
        c["spec"]["bundle"] = serde_yaml::to_value(serde_json::json!({
            "source": s(bundle),
            "publicKeyFile": s(key),
            "registry": {"host": registry_host, "port": 5000},
        }))
        .expect("yaml");
        c["spec"]["containerRuntime"]["containerd"]["version"] = line.into();
    })
}

#[test]
fn a_bundle_built_from_the_shipped_sources_applies_with_the_shipped_playbook() {
    let e2e = bundle_dir();
    let files = upstream::bundle_files(&e2e);
    let lab = LabGuard::up(2);
    let work = lab.state_dir.join("release-bundle");
    std::fs::create_dir_all(&work).expect("mkdir");

    // The upstream stand-in and the build, on this machine's loopback only.
    let mirror = Server::start();
    let v = upstream::serve(&mirror, &e2e, &files, &work);
    eprintln!(
        "release-bundle e2e: Kubernetes {} here is the e2e bundle's TEST STAND-INS (kubeadm, kubelet, kubectl, crictl), not upstream Kubernetes; containerd {}, runc {}, etcd {}, registry {}, CNI plugins {} and busybox {} are Debian's binaries in upstream's release layouts",
        v.kubernetes, v.containerd, v.runc, v.etcd, v.registry, v.cni, v.busybox
    );
    let sources = work.join("sources.yaml");
    std::fs::write(&sources, upstream::sources(SHIPPED_SOURCES, &v, &WITHOUT)).expect("write");
    let (key, public) = (work.join("signing.key"), work.join("signing.key.pub"));
    ok(
        kubegrid(
            &lab,
            &[
                "bundle",
                "keygen",
                "--private",
                s(&key),
                "--public",
                s(&public),
            ],
        ),
        "keygen",
    );
    let packed = work.join("bundle.tar.zst");
    let mut args = vec![
        "bundle",
        "build",
        "--sources",
        s(&sources),
        "--k8s-version",
        &v.kubernetes,
        "--arch",
        "amd64",
        "--mirror",
    ];
    let url = mirror.url();
    args.extend([url.as_str(), "--include-os-packages", "debian-12"]);
    for w in WITHOUT {
        args.extend(["--without", w]);
    }
    args.extend(["--sign-key", s(&key), "--out", s(&packed), "-o", "json"]);
    let out = ok(
        kubegrid(&lab, &args),
        "bundle build from the shipped sources",
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("build report JSON");
    assert_eq!(report["signed"], true, "{report}");
    ok(
        kubegrid(
            &lab,
            &["bundle", "verify", s(&packed), "--public-key", s(&public)],
        ),
        "bundle verify of the packed bundle",
    );

    // What the bundle holds: every entry the shipped playbook asks for, under its kind.
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    let status = Command::new("tar")
        .args(["--zstd", "-xf", s(&packed), "-C", s(&tree)])
        .status()
        .expect("run tar");
    assert!(status.success());
    let built = upstream::bundle_files(&tree);
    let has = |kind: &str, name: &str, version: &str| {
        built.iter().any(|f| {
            f.kind == kind
                && f.name.as_deref() == Some(name)
                && f.version.as_deref() == Some(version)
        })
    };
    let deb = |name: &str| {
        upstream::entry(&files, "deb", name, "")
            .version
            .clone()
            .expect("version")
    };
    for (kind, name, version) in [
        ("archive", "containerd", v.containerd.clone()),
        ("deb", "containerd", deb("containerd")),
        ("binary", "runc", v.runc.clone()),
        ("deb", "runc", deb("runc")),
        ("archive", "cni-plugins", v.cni.clone()),
        ("binary", "crictl", v.crictl.clone()),
        ("binary", "etcd", v.etcd.clone()),
        ("binary", "etcdctl", v.etcd.clone()),
        ("binary", "registry", v.registry.clone()),
        ("binary", "kubeadm", v.kubernetes.clone()),
        ("rootfs", "busybox", v.busybox.clone()),
    ] {
        assert!(
            has(kind, name, &version),
            "no {kind} {name} {version} in {built:#?}"
        );
    }
    // The rootfs made of busybox-static is byte for byte the one dev-bundle.sh makes.
    let rootfs = built.iter().find(|f| f.kind == "rootfs").expect("rootfs");
    let e2e_rootfs = files.iter().find(|f| f.kind == "rootfs").expect("rootfs");
    assert_eq!(rootfs.sha256, e2e_rootfs.sha256, "{rootfs:?}");

    // The bundle check accepts it for the lab's spec (source: archive, the default).
    let line: String = v
        .containerd
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    let spec = spec(&lab, &packed, &public, "lab-1", &line);
    let journal = lab.journal();
    let base = [
        "--bundle",
        s(&packed),
        "--bundle-public-key",
        s(&public),
        "--journal",
        s(&journal),
    ];
    let mut plan = vec!["plan", "-f", s(&spec)];
    plan.extend(base);
    ok(kubegrid(&lab, &plan), "plan with the built bundle");

    // The whole playbook (API checks skipped: the Kubernetes binaries are stand-ins).
    let kubeconfig = lab.state_dir.join("admin.conf");
    let mut apply = vec![
        "apply",
        "-f",
        s(&spec),
        "-o",
        "json",
        "--kubeconfig-out",
        s(&kubeconfig),
        "--skip-check",
        "cluster-api",
    ];
    apply.extend(base);
    let out = ok(kubegrid(&lab, &apply), "apply of the built bundle");
    let report: Value = serde_json::from_slice(&out.stdout).expect("apply report JSON");
    assert_eq!(report["outcome"], "succeeded", "{report}");

    let registry = built
        .iter()
        .find(|f| f.kind == "binary" && f.name.as_deref() == Some("registry"))
        .expect("registry");
    for h in &lab.hosts {
        // `containerd github.com/containerd/containerd/v2 2.1.9+unknown`: the third word is
        // the version, with whatever build suffix the packager gave it.
        let line = lab.ssh_ok(h, "/usr/local/bin/containerd --version");
        let word = line.split_whitespace().nth(2).unwrap_or_default();
        let word = word.trim_start_matches('v');
        assert!(
            word == v.containerd
                || word
                    .strip_prefix(v.containerd.as_str())
                    .is_some_and(|rest| rest.starts_with(['+', '-', '~'])),
            "{}: {line}",
            h.name
        );
        let exe = lab.ssh_ok(
            h,
            "readlink /proc/$(systemctl show -p MainPID --value containerd.service)/exe",
        );
        assert_eq!(exe, "/usr/local/bin/containerd", "{}", h.name);
        let config = lab.ssh_ok(h, "grep -E '^version *= *3$' /etc/containerd/config.toml");
        assert!(!config.is_empty(), "{}: no `version = 3`", h.name);
        assert_eq!(
            lab.ssh_ok(
                h,
                "dpkg-query -W -f '${db:Status-Status}' containerd 2>/dev/null | grep -qx installed && echo installed || echo none"
            ),
            "none",
            "{}: the containerd package is installed",
            h.name
        );
    }
    let installed = lab.ssh_ok(
        lab.host("lab-1"),
        "sha256sum /usr/local/bin/kubegrid-registry | cut -d' ' -f1",
    );
    assert_eq!(
        installed, registry.sha256,
        "the registry from distribution's archive"
    );

    // Converged: a second apply changes nothing.
    let out = ok(kubegrid(&lab, &apply), "re-apply of the built bundle");
    let report: Value = serde_json::from_slice(&out.stdout).expect("apply report JSON");
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(
        total_changed(&report),
        0,
        "re-apply changed something:\n{report}"
    );
}
