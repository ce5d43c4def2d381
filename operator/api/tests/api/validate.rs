//! One test per semantic rule: each names the resource and the field.

use kubegrid_api::ValidateFor;

use crate::common::{GOOD, edit, one_problem, problems_for};

const CLUSTER: &str = "Cluster/gpu-prod";

#[test]
fn problems_name_the_file_and_the_field_line() {
    let text = edit("address: 10.0.0.22", "address: \"\"");
    let problem = one_problem(&text, "Node/gpu-2", "spec.address", "an empty string");
    assert!(problem.contains("cluster.yaml:"), "{problem}");
    let line = text
        .lines()
        .position(|l| l.contains("address: \"\""))
        .unwrap()
        + 1;
    assert!(
        problem.contains(&format!(":{line}: Node/gpu-2")),
        "{problem}"
    );
}

#[test]
fn cluster_problems_point_at_the_field_not_the_document() {
    let text = edit("serviceCIDR: 10.96.0.0/12", "serviceCIDR: 172.0.0.0/11");
    let problem = one_problem(
        &text,
        CLUSTER,
        "spec.network.serviceCIDR",
        "a range of 2^21 addresses",
    );
    let line = text
        .lines()
        .position(|l| l.contains("serviceCIDR: 172.0.0.0/11"))
        .unwrap()
        + 1;
    assert!(
        problem.contains(&format!(":{line}: {CLUSTER}")),
        "{problem}"
    );
    assert!(problem.contains("/12 or longer"), "{problem}");
}

#[test]
fn all_problems_are_reported_together() {
    let text = edit("address: 10.0.0.22", "address: \"\"")
        .replace("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.20.0");
    let problems = problems_for(&text, ValidateFor::Cli);
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn duplicate_node_names() {
    let text = edit("name: gpu-2", "name: gpu-1");
    one_problem(
        &text,
        "Node/gpu-1",
        "metadata.name",
        "a second Node named `gpu-1`",
    );
}

#[test]
fn duplicate_addresses() {
    let text = edit("address: 10.0.0.22", "address: 10.0.0.11");
    one_problem(
        &text,
        "Node/gpu-2",
        "spec.address",
        "Node/cp-1 already uses",
    );
}

#[test]
fn same_address_on_another_port_is_fine() {
    let text = edit("address: 10.0.0.22", "address: 10.0.0.21");
    assert!(problems_for(&text, ValidateFor::Cli).is_empty());
}

#[test]
fn node_address_must_be_an_ip_for_kubeadm_and_etcd() {
    let text = edit("address: 10.0.0.22", "address: gpu-2.example");
    one_problem(&text, "Node/gpu-2", "spec.address", "a DNS name");
}

#[test]
fn cni_none_needs_a_manifest_and_unknown_cnis_are_refused() {
    let text = edit(
        "podCIDR: 10.244.0.0/16",
        "podCIDR: 10.244.0.0/16\n    cni: none",
    );
    one_problem(&text, CLUSTER, "spec.network.cniManifest", "no manifest");
    let text = edit(
        "podCIDR: 10.244.0.0/16",
        "podCIDR: 10.244.0.0/16\n    cni: flannel",
    );
    one_problem(&text, CLUSTER, "spec.network.cni", "`flannel`");
}

#[test]
fn no_control_plane_node() {
    let text = edit("roles: [control-plane, etcd]", "roles: [etcd]");
    one_problem(
        &text,
        CLUSTER,
        "Node spec.roles",
        "none with role control-plane",
    );
}

#[test]
fn even_etcd_count() {
    let text = edit(
        "roles: [worker]\n  labels",
        "roles: [worker, etcd]\n  labels",
    );
    one_problem(
        &text,
        CLUSTER,
        "Node spec.roles",
        "2 etcd members (Nodes with role etcd: cp-1, gpu-1)",
    );
}

#[test]
fn an_installed_cluster_leaves_the_etcd_count_to_the_membership_rules() {
    let text = edit(
        "roles: [worker]\n  labels",
        "roles: [worker, etcd]\n  labels",
    );
    let fixture = crate::common::Fixture::new(&text);
    let manifest = fixture.parse().unwrap();
    assert!(manifest.validate(ValidateFor::Cli).is_err());
    manifest.validate_installed(ValidateFor::Cli).unwrap();
    // Every other rule still holds for an installed cluster.
    let none = edit("roles: [control-plane, etcd]", "roles: [etcd]");
    let fixture = crate::common::Fixture::new(&none);
    let err = fixture
        .parse()
        .unwrap()
        .validate_installed(ValidateFor::Cli)
        .unwrap_err()
        .to_string();
    assert!(err.contains("none with role control-plane"), "{err}");
}

#[test]
fn stacked_etcd_counts_control_plane_nodes() {
    let text = edit("roles: [control-plane, etcd]", "roles: [control-plane]").replace(
        "roles: [worker]\n  labels",
        "roles: [control-plane]\n  labels",
    );
    one_problem(
        &text,
        CLUSTER,
        "Node spec.roles",
        "2 etcd members (stacked on the control-plane Nodes: cp-1, gpu-1)",
    );
}

#[test]
fn node_without_roles() {
    // gpu-1 says `roles: []`, gpu-2 has no roles field.
    let text = GOOD
        .replacen("  roles: [worker]\n", "  roles: []\n", 1)
        .replacen("  roles: [worker]\n", "", 1);
    let problems = problems_for(&text, ValidateFor::Cli);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    for (problem, node) in problems.iter().zip(["gpu-1", "gpu-2"]) {
        assert!(
            problem.contains(&format!("Node/{node} spec.roles: got an empty list")),
            "{problem}"
        );
    }
}

#[test]
fn overlapping_cidrs() {
    let text = edit("serviceCIDR: 10.96.0.0/12", "serviceCIDR: 10.244.128.0/24");
    one_problem(
        &text,
        CLUSTER,
        "spec.network.serviceCIDR",
        "overlaps podCIDR `10.244.0.0/16`",
    );
}

#[test]
fn mixed_cidr_families() {
    let text = edit("serviceCIDR: 10.96.0.0/12", "serviceCIDR: fd00:10:96::/112");
    one_problem(&text, CLUSTER, "spec.network", "is IPv4 and serviceCIDR");
}

#[test]
fn cidr_with_host_bits() {
    let text = edit("podCIDR: 10.244.0.0/16", "podCIDR: 10.244.1.0/16");
    let problem = one_problem(&text, CLUSTER, "spec.network.podCIDR", "host bits set");
    assert!(problem.contains("`10.244.0.0/16`"), "{problem}");
}

#[test]
fn missing_key_file() {
    let text = edit(
        "privateKeyFile: keys/id_ed25519",
        "privateKeyFile: keys/id_rsa",
    );
    let problem = one_problem(
        &text,
        CLUSTER,
        "spec.ssh.privateKeyFile",
        "which does not exist",
    );
    assert!(problem.contains("keys/id_rsa"), "{problem}");
}

#[test]
fn key_file_that_is_a_directory() {
    let text = edit("privateKeyFile: keys/id_ed25519", "privateKeyFile: keys");
    one_problem(
        &text,
        CLUSTER,
        "spec.ssh.privateKeyFile",
        "not a regular file",
    );
}

#[test]
fn node_key_override_is_checked_too() {
    let text = edit(
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 2222, privateKeyFile: /nope/key}",
    );
    one_problem(
        &text,
        "Node/gpu-1",
        "spec.ssh.privateKeyFile",
        "`/nope/key`, which does not exist",
    );
}

#[test]
fn key_files_are_refused_by_the_operator_without_looking_at_them() {
    let text = edit(
        "privateKeyFile: keys/id_ed25519",
        "privateKeyFile: keys/id_rsa",
    );
    let problems = problems_for(&text, ValidateFor::Operator);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("Cluster/gpu-prod spec.ssh.privateKeyFile: got `keys/id_rsa`;")
            && problems[0].contains("privateKeySecretRef")
            && !problems[0].contains("does not exist"),
        "{}",
        problems[0]
    );
}

#[test]
fn unsupported_kubernetes_version() {
    let text = edit("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.29.3");
    let problem = one_problem(&text, CLUSTER, "spec.kubernetesVersion", "`v1.29.3`");
    assert!(problem.contains("from 1.30 to 1.35"), "{problem}");
}

#[test]
fn kubernetes_version_that_is_not_semver() {
    let text = edit("kubernetesVersion: v1.31.4", "kubernetesVersion: latest");
    one_problem(
        &text,
        CLUSTER,
        "spec.kubernetesVersion",
        "not a semantic version",
    );
}

#[test]
fn unsupported_containerd_line() {
    let text = edit("version: \"1.7\"", "version: \"1.7.24\"");
    let problem = one_problem(
        &text,
        CLUSTER,
        "spec.containerRuntime.containerd.version",
        "`1.7.24`",
    );
    assert!(problem.contains("1.6, 1.7, 2.0, 2.1, 2.2"), "{problem}");
}

#[test]
fn default_runtime_must_be_listed() {
    let text = edit(
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [nvidia]\n    defaultRuntime: runc",
    );
    one_problem(
        &text,
        CLUSTER,
        "spec.containerRuntime.defaultRuntime",
        "`runc`",
    );
}

#[test]
fn default_runtime_must_be_one_kubegrid_installs() {
    for runtime in [
        "nvidia",
        "kata-qemu",
        "kata-clh",
        "kata-fc",
        "gvisor",
        "crun",
    ] {
        let text = edit(
            "runtimes: [runc, kata-qemu, nvidia]",
            &format!(
                "runtimes: [runc, kata-qemu, kata-clh, kata-fc, nvidia, gvisor, crun]\n    defaultRuntime: {runtime}"
            ),
        );
        for target in [ValidateFor::Cli, ValidateFor::Operator] {
            // The operator also refuses the fixture's privateKeyFile (confinement); only the
            // runtime problem is this test's.
            let problems: Vec<String> = problems_for(&text, target)
                .into_iter()
                .filter(|p| p.contains("defaultRuntime"))
                .collect();
            assert_eq!(problems.len(), 1, "{runtime}: {problems:#?}");
            let problem = &problems[0];
            assert!(
                problem.contains("spec.containerRuntime.defaultRuntime")
                    && problem.contains(&format!("`{runtime}`"))
                    && problem.contains("not every host runs")
                    && problem.contains("RuntimeClass"),
                "{problem}"
            );
        }
    }
}

/// `GOOD` with `gpu` as the Cluster's spec.gpu (a flow mapping).
fn with_gpu(gpu: &str) -> String {
    edit("  bundle:\n", &format!("  gpu: {gpu}\n  bundle:\n"))
}

#[test]
fn a_gpu_spec_with_a_branch_is_valid() {
    for gpu in [
        "{driver: {branch: \"550\"}}",
        "{driver: {source: runfile, branch: \"570\"}, toolkit: {version: 1.17.3}}",
        "{driver: {source: preinstalled}, mig: {strategy: mixed}}",
        "{driver: {branch: \"550\"}, devicePlugin: gpu-operator, operatorValues: {dcgmExporter: {enabled: true}, driver: {enabled: false}}}",
    ] {
        assert_eq!(
            problems_for(&with_gpu(gpu), ValidateFor::Cli),
            Vec::<String>::new(),
            "{gpu}"
        );
    }
}

#[test]
fn an_installed_driver_needs_a_branch_of_digits() {
    for source in ["packages", "runfile"] {
        let problem = one_problem(
            &with_gpu(&format!("{{driver: {{source: {source}}}}}")),
            CLUSTER,
            "spec.gpu.driver.branch",
            &format!("no branch with source `{source}`"),
        );
        assert!(
            problem.contains("e.g. 550") && problem.contains("preinstalled"),
            "{problem}"
        );
    }
    for branch in ["\"550.127.05\"", "r550", "\"\"", "\"5500000000\""] {
        let problem = one_problem(
            &with_gpu(&format!("{{driver: {{branch: {branch}}}}}")),
            CLUSTER,
            "spec.gpu.driver.branch",
            "`",
        );
        assert!(problem.contains("digits only"), "{problem}");
    }
}

#[test]
fn the_toolkit_version_is_a_release() {
    for version in ["\"1.17\"", "v1.17.3", "1.17.3-1", "latest"] {
        let problem = one_problem(
            &with_gpu(&format!(
                "{{driver: {{branch: \"550\"}}, toolkit: {{version: {version}}}}}"
            )),
            CLUSTER,
            "spec.gpu.toolkit.version",
            "`",
        );
        assert!(
            problem.contains("x.y.z") && problem.contains("bundle's pinned"),
            "{problem}"
        );
    }
}

#[test]
fn spec_gpu_needs_the_nvidia_runtime() {
    let text = with_gpu("{driver: {branch: \"550\"}}").replacen(
        "runtimes: [runc, kata-qemu, nvidia]",
        "runtimes: [runc, kata-qemu]",
        1,
    );
    let problem = one_problem(
        &text,
        CLUSTER,
        "spec.containerRuntime.runtimes",
        "[runc, kata-qemu] while spec.gpu is set",
    );
    assert!(problem.contains("a list with nvidia"), "{problem}");
}

#[test]
fn a_mig_strategy_needs_a_device_plugin() {
    for strategy in ["single", "mixed"] {
        let problem = one_problem(
            &with_gpu(&format!(
                "{{driver: {{branch: \"550\"}}, devicePlugin: none, mig: {{strategy: {strategy}}}}}"
            )),
            CLUSTER,
            "spec.gpu.mig.strategy",
            &format!("`{strategy}` with devicePlugin none"),
        );
        assert!(problem.contains("hint:"), "{problem}");
    }
}

#[test]
fn operator_values_only_for_a_gpu_operator_that_leaves_driver_and_toolkit_to_kubegrid() {
    for plugin in ["nvidia-device-plugin", "none"] {
        one_problem(
            &with_gpu(&format!(
                "{{driver: {{branch: \"550\"}}, devicePlugin: {plugin}, operatorValues: {{dcgmExporter: {{enabled: true}}}}}}"
            )),
            CLUSTER,
            "spec.gpu.operatorValues",
            &format!("values with devicePlugin `{plugin}`"),
        );
    }
    for (key, what) in [
        ("driver", "the NVIDIA driver"),
        ("toolkit", "the NVIDIA container toolkit"),
    ] {
        let problem = one_problem(
            &with_gpu(&format!(
                "{{driver: {{branch: \"550\"}}, devicePlugin: gpu-operator, operatorValues: {{{key}: {{enabled: true}}}}}}"
            )),
            CLUSTER,
            &format!("spec.gpu.operatorValues.{key}.enabled"),
            "`true`",
        );
        assert!(
            problem.contains(&format!("kubegrid installs {what}")),
            "{problem}"
        );
    }
}

#[test]
fn a_gpu_node_needs_the_cluster_s_spec_gpu() {
    let text = edit(
        "  roles: [worker]\n  labels",
        "  roles: [worker]\n  gpu: nvidia\n  labels",
    );
    let problem = one_problem(
        &text,
        "Node/gpu-1",
        "spec.gpu",
        "`nvidia` while Cluster/gpu-prod has no spec.gpu",
    );
    assert!(
        problem.contains("hint: set the Cluster's spec.gpu"),
        "{problem}"
    );
    for gpu in ["auto", "none"] {
        let text = edit(
            "  roles: [worker]\n  labels",
            &format!("  roles: [worker]\n  gpu: {gpu}\n  labels"),
        );
        assert_eq!(
            problems_for(&text, ValidateFor::Cli),
            Vec::<String>::new(),
            "{gpu}"
        );
    }
}

#[test]
fn registry_mirror_needs_a_url() {
    let text = edit("\"https://mirror.example:5000\"", "mirror.example");
    one_problem(
        &text,
        CLUSTER,
        "spec.containerRuntime.registryMirrors[0].endpoint",
        "`mirror.example`",
    );
}

#[test]
fn endpoint_needs_exactly_one_of_address_and_vip() {
    let text = edit(
        "vip: 10.0.0.100",
        "vip: 10.0.0.100\n    address: lb.example",
    );
    one_problem(&text, CLUSTER, "spec.controlPlaneEndpoint", "both address");
    let text = edit("vip: 10.0.0.100", "port: 6443");
    one_problem(
        &text,
        CLUSTER,
        "spec.controlPlaneEndpoint",
        "neither address nor vip",
    );
}

#[test]
fn vip_must_be_an_ip() {
    let text = edit("vip: 10.0.0.100", "vip: lb.example");
    one_problem(
        &text,
        CLUSTER,
        "spec.controlPlaneEndpoint.vip",
        "not an IP address",
    );
}

#[test]
fn port_zero() {
    let text = edit(
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 0}",
    );
    one_problem(&text, "Node/gpu-1", "spec.ssh.port", "got 0;");
}

#[test]
fn port_set_twice() {
    let text = edit(
        "  address: 10.0.0.21\n",
        "  address: 10.0.0.21\n  port: 22\n",
    );
    one_problem(
        &text,
        "Node/gpu-1",
        "spec.ssh.port",
        "both spec.port (22) and spec.ssh.port (2222)",
    );
}

#[test]
fn bundle_url_must_be_local() {
    let text = edit("source: bundle", "source: https://example.com/b.tar.zst");
    one_problem(
        &text,
        CLUSTER,
        "spec.bundle.source",
        "a URL kubegrid cannot fetch",
    );
}

#[test]
fn missing_bundle_for_the_cli() {
    let text = edit("source: bundle", "source: file:///nonexistent/bundle");
    one_problem(&text, CLUSTER, "spec.bundle.source", "does not exist");
}

#[test]
fn duplicate_taints() {
    let text = edit(
        "taints: [{key: dedicated, value: gpu, effect: NoSchedule}]",
        "taints: [{key: dedicated, effect: NoSchedule}, {key: dedicated, effect: NoSchedule}]",
    );
    one_problem(
        &text,
        "Node/gpu-1",
        "spec.taints[1]",
        "key `dedicated` with effect NoSchedule again",
    );
}

#[test]
fn no_credentials_anywhere() {
    let text = edit("    privateKeyFile: keys/id_ed25519\n", "");
    let problem = one_problem(
        &text,
        CLUSTER,
        "spec.ssh",
        "no privateKeyFile or passwordEnv",
    );
    assert!(problem.contains("on the Cluster or the Node"), "{problem}");
}

#[test]
fn node_without_credentials_when_others_have_their_own() {
    let text = edit("    privateKeyFile: keys/id_ed25519\n", "")
        .replace(
            "ssh: {user: root, port: 2222}",
            "ssh: {user: root, port: 2222, passwordEnv: PATH}",
        )
        .replace(
            "  arch: amd64\n",
            "  arch: amd64\n  ssh: {privateKeyFile: keys/id_ed25519}\n",
        );
    one_problem(
        &text,
        "Node/gpu-2",
        "spec.ssh",
        "no privateKeyFile or passwordEnv",
    );
}

#[test]
fn secret_reference_alone_is_enough_only_for_the_operator() {
    let text = edit(
        "    privateKeyFile: keys/id_ed25519\n",
        "    privateKeySecretRef: {name: gpu-prod-ssh}\n",
    );
    one_problem(
        &text,
        CLUSTER,
        "spec.ssh",
        "only privateKeySecretRef or passwordSecretRef, which the CLI cannot read",
    );
    assert!(problems_for(&text, ValidateFor::Operator).is_empty());
}

#[test]
fn password_env_must_be_set_for_the_cli() {
    let text = edit(
        "    privateKeyFile: keys/id_ed25519\n",
        "    passwordEnv: KUBEGRID_TEST_SURELY_UNSET_VARIABLE\n",
    );
    one_problem(
        &text,
        CLUSTER,
        "spec.ssh.passwordEnv",
        "`KUBEGRID_TEST_SURELY_UNSET_VARIABLE`, which is not set",
    );
    let set = edit(
        "    privateKeyFile: keys/id_ed25519\n",
        "    passwordEnv: PATH\n",
    );
    assert!(problems_for(&set, ValidateFor::Cli).is_empty());
}

#[test]
fn bastion_needs_an_address() {
    let text = edit("address: 203.0.113.10", "address: \" \"");
    one_problem(
        &text,
        CLUSTER,
        "spec.ssh.bastion.address",
        "an empty string",
    );
}

#[test]
fn node_inside_the_pod_network() {
    let text = edit("address: 10.0.0.22", "address: 10.244.3.7");
    one_problem(
        &text,
        "Node/gpu-2",
        "spec.address",
        "inside the Cluster's podCIDR `10.244.0.0/16`",
    );
}

#[test]
fn certificate_validity_below_the_floor_names_the_test_only_override() {
    let text = edit(
        "  bundle:\n    source: bundle\n",
        "  bundle:\n    source: bundle\n  certificates:\n    validity: 5m\n",
    );
    let problem = one_problem(
        &text,
        "Cluster/gpu-prod",
        "spec.certificates.validity",
        "`5m`, below the floor of 24h",
    );
    assert!(problem.contains("for tests only"), "{problem}");
    assert!(
        problem.contains("KUBEGRID_TEST_SHORT_CERTIFICATES=1"),
        "{problem}"
    );
    let fine = edit(
        "  bundle:\n    source: bundle\n",
        "  bundle:\n    source: bundle\n  certificates:\n    validity: 2160h\n    renewBefore: 240h\n    autoRenew: false\n    checkInterval: 1h\n",
    );
    assert_eq!(problems_for(&fine, ValidateFor::Cli), Vec::<String>::new());
}
