//! Versions of installed programs, as the programs themselves report them: each asked-for
//! executable is run with `--version` and the first version number in its output is kept.
//! This is how the engine learns what kubelet and containerd a host runs after an install,
//! whatever put them there.
//!
//! Two kinds of path are read differently, because upstream offers no `--version` there:
//! - `kubeadm` takes no `--version` flag; it is run as `kubeadm version -o short`;
//! - a static pod manifest (a path ending in `.yaml`, such as kubeadm's
//!   `/etc/kubernetes/manifests/kube-apiserver.yaml`) is read, not run: the tag of its first
//!   `image:` is the version of the control-plane component it runs.

use std::{collections::BTreeMap, path::Path, time::Duration};

use crate::{exec, fsutil::under_root};

/// How long one `--version` may take; a program that hangs is reported without a version.
const LIMIT: Duration = Duration::from_secs(5);

/// The version each of `paths` (host paths, resolved under `root`) reports, by the path as
/// asked. Paths that are missing, fail, or print no version are left out.
pub fn versions(root: &Path, paths: &[std::path::PathBuf]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for path in paths {
        let local = under_root(root, path);
        if !local.is_file() {
            continue;
        }
        if path.extension().is_some_and(|e| e == "yaml") {
            let tag = std::fs::read_to_string(&local)
                .ok()
                .and_then(|text| image_tag(&text));
            if let Some(v) = tag {
                out.insert(path.to_string_lossy().into_owned(), v);
            }
            continue;
        }
        let mut argv = vec![local.to_string_lossy().into_owned()];
        if path.file_name().is_some_and(|n| n == "kubeadm") {
            argv.extend(["version".to_string(), "-o".into(), "short".into()]);
        } else {
            argv.push("--version".to_string());
        }
        let Ok(ran) = exec::run_with(&argv, &BTreeMap::new(), Some(LIMIT)) else {
            continue;
        };
        if !ran.success() {
            continue;
        }
        let text = format!("{}\n{}", ran.stdout, ran.stderr);
        if let Some(v) = parse_version(&text) {
            out.insert(path.to_string_lossy().into_owned(), v);
        }
    }
    out
}

/// The version in the tag of the first `image:` of a static pod manifest
/// (`image: registry.k8s.io/kube-apiserver:v1.31.4` gives `v1.31.4`).
pub fn image_tag(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let image = line
            .trim_start()
            .trim_start_matches("- ")
            .strip_prefix("image:")?;
        let image = image.trim().trim_matches(|c| c == '"' || c == '\'');
        // The tag follows the last ':' after the last '/' (a registry may carry a port).
        let name = image.rsplit('/').next()?;
        let (_, tag) = name.rsplit_once(':')?;
        parse_version(tag)
    })
}

/// The first word of `text` that is a version number (`v1.31.4`, `1.7.24`, `2.0.0-rc.1`),
/// with a leading `v`: `Kubernetes v1.31.4` and `containerd github.com/containerd/containerd
/// v1.7.24 88bf19b2…` give `v1.31.4` and `v1.7.24`.
pub fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|word| {
        let bare = word.strip_prefix('v').unwrap_or(word);
        let mut parts = bare.splitn(3, '.');
        let numeric = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        };
        let (major, minor) = (parts.next(), parts.next());
        let patch = parts.next().map(|p| {
            p.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or_default()
        });
        (numeric(major) && numeric(minor) && patch.is_none_or(|p| !p.is_empty()))
            .then(|| format!("v{bare}"))
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn versions_are_found_in_what_kubelet_and_containerd_print() {
        assert_eq!(
            parse_version("Kubernetes v1.31.4\n").as_deref(),
            Some("v1.31.4")
        );
        assert_eq!(
            parse_version(
                "containerd github.com/containerd/containerd v1.7.24 88bf19b2fb8c3eb2a9ed57b1d5d0ac7e1a8e8e8e\n"
            )
            .as_deref(),
            Some("v1.7.24")
        );
        assert_eq!(
            parse_version("containerd containerd.io 1.6.33 d2d58213818a\n").as_deref(),
            Some("v1.6.33")
        );
        assert_eq!(
            parse_version("containerd github.com/containerd/containerd/v2 v2.0.0-rc.1 abc\n")
                .as_deref(),
            Some("v2.0.0-rc.1")
        );
        assert_eq!(parse_version("no version here 42\n"), None);
    }

    #[test]
    fn a_static_pod_manifest_gives_its_image_tag() {
        let manifest = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.32.4\n";
        assert_eq!(image_tag(manifest).as_deref(), Some("v1.32.4"));
        assert_eq!(
            image_tag("    image: \"mirror.example:5000/kube-apiserver:v1.31.4\"\n").as_deref(),
            Some("v1.31.4")
        );
        assert_eq!(
            image_tag("    image: mirror.example:5000/kube-apiserver\n"),
            None
        );
    }

    #[test]
    fn kubeadm_is_asked_with_its_version_command_and_manifests_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let kubeadm = bin.join("kubeadm");
        std::fs::write(
            &kubeadm,
            "#!/bin/sh\n[ \"$*\" = 'version -o short' ] && echo v1.32.4\n",
        )
        .unwrap();
        std::fs::set_permissions(&kubeadm, std::fs::Permissions::from_mode(0o755)).unwrap();
        let manifests = dir.path().join("etc/kubernetes/manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(
            manifests.join("kube-apiserver.yaml"),
            "spec:\n  containers:\n  - image: registry.k8s.io/kube-apiserver:v1.31.4\n",
        )
        .unwrap();
        let got = versions(
            dir.path(),
            &[
                "/usr/bin/kubeadm".into(),
                "/etc/kubernetes/manifests/kube-apiserver.yaml".into(),
            ],
        );
        assert_eq!(got["/usr/bin/kubeadm"], "v1.32.4");
        assert_eq!(
            got["/etc/kubernetes/manifests/kube-apiserver.yaml"],
            "v1.31.4"
        );
    }

    #[test]
    fn each_program_is_run_and_missing_ones_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let kubelet = bin.join("kubelet");
        std::fs::write(
            &kubelet,
            "#!/bin/sh\n[ \"$1\" = --version ] && echo 'Kubernetes v1.31.4'\n",
        )
        .unwrap();
        std::fs::set_permissions(&kubelet, std::fs::Permissions::from_mode(0o755)).unwrap();
        let got = versions(
            dir.path(),
            &["/usr/bin/kubelet".into(), "/usr/bin/containerd".into()],
        );
        assert_eq!(
            got,
            BTreeMap::from([("/usr/bin/kubelet".to_string(), "v1.31.4".to_string())])
        );
    }
}
