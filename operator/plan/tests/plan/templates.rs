//! Golden files for every template, plus structural checks of the containerd configs.

use std::collections::BTreeMap;

use kubegrid_agent::facts::Kvm;
use kubegrid_plan::{
    ClusterContext, HostContext, NVIDIA_RUNTIME_BINARY, RUNSC_WRAPPER, TEMPLATES, host_runtimes,
    render,
};

use crate::common::{
    assert_golden, full_cluster, golden_contexts, golden_path, lab_host, runc_cluster,
    toml_structure,
};

/// The lab host as a GPU Node that can create VMs, so every listed handler is configured.
fn runtime_host() -> HostContext {
    let mut host = lab_host();
    host.gpu = true;
    host.facts.gpu.kvm = Kvm::Usable;
    host
}

/// Renders a template for every golden context that applies and compares each result.
fn golden_for(template: &str, applies: impl Fn(&ClusterContext) -> bool) {
    let mut rendered = 0;
    for (label, cluster) in golden_contexts() {
        if applies(&cluster) {
            let text = render(template, &cluster, &runtime_host(), None).unwrap();
            assert_golden(&golden_path(template, label), &text);
            rendered += 1;
        }
    }
    assert!(rendered > 0, "no context applies to {template}");
}

const V2: &str = "containerd/config-v2.toml.tera";
const V3: &str = "containerd/config-v3.toml.tera";
const CRI_V2: &str = r#"plugins."io.containerd.grpc.v1.cri""#;
const RUNTIME_V3: &str = "plugins.'io.containerd.cri.v1.runtime'";
const IMAGES_V3: &str = "plugins.'io.containerd.cri.v1.images'";

#[test]
fn containerd_config_v2_matches_golden() {
    golden_for(V2, |c| c.containerd.major == 1);
}

#[test]
fn containerd_config_v3_matches_golden() {
    golden_for(V3, |c| c.containerd.major == 2);
}

/// A Debian host that is not a GPU Node and cannot create a VM gets runc, gvisor and crun
/// (and no CDI); a GPU Node without a VM also gets nvidia. Each listed handler left out is
/// reported.
#[test]
fn handlers_a_host_cannot_run_are_left_out_of_the_config() {
    for (template, line) in [(V2, "1.7"), (V3, "2.1")] {
        let cluster = full_cluster(line);
        let bare = lab_host();
        let text = render(template, &cluster, &bare, None).unwrap();
        assert_golden(
            &golden_path(template, &format!("full-{line}-no-gpu-no-vm")),
            &text,
        );
        toml_structure(&text);
        assert!(!text.contains("nvidia") && !text.contains("kata"), "{text}");
        assert!(text.contains("runtimes.gvisor") && text.contains("runtimes.crun"));
        let (_, skipped) = host_runtimes(&cluster, &bare);
        let skipped: Vec<&str> = skipped.iter().map(|s| s.handler.as_str()).collect();
        assert_eq!(skipped, ["kata-qemu", "kata-clh", "nvidia"]);

        let mut gpu = lab_host();
        gpu.gpu = true;
        let text = render(template, &cluster, &gpu, None).unwrap();
        assert_golden(
            &golden_path(template, &format!("full-{line}-gpu-no-vm")),
            &text,
        );
        toml_structure(&text);
        assert!(
            text.contains("runtimes.nvidia") && !text.contains("kata"),
            "{text}"
        );
        // A host that is not a GPU Node but has NVIDIA's toolkit from its owner.
        let mut owned = lab_host();
        owned.facts.paths.insert(NVIDIA_RUNTIME_BINARY.into(), true);
        assert_eq!(render(template, &cluster, &owned, None).unwrap(), text);
    }
}

#[test]
fn the_runsc_wrapper_matches_golden_and_is_the_gvisor_handlers_binary() {
    let template = "containerd/runsc-containerd.sh.tera";
    let text = render(template, &full_cluster("2.1"), &lab_host(), None).unwrap();
    assert_golden(&golden_path(template, "full-2.1"), &text);
    assert!(text.starts_with("#!/bin/sh\n"), "{text}");
    let exec = text.lines().last().unwrap();
    assert_eq!(
        exec,
        r#"exec /usr/bin/runsc --platform=systrap --network=host "$@""#
    );
    assert!(exec.contains(kubegrid_plan::RUNSC_BINARY));
}

#[test]
fn hosts_toml_matches_golden_per_mirror() {
    let cluster = full_cluster("2.1");
    for mirror in &cluster.registry_mirrors {
        let text = render(
            "containerd/hosts.toml.tera",
            &cluster,
            &lab_host(),
            Some(mirror),
        )
        .unwrap();
        let label = format!("full-2.1-{}", mirror.registry);
        assert_golden(&golden_path("containerd/hosts.toml.tera", &label), &text);
        toml_structure(&text);
    }
}

#[test]
fn containerd_unit_matches_golden_per_line() {
    golden_for("containerd/containerd.service.tera", |c| c.name == "lab");
}

#[test]
fn containerd_unit_runs_the_archive_binary_as_upstreams_unit_does() {
    for line in ["1.7", "2.1"] {
        let text = render(
            "containerd/containerd.service.tera",
            &runc_cluster(line),
            &lab_host(),
            None,
        )
        .unwrap();
        assert!(text.starts_with("# Written by kubegrid"), "{text}");
        for line in [
            "ExecStartPre=-/sbin/modprobe overlay",
            "ExecStart=/usr/local/bin/containerd",
            "Type=notify",
            "Delegate=yes",
            "KillMode=process",
            "OOMScoreAdjust=-999",
            "WantedBy=multi-user.target",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Upstream's 1.x unit raises the open-file limit; its 2.x unit leaves Go's default.
        assert_eq!(
            text.lines().any(|l| l == "LimitNOFILE=infinity"),
            line == "1.7",
            "{text}"
        );
    }
}

#[test]
fn crictl_yaml_matches_golden() {
    golden_for("crictl.yaml.tera", |c| {
        c.name == "lab" && c.containerd.minor == 7
    });
}

#[test]
fn sysctl_conf_matches_golden() {
    golden_for("sysctl/kubernetes.conf.tera", |c| {
        c.name == "lab" && c.containerd.minor == 7
    });
}

#[test]
fn modules_load_conf_matches_golden() {
    golden_for("modules-load/kubernetes.conf.tera", |c| {
        c.containerd.major == 1 && c.containerd.minor == 7
    });
}

#[test]
fn every_template_has_a_golden_file() {
    let golden_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for template in TEMPLATES {
        let stem = template.name.strip_suffix(".tera").unwrap();
        let (base, _) = stem.rsplit_once('.').unwrap();
        let dir = golden_dir.join(std::path::Path::new(base).parent().unwrap());
        let prefix = format!(
            "{}.",
            std::path::Path::new(base)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
        );
        let found = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        assert!(found, "template {} has no golden file", template.name);
    }
}

fn get<'a>(toml: &'a BTreeMap<(String, String), String>, table: &str, key: &str) -> &'a str {
    toml.get(&(table.to_string(), key.to_string()))
        .unwrap_or_else(|| panic!("no `{key}` in [{table}]"))
}

#[test]
fn runc_only_configs_carry_no_kata_or_nvidia() {
    for (template, line, cri) in [
        (V2, "1.6", CRI_V2),
        (V2, "1.7", CRI_V2),
        (V3, "2.1", RUNTIME_V3),
    ] {
        let text = render(template, &runc_cluster(line), &lab_host(), None).unwrap();
        let toml = toml_structure(&text);
        let runc = format!("{cri}.containerd.runtimes.runc");
        assert_eq!(
            get(&toml, &runc, "runtime_type"),
            r#""io.containerd.runc.v2""#
        );
        assert_eq!(
            get(&toml, &format!("{runc}.options"), "SystemdCgroup"),
            "true"
        );
        assert_eq!(
            get(&toml, &format!("{cri}.containerd"), "default_runtime_name"),
            r#""runc""#
        );
        assert!(
            toml.keys().all(|(table, key)| !table.contains("kata")
                && !table.contains("nvidia")
                && key != "enable_cdi"),
            "{template} for containerd {line} mentions kata, nvidia or CDI:\n{text}"
        );
    }
}

#[test]
fn v2_config_puts_everything_under_the_cri_plugin() {
    let text = render(V2, &full_cluster("1.7"), &runtime_host(), None).unwrap();
    let toml = toml_structure(&text);
    assert_eq!(get(&toml, "", "version"), "2");
    assert_eq!(
        get(&toml, CRI_V2, "sandbox_image"),
        r#""registry.k8s.io/pause:3.10.1""#
    );
    assert_eq!(get(&toml, CRI_V2, "enable_cdi"), "true");
    assert_eq!(
        get(&toml, CRI_V2, "cdi_spec_dirs"),
        r#"["/etc/cdi","/var/run/cdi"]"#
    );
    assert_eq!(
        get(&toml, &format!("{CRI_V2}.registry"), "config_path"),
        r#""/etc/containerd/certs.d""#
    );
    assert_kata_and_nvidia(&toml, CRI_V2);
}

#[test]
fn v3_config_splits_images_and_runtime_plugins() {
    let text = render(V3, &full_cluster("2.1"), &runtime_host(), None).unwrap();
    let toml = toml_structure(&text);
    assert_eq!(get(&toml, "", "version"), "3");
    assert_eq!(
        get(&toml, &format!("{IMAGES_V3}.pinned_images"), "sandbox"),
        r#""registry.k8s.io/pause:3.10.1""#
    );
    assert_eq!(
        get(&toml, &format!("{IMAGES_V3}.registry"), "config_path"),
        r#""/etc/containerd/certs.d""#
    );
    assert_eq!(get(&toml, RUNTIME_V3, "enable_cdi"), "true");
    assert_kata_and_nvidia(&toml, RUNTIME_V3);
    assert!(!text.contains("io.containerd.grpc.v1.cri"), "{text}");
}

fn assert_kata_and_nvidia(toml: &BTreeMap<(String, String), String>, cri: &str) {
    let runtimes = format!("{cri}.containerd.runtimes");
    for shim in ["qemu", "clh"] {
        let handler = format!("{runtimes}.kata-{shim}");
        assert_eq!(
            get(toml, &handler, "runtime_type"),
            format!(r#""io.containerd.kata-{shim}.v2""#)
        );
        assert_eq!(
            get(toml, &handler, "runtime_path"),
            r#""/opt/kata/bin/containerd-shim-kata-v2""#
        );
        assert_eq!(
            get(toml, &handler, "privileged_without_host_devices"),
            "true"
        );
        assert_eq!(
            get(toml, &handler, "pod_annotations"),
            r#"["io.katacontainers.*"]"#
        );
        assert_eq!(
            get(toml, &format!("{handler}.options"), "ConfigPath"),
            format!(
                r#""/opt/kata/share/defaults/kata-containers/runtimes/{shim}/configuration-{shim}.toml""#
            )
        );
    }
    // gVisor and crun under the runc shim, each as its BinaryName.
    for (handler, binary) in [("gvisor", RUNSC_WRAPPER), ("crun", "/usr/bin/crun")] {
        let table = format!("{runtimes}.{handler}");
        assert_eq!(
            get(toml, &table, "runtime_type"),
            r#""io.containerd.runc.v2""#
        );
        assert_eq!(
            get(toml, &format!("{table}.options"), "BinaryName"),
            format!("{binary:?}")
        );
        assert_eq!(
            get(toml, &format!("{table}.options"), "SystemdCgroup"),
            "true"
        );
    }
    let nvidia = format!("{runtimes}.nvidia");
    assert_eq!(
        get(toml, &nvidia, "runtime_type"),
        r#""io.containerd.runc.v2""#
    );
    assert_eq!(
        get(toml, &format!("{nvidia}.options"), "BinaryName"),
        r#""/usr/bin/nvidia-container-runtime""#
    );
    assert_eq!(
        get(toml, &format!("{nvidia}.options"), "SystemdCgroup"),
        "true"
    );
}

#[test]
fn hosts_toml_falls_back_only_when_a_server_is_set() {
    let cluster = full_cluster("2.1");
    let host = lab_host();
    let k8s = render(
        "containerd/hosts.toml.tera",
        &cluster,
        &host,
        Some(&cluster.registry_mirrors[0]),
    )
    .unwrap();
    let toml = toml_structure(&k8s);
    assert_eq!(get(&toml, "", "server"), r#""https://registry.k8s.io""#);
    let mirror = r#"host."https://mirror.lab:5000""#;
    assert_eq!(get(&toml, mirror, "capabilities"), r#"["pull", "resolve"]"#);
    assert_eq!(
        get(&toml, mirror, "ca"),
        r#""/etc/containerd/certs.d/registry.k8s.io/ca.crt""#
    );
    let default = render(
        "containerd/hosts.toml.tera",
        &cluster,
        &host,
        Some(&cluster.registry_mirrors[2]),
    )
    .unwrap();
    let toml = toml_structure(&default);
    assert!(
        !toml.contains_key(&(String::new(), "server".into())),
        "{default}"
    );
    assert_eq!(get(&toml, mirror, "skip_verify"), "true");
}

#[test]
fn unknown_template_is_an_error_naming_the_known_ones() {
    let err = render("nope.tera", &runc_cluster("1.7"), &lab_host(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope.tera") && err.contains("crictl.yaml.tera"),
        "{err}"
    );
}
