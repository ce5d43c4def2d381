//! containerd's `nvidia` handler against what NVIDIA's own tool writes: the fixtures under
//! tests/fixtures/nvidia-ctk are the real output of `nvidia-ctk runtime configure
//! --runtime=containerd --enable-cdi` run on kubegrid's runc-only configs, by toolkit 1.17.8
//! (which edits the config in place) and 1.18.2 (which writes a drop-in,
//! conf.d/99-nvidia.toml, and an `imports` line; containerd merges the two). kubegrid renders
//! the same cluster with the nvidia handler on a GPU Node into its one config, and it is
//! compared with each as parsed TOML (tables and keys, not text): every table and key must
//! agree, so the nvidia runtime copies runc's options (SystemdCgroup carries over) and CDI is
//! on in the plugin containerd reads it from.

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

fn fixture(name: &str) -> Option<BTreeMap<(String, String), String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvidia-ctk")
        .join(name);
    let text = std::fs::read_to_string(&path).ok()?;
    Some(parsed(&text))
}

/// The config containerd ends up with from nvidia-ctk `version`'s output for config format
/// `format` ("v2", "v3"): 1.17.8's file, or 1.18.2's top-level file with its drop-in merged in
/// (a key the drop-in sets wins, as containerd merges imports) and the `imports` line gone.
fn reference(format: &str, version: &str) -> BTreeMap<(String, String), String> {
    let name = format!("config-{format}.{version}.toml");
    let mut config = fixture(&name).unwrap_or_else(|| panic!("no fixture {name}"));
    if let Some(drop_in) = fixture(&format!("config-{format}.{version}.drop-in.toml")) {
        let imports = config.remove(&(String::new(), "imports".into()));
        assert_eq!(
            imports.as_deref(),
            Some(r#"["/etc/containerd/conf.d/*.toml"]"#)
        );
        config.extend(drop_in);
    }
    config
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

fn compare(template: &str, line: &str, format: &str, cri: &str) {
    for version in ["1.17.8", "1.18.2"] {
        compare_with(template, line, format, version, cri);
    }
}

fn compare_with(template: &str, line: &str, format: &str, version: &str, cri: &str) {
    let ours = kubegrid(template, line);
    let theirs = reference(format, version);
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
        "{template} (containerd {line}) differs from nvidia-ctk {version}'s config"
    );
}

#[test]
fn the_nvidia_handler_is_what_nvidia_ctk_writes_for_containerd_1_7() {
    compare(
        "containerd/config-v2.toml.tera",
        "1.7",
        "v2",
        "plugins.io.containerd.grpc.v1.cri",
    );
}

#[test]
fn the_nvidia_handler_is_what_nvidia_ctk_writes_for_containerd_2() {
    compare(
        "containerd/config-v3.toml.tera",
        "2.1",
        "v3",
        "plugins.io.containerd.cri.v1.runtime",
    );
}
