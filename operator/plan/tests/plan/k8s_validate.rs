//! The rendered manifests against the Kubernetes API schemas of the spec's version, with
//! `kubernetes-validate` (PyPI) in strict mode, from the virtualenv .ci/setup creates.
//!
//! kubernetes-validate ships schemas for API resources only: kube-vip's Pod and every Cilium
//! object are validated; KubeletConfiguration, KubeProxyConfiguration and kubeadm's types have
//! no schema there, so for them it can only say so (the tests assert it does, so a release that
//! adds schemas is noticed); their fields are checked by the structural tests instead.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::{
    k8s_fixtures::{VARIANTS, Variant},
    k8s_templates::{CILIUM, INIT, KUBE_VIP, render_for},
};

/// Where .ci/setup creates the virtualenv; KUBEGRID_VALIDATE_VENV overrides it.
const DEFAULT_VENV: &str = "/var/cache/kubegrid/validate-venv";

/// Kinds kubernetes-validate has no schema for.
const COMPONENT_CONFIGS: &[&str] = &["KubeletConfiguration", "KubeProxyConfiguration"];

/// The virtualenv, or None (after saying so loudly) when it does not exist. In CI (`CI` set,
/// as .ci/run does) a missing virtualenv fails the test instead: a green run must mean the
/// manifests were validated.
pub fn venv() -> Option<PathBuf> {
    venv_at(
        std::env::var_os("KUBEGRID_VALIDATE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV)),
        std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false")),
    )
}

/// [`venv`] for a given place and CI flag.
fn venv_at(venv: PathBuf, ci: bool) -> Option<PathBuf> {
    if venv.join("bin/python").exists() {
        return Some(venv);
    }
    assert!(
        !ci,
        "manifest validation needs kubernetes-validate in a virtualenv at {}, and CI must run \
         it (.ci/setup creates it)",
        venv.display()
    );
    eprintln!(
        "\n!!! SKIPPED: manifest validation needs kubernetes-validate in a virtualenv at {} \
         (python3 -m venv {0} && {0}/bin/python -m pip install kubernetes-validate), \
         or KUBEGRID_VALIDATE_VENV pointing at one. Nothing was validated. !!!\n",
        venv.display()
    );
    None
}

/// Writes the manifests validated for one variant into `dir`: kube-vip for the init node and
/// a joining control plane (when the variant has a VIP), Cilium, and the kubelet and
/// kube-proxy configs cut out of the kubeadm init config.
fn write_manifests(variant: &Variant, dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut write = |name: String, text: &str| {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        files.push(path);
    };
    if variant.vip {
        for host in ["cp-1", "cp-2"] {
            write(
                format!("kube-vip-{host}.yaml"),
                &render_for(KUBE_VIP, variant.label, host),
            );
        }
    }
    write(
        "cilium.yaml".into(),
        &render_for(CILIUM, variant.label, "cp-1"),
    );
    let init = render_for(INIT, variant.label, "cp-1");
    for doc in init.split("\n---\n") {
        if let Some(kind) = COMPONENT_CONFIGS
            .iter()
            .find(|k| doc.contains(&format!("\nkind: {k}\n")))
        {
            write(format!("{kind}.yaml"), doc);
        }
    }
    files
}

/// Runs the helper; returns its exit status and one JSON object per document.
pub fn validate(venv: &Path, version: &str, files: &[PathBuf]) -> (i32, Vec<Value>) {
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_manifests.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&helper)
        .args(["--kubernetes-version", version])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helper.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code().unwrap_or(-1);
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}`: {e}")))
        .collect();
    // Exit 1 is only a verdict when some document failed; Python's own errors exit 1 too.
    let verdict = code == 0 || (code == 1 && results.iter().any(|r| r["status"] == "failed"));
    assert!(
        verdict,
        "{} exited {code} (is kubernetes-validate installed in {}?): {}{stdout}",
        helper.display(),
        venv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (code, results)
}

#[test]
fn rendered_manifests_pass_kubernetes_validate_for_the_spec_version() {
    let Some(venv) = venv() else { return };
    for variant in VARIANTS {
        let dir = tempfile::tempdir().unwrap();
        let files = write_manifests(variant, dir.path());
        let (code, results) = validate(&venv, variant.version, &files);
        let failed: Vec<_> = results.iter().filter(|r| r["status"] == "failed").collect();
        assert!(
            failed.is_empty() && code == 0,
            "{}: {failed:#?}",
            variant.label
        );
        let passed: Vec<_> = results
            .iter()
            .filter(|r| r["status"] == "passed")
            .map(|r| format!("{}/{}", r["kind"].as_str().unwrap(), r["name"]))
            .collect();
        // kube-vip's Pod on two hosts, and Cilium's 11 objects.
        let expected = if variant.vip { 13 } else { 11 };
        assert_eq!(passed.len(), expected, "{}: {passed:?}", variant.label);
        for kind in COMPONENT_CONFIGS {
            let result = results
                .iter()
                .find(|r| r["kind"] == *kind)
                .unwrap_or_else(|| panic!("{kind} was not validated"));
            assert_eq!(
                result["status"], "no-schema",
                "kubernetes-validate now has a schema for {kind}: update this test and the \
                 module doc, which say it has none"
            );
        }
        eprintln!(
            "{}: kubernetes-validate {} passed {} objects; no schema for {} (checked \
             structurally instead)",
            variant.label,
            variant.version,
            passed.len(),
            COMPONENT_CONFIGS.join(", ")
        );
    }
}

#[test]
fn kubernetes_validate_cli_accepts_the_manifests() {
    let Some(venv) = venv() else { return };
    for variant in VARIANTS {
        let dir = tempfile::tempdir().unwrap();
        let files = write_manifests(variant, dir.path());
        let out = Command::new(venv.join("bin/kubernetes-validate"))
            .args(["--kubernetes-version", variant.version, "--strict"])
            .args(&files)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("ERROR"),
            "{}: {stdout}{}",
            variant.label,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn validation_is_strict_about_unknown_fields() {
    let Some(venv) = venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pod = render_for(KUBE_VIP, "v1.31-stacked-vip", "cp-2").replace(
        "  hostNetwork: true\n",
        "  hostNetwork: true\n  hostNetworking: true\n",
    );
    let path = dir.path().join("kube-vip.yaml");
    fs::write(&path, pod).unwrap();
    let (code, results) = validate(&venv, "1.31.4", &[path]);
    assert_eq!(code, 1);
    assert_eq!(results[0]["status"], "failed");
    assert!(
        results[0]["message"]
            .as_str()
            .unwrap()
            .contains("hostNetworking"),
        "{results:?}"
    );
}

#[test]
fn a_missing_venv_skips_for_a_developer() {
    assert_eq!(
        venv_at(PathBuf::from("/nonexistent/kubegrid-venv"), false),
        None
    );
}

#[test]
#[should_panic(expected = "CI must run it")]
fn a_missing_venv_fails_in_ci() {
    venv_at(PathBuf::from("/nonexistent/kubegrid-venv"), true);
}
