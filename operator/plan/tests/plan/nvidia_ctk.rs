//! containerd's `nvidia` handler against what NVIDIA's own tool writes: the fixtures under
//! tests/fixtures/nvidia-ctk are the real output of `nvidia-ctk runtime configure
//! --runtime=containerd --enable-cdi` (toolkit 1.17.8) run on kubegrid's runc-only configs.
//! kubegrid renders the same cluster with the nvidia handler on a GPU Node, and the two are
//! compared as parsed TOML (tables and keys, not text): every table and key must agree, so
//! the nvidia runtime copies runc's options (SystemdCgroup carries over) and CDI is on in the
//! plugin containerd reads it from.

use std::{collections::BTreeMap, path::Path};

use kubegrid_plan::{ClusterContext, render};

use crate::common::{lab_host, runc_cluster, toml_structure};

/// (table, key) → raw value, with table names unquoted: nvidia-ctk writes
/// `plugins."io.containerd.cri.v1.runtime"` where kubegrid writes the same table as
/// `plugins.'io.containerd.cri.v1.runtime'`.
fn parsed(text: &str) -> BTreeMap<(String, String), String> {
    toml_structure(text)
        .into_iter()
        .map(|((table, key), value)| ((table.replace(['"', '\''], ""), key), value))
        .collect()
}

fn reference(name: &str) -> BTreeMap<(String, String), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvidia-ctk")
        .join(name);
    parsed(&std::fs::read_to_string(&path).unwrap())
}

/// The nvidia handler and CDI as kubegrid renders them for a GPU Node of the lab cluster the
/// reference was made from.
fn kubegrid(template: &str, line: &str) -> BTreeMap<(String, String), String> {
    let mut cluster: ClusterContext = runc_cluster(line);
    cluster.runtimes.push("nvidia".into());
    let mut host = lab_host();
    host.gpu = true;
    parsed(&render(template, &cluster, &host, None).unwrap())
}

fn compare(template: &str, line: &str, fixture: &str, cri: &str) {
    let ours = kubegrid(template, line);
    let theirs = reference(fixture);
    let nvidia = format!("{cri}.containerd.runtimes.nvidia");
    for key in [
        (nvidia.clone(), "runtime_type".to_string()),
        (format!("{nvidia}.options"), "BinaryName".into()),
        (format!("{nvidia}.options"), "SystemdCgroup".into()),
        (cri.to_string(), "enable_cdi".into()),
    ] {
        assert!(theirs.contains_key(&key), "nvidia-ctk wrote no {key:?}");
    }
    // kubegrid names CDI's spec directories; nvidia-ctk leaves containerd's default, which is
    // the same two directories.
    let mut ours_without_dirs = ours.clone();
    let dirs = ours_without_dirs.remove(&(cri.to_string(), "cdi_spec_dirs".into()));
    assert_eq!(dirs.as_deref(), Some(r#"["/etc/cdi","/var/run/cdi"]"#));
    assert_eq!(
        ours_without_dirs, theirs,
        "{template} (containerd {line}) differs from nvidia-ctk's {fixture}"
    );
}

#[test]
fn the_nvidia_handler_is_what_nvidia_ctk_writes_for_containerd_1_7() {
    compare(
        "containerd/config-v2.toml.tera",
        "1.7",
        "config-v2.toml",
        "plugins.io.containerd.grpc.v1.cri",
    );
}

#[test]
fn the_nvidia_handler_is_what_nvidia_ctk_writes_for_containerd_2() {
    compare(
        "containerd/config-v3.toml.tera",
        "2.1",
        "config-v3.toml",
        "plugins.io.containerd.cri.v1.runtime",
    );
}
