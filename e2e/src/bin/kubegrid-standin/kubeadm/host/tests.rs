use super::*;
use crate::{Tool, checks::KubeVersion};

fn ctx(root: &std::path::Path) -> Ctx {
    Ctx {
        tool: Tool::Kubeadm,
        root: root.to_path_buf(),
        version: KubeVersion::parse("v1.31.4").unwrap(),
    }
}

#[test]
fn init_then_reset_leaves_no_kubeconfigs() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    let facts = Facts {
        control_plane: true,
        local_etcd: false,
        server: Some("https://10.0.0.10:6443".into()),
        ..Facts::default()
    };
    assert!(preflight(&ctx, Flow::Init, &facts, &[]).unwrap().is_empty());
    write_init(&ctx, &facts).unwrap();
    kubelet_start(&ctx, &facts).unwrap();
    let admin = fs::read_to_string(root.path().join("etc/kubernetes/admin.conf")).unwrap();
    assert!(admin.starts_with("# STAND-IN"), "{admin}");
    assert!(admin.contains("server: https://10.0.0.10:6443"), "{admin}");
    let mode = fs::metadata(root.path().join("etc/kubernetes/super-admin.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(root.path().join("var/lib/kubelet/config.yaml").is_file());
    // A second init fails on the manifests the first one wrote, as with real kubeadm.
    let err = preflight(&ctx, Flow::Init, &facts, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]"),
        "{err}"
    );
    assert_eq!(
        preflight(&ctx, Flow::Init, &facts, &["all".into()])
            .unwrap()
            .len(),
        3
    );
    reset(&ctx).unwrap();
    for gone in [
        "etc/kubernetes/admin.conf",
        "etc/kubernetes/super-admin.conf",
        "etc/kubernetes/kubelet.conf",
        "etc/kubernetes/manifests/kube-apiserver.yaml",
        "var/lib/kubelet/config.yaml",
    ] {
        assert!(!root.path().join(gone).exists(), "{gone}");
    }
}

#[test]
fn worker_join_refuses_an_existing_ca_and_writes_kubelet_conf() {
    let root = tempfile::tempdir().unwrap();
    let ctx = ctx(root.path());
    let facts = Facts {
        server: Some("https://10.0.0.10:6443".into()),
        ..Facts::default()
    };
    write(&ctx, "/etc/kubernetes/pki/ca.crt", "x", 0o644).unwrap();
    let err = preflight(&ctx, Flow::Join, &facts, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]"),
        "{err}"
    );
    fs::remove_file(root.path().join("etc/kubernetes/pki/ca.crt")).unwrap();
    preflight(&ctx, Flow::Join, &facts, &[]).unwrap();
    write_join(&ctx, &facts).unwrap();
    assert!(root.path().join("etc/kubernetes/kubelet.conf").is_file());
    assert!(!root.path().join("etc/kubernetes/admin.conf").exists());
}
