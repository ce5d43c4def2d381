//! The bundle registry: its templates (golden, TLS and plain HTTP), the certs.d files every
//! host gets, and which host compiles which registry tasks.

use std::{collections::BTreeMap, fs};

use kubegrid_agent::protocol::{Action, CheckKind, Task};
use kubegrid_plan::{
    BUNDLE_REGISTRY_MARKER, BUNDLE_REGISTRY_MIRRORED, Bundle, BundleRegistry, ClusterContext,
    Error, HostContext, PhasePlan, PkiFile, Playbook, REGISTRY_CA_CERT, REGISTRY_CA_SET,
    REGISTRY_CERT, REGISTRY_HTPASSWD, REGISTRY_KEY, REGISTRY_PUSH_SET, REGISTRY_SET,
    RegistryMirror, compile, render, sha256_file,
};

use crate::common::{
    assert_golden, golden_path, host, lab_host, runc_cluster, toml_structure, write_bundle,
};

const ADDRESS: &str = "10.213.74.12";
const HOSTS_TOML: &str = "containerd/hosts.toml.tera";
const CONFIG: &str = "registry/config.yml.tera";
const UNIT: &str = "registry/kubegrid-registry.service.tera";
const PUSH_CONFIG: &str = "registry/config-push.yml.tera";
const PUSH_UNIT: &str = "registry/kubegrid-registry-push.service.tera";

/// A runc cluster on containerd 1.7 whose bundle registry runs on `reg-1`.
fn registry_cluster(plain_http: bool) -> ClusterContext {
    let mut cluster = runc_cluster("1.7");
    cluster.bundle_registry = Some(BundleRegistry {
        host: "reg-1".into(),
        address: ADDRESS.into(),
        port: 5000,
        plain_http,
    });
    cluster.validate().unwrap();
    cluster
}

fn flavours() -> [(&'static str, ClusterContext); 2] {
    [
        ("tls", registry_cluster(false)),
        ("plain-http", registry_cluster(true)),
    ]
}

fn pki_file(path: &str, mode: u32) -> PkiFile {
    PkiFile {
        path: path.into(),
        content: format!("PEM of {path}\n"),
        mode,
    }
}

/// Host `name` with `roles` and the certificate sets the engine issues for it with TLS.
fn registry_host(name: &str, roles: &[&str], runs_registry: bool) -> HostContext {
    let mut h = host("amd64", roles);
    h.name = name.into();
    h.pki.insert(
        REGISTRY_CA_SET.into(),
        vec![pki_file(REGISTRY_CA_CERT, 0o644)],
    );
    if runs_registry {
        h.pki.insert(
            REGISTRY_SET.into(),
            vec![
                pki_file(REGISTRY_CA_CERT, 0o644),
                pki_file(REGISTRY_CERT, 0o644),
                pki_file(REGISTRY_KEY, 0o600),
            ],
        );
        h.pki.insert(
            REGISTRY_PUSH_SET.into(),
            vec![pki_file(REGISTRY_HTPASSWD, 0o600)],
        );
    }
    h
}

#[test]
fn registry_config_and_unit_match_golden() {
    for (label, cluster) in flavours() {
        let reg = registry_host("reg-1", &["worker"], true);
        for template in [CONFIG, UNIT, PUSH_CONFIG, PUSH_UNIT] {
            let text = render(template, &cluster, &reg, None).unwrap();
            assert_golden(&golden_path(template, label), &text);
        }
    }
}

#[test]
fn registry_config_serves_the_data_dir_on_the_port_with_tls_unless_plain() {
    for (label, cluster) in flavours() {
        let text = render(CONFIG, &cluster, &lab_host(), None).unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let at = |path: &str| path.split('.').fold(&yaml, |v, key| &v[key]).clone();
        assert_eq!(at("version").as_f64(), Some(0.1), "{label}");
        assert_eq!(
            at("storage.filesystem.rootdirectory").as_str(),
            Some("/var/lib/kubegrid/registry")
        );
        assert_eq!(at("storage.delete.enabled").as_bool(), Some(false));
        assert_eq!(at("log.level").as_str(), Some("info"));
        assert_eq!(at("http.addr").as_str(), Some("0.0.0.0:5000"));
        if label == "tls" {
            assert_eq!(at("http.tls.certificate").as_str(), Some(REGISTRY_CERT));
            assert_eq!(at("http.tls.key").as_str(), Some(REGISTRY_KEY));
        } else {
            assert!(at("http.tls").is_null(), "{text}");
        }
        // Hosts pull here; nobody pushes here.
        assert_eq!(
            at("storage.maintenance.readonly.enabled").as_bool(),
            Some(true),
            "{text}"
        );
        assert!(at("auth").is_null(), "pulls need no credential: {text}");
    }
}

#[test]
fn the_push_endpoint_shares_the_storage_on_the_next_port_and_asks_for_the_credential() {
    for (label, cluster) in flavours() {
        let text = render(PUSH_CONFIG, &cluster, &lab_host(), None).unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let at = |path: &str| path.split('.').fold(&yaml, |v, key| &v[key]).clone();
        assert_eq!(
            at("storage.filesystem.rootdirectory").as_str(),
            Some("/var/lib/kubegrid/registry"),
            "{label}"
        );
        assert!(at("storage.maintenance").is_null(), "{text}");
        assert_eq!(at("http.addr").as_str(), Some("0.0.0.0:5001"));
        assert_eq!(at("auth.htpasswd.path").as_str(), Some(REGISTRY_HTPASSWD));
        assert_eq!(
            at("http.tls.certificate").as_str(),
            (label == "tls").then_some(REGISTRY_CERT)
        );
        let unit = render(PUSH_UNIT, &cluster, &lab_host(), None).unwrap();
        assert!(
            unit.contains("serve /etc/kubegrid/registry/config-push.yml"),
            "{unit}"
        );
    }
}

#[test]
fn registry_templates_refuse_a_cluster_without_a_bundle_registry() {
    for template in [CONFIG, UNIT, PUSH_CONFIG, PUSH_UNIT] {
        let err = render(template, &runc_cluster("1.7"), &lab_host(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.bundle.registry"), "{err}");
    }
}

#[test]
fn hosts_toml_for_each_served_registry_matches_golden_and_never_falls_back() {
    for (label, cluster) in flavours() {
        let mirrors = cluster.mirrors();
        let names: Vec<&str> = mirrors.iter().map(|m| m.registry.as_str()).collect();
        assert_eq!(names, BUNDLE_REGISTRY_MIRRORED);
        for mirror in &mirrors {
            let text = render(HOSTS_TOML, &cluster, &lab_host(), Some(mirror)).unwrap();
            let golden = format!("bundle-{label}-{}", mirror.registry);
            assert_golden(&golden_path(HOSTS_TOML, &golden), &text);
            assert!(text.lines().any(|l| l == BUNDLE_REGISTRY_MARKER), "{text}");
            let toml = toml_structure(&text);
            assert!(
                toml.keys().all(|(_, key)| key != "server"),
                "no fallback upstream:\n{text}"
            );
            let (scheme, ca) = if label == "tls" {
                ("https", Some(format!("\"{REGISTRY_CA_CERT}\"")))
            } else {
                ("http", None)
            };
            // Each upstream's images sit under its own prefix in the bundle registry.
            let table = format!("host.\"{scheme}://{ADDRESS}:5000/v2/{}\"", mirror.registry);
            let get = |key: &str| toml.get(&(table.clone(), key.to_string())).cloned();
            assert_eq!(
                get("capabilities").as_deref(),
                Some(r#"["pull", "resolve"]"#)
            );
            assert_eq!(get("override_path").as_deref(), Some("true"), "{text}");
            assert_eq!(get("ca"), ca, "{text}");
            assert_eq!(toml.len(), if ca.is_some() { 3 } else { 2 }, "{text}");
        }
    }
}

#[test]
fn user_mirrors_carry_no_bundle_registry_marker() {
    let mut cluster = registry_cluster(false);
    cluster.registry_mirrors = vec![RegistryMirror::new(
        "mirror.internal",
        vec!["https://m.lab".into()],
    )];
    let own = render(
        HOSTS_TOML,
        &cluster,
        &lab_host(),
        Some(&cluster.registry_mirrors[0]),
    )
    .unwrap();
    assert!(!own.contains(BUNDLE_REGISTRY_MARKER), "{own}");
    let reset = fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../playbooks/reset.yaml"),
    )
    .unwrap();
    assert!(
        reset.contains(&format!("'{BUNDLE_REGISTRY_MARKER}'")),
        "reset removes exactly the marked files"
    );
}

#[test]
fn a_user_mirror_for_a_served_registry_is_an_invalid_context() {
    let mut cluster = registry_cluster(false);
    cluster.registry_mirrors = vec![RegistryMirror::new("quay.io", vec!["https://m.lab".into()])];
    let err = cluster.validate().unwrap_err().to_string();
    assert!(err.contains("`quay.io`") && err.contains("reg-1"), "{err}");
}

/// The fake bundle plus a `registry` binary for amd64; returns its sha256.
fn bundle_with_registry(dir: &std::path::Path) -> String {
    write_bundle(dir);
    let path = dir.join("bin/amd64/registry");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, "registry binary\n").unwrap();
    let sha = sha256_file(&path).unwrap();
    let size = fs::metadata(&path).unwrap().len();
    let mut manifest = fs::read_to_string(dir.join("manifest.yaml")).unwrap();
    manifest.push_str(&format!(
        "  - path: bin/amd64/registry\n    sha256: {sha}\n    size: {size}\n    arch: amd64\n    kind: binary\n    name: registry\n    version: \"2.8.2\"\n"
    ));
    fs::write(dir.join("manifest.yaml"), manifest).unwrap();
    sha
}

/// The install playbook's phases up to the registry (the Kubernetes phases need a
/// Kubernetes context, which these clusters lack).
fn playbook() -> Playbook {
    let mut playbook = Playbook::builtin("install").unwrap();
    let registry = playbook
        .phases
        .iter()
        .position(|p| p.name == "registry")
        .expect("the install playbook has a registry phase");
    // Only GPU Nodes' phases (`hosts: gpu`) may come between.
    let runtime = playbook
        .phases
        .iter()
        .position(|p| p.name == "container-runtime")
        .unwrap();
    assert!(
        runtime < registry
            && playbook.phases[runtime + 1..registry]
                .iter()
                .all(|p| p.hosts == kubegrid_plan::HostSelector::Gpu),
        "the registry starts once the runtime is there"
    );
    assert_eq!(playbook.phases[registry + 1].name, "kubernetes-packages");
    playbook.phases.truncate(registry + 1);
    playbook
}

fn phase<'a>(phases: &'a [PhasePlan], name: &str) -> Option<&'a PhasePlan> {
    phases.iter().find(|p| p.name == name)
}

fn task_names(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.name.as_str()).collect()
}

/// The registry-related tasks of the container-runtime phase.
fn runtime_registry_tasks(phases: &[PhasePlan]) -> Vec<&str> {
    task_names(&phase(phases, "container-runtime").unwrap().tasks)
        .into_iter()
        .filter(|n| n.contains("registry"))
        .collect()
}

#[test]
fn every_host_gets_the_ca_and_hosts_toml_and_only_the_registry_host_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let registry_sha = bundle_with_registry(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let playbook = playbook();
    let cluster = registry_cluster(false);
    let mirrors = [
        "registry mirrors (registry.k8s.io)",
        "registry mirrors (docker.io)",
        "registry mirrors (quay.io)",
        "registry mirrors (ghcr.io)",
        "registry mirrors (nvcr.io)",
    ];
    let mut expected_runtime = vec!["bundle registry CA (registry-ca.crt)"];
    expected_runtime.extend(mirrors);

    let other = compile(
        &playbook,
        &cluster,
        &registry_host("node-1", &["control-plane", "worker"], false),
        &bundle,
    )
    .unwrap();
    assert_eq!(runtime_registry_tasks(&other), expected_runtime);
    assert!(phase(&other, "registry").is_none(), "only reg-1 runs it");
    let runtime = &phase(&other, "container-runtime").unwrap().tasks;
    let ca_task = runtime
        .iter()
        .find(|t| t.name == expected_runtime[0])
        .unwrap();
    let Action::File(ca) = &ca_task.action else {
        panic!("{ca_task:?}")
    };
    assert_eq!((ca.path.to_str(), ca.mode), (Some(REGISTRY_CA_CERT), 0o644));

    let reg = compile(
        &playbook,
        &cluster,
        &registry_host("reg-1", &["worker"], true),
        &bundle,
    )
    .unwrap();
    assert_eq!(runtime_registry_tasks(&reg), expected_runtime);
    let registry = phase(&reg, "registry").unwrap();
    assert_eq!(
        task_names(&registry.tasks),
        [
            "registry certificates (registry-ca.crt)",
            "registry certificates (registry.crt)",
            "registry certificates (registry.key)",
            "registry binary (registry)",
            "registry config",
            "registry service",
            "registry is active",
            "registry answers",
            "registry push credential (htpasswd)",
            "registry push config",
            "registry push service",
            "registry push is active",
        ]
    );
    assert_eq!(registry.blobs, std::slice::from_ref(&registry_sha));
    let by_name: BTreeMap<&str, &Action> = registry
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), &t.action))
        .collect();
    let Action::File(key) = by_name["registry certificates (registry.key)"] else {
        panic!()
    };
    assert_eq!(key.mode, 0o600);
    let Action::Binary(binary) = by_name["registry binary (registry)"] else {
        panic!()
    };
    assert_eq!(
        binary.path.to_str(),
        Some("/usr/local/bin/kubegrid-registry")
    );
    assert_eq!(binary.sha256, registry_sha);
    let Action::File(config) = by_name["registry config"] else {
        panic!()
    };
    assert_eq!(
        config.path.to_str(),
        Some("/etc/kubegrid/registry/config.yml")
    );
    assert!(config.content.contains("addr: \"0.0.0.0:5000\""));
    let Action::SystemdUnit(unit) = by_name["registry service"] else {
        panic!()
    };
    assert_eq!(unit.name, "kubegrid-registry.service");
    assert!(unit.enabled && unit.running);
    let watched: Vec<&str> = unit.watch.iter().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(
        watched,
        [
            "/usr/local/bin/kubegrid-registry",
            "/etc/kubegrid/registry/config.yml",
            REGISTRY_CERT,
            REGISTRY_KEY,
        ]
    );
    let Action::File(htpasswd) = by_name["registry push credential (htpasswd)"] else {
        panic!()
    };
    assert_eq!(
        (htpasswd.path.to_str(), htpasswd.mode),
        (Some(REGISTRY_HTPASSWD), 0o600)
    );
    let Action::SystemdUnit(push) = by_name["registry push service"] else {
        panic!()
    };
    assert_eq!(push.name, "kubegrid-registry-push.service");
    assert!(
        push.watch
            .iter()
            .any(|w| w.to_str() == Some(REGISTRY_HTPASSWD)),
        "a new credential restarts the push endpoint: {:?}",
        push.watch
    );
    let Action::Check(check) = by_name["registry answers"] else {
        panic!()
    };
    let CheckKind::CommandSucceeds { argv, expect, .. } = &check.check else {
        panic!("{check:?}")
    };
    assert_eq!(argv[0], "curl");
    let cacert = argv.iter().position(|a| a == "--cacert").unwrap();
    assert_eq!(argv[cacert + 1], REGISTRY_CA_CERT);
    assert_eq!(
        argv.last().map(String::as_str),
        Some("https://10.213.74.12:5000/v2/")
    );
    assert_eq!(expect.as_deref(), Some("{}"));
}

#[test]
fn plain_http_registry_needs_no_certificates() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_registry(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let playbook = playbook();
    let cluster = registry_cluster(true);
    // No certificate sets: a plain HTTP registry must not ask for any (the push
    // endpoint's credential is all it needs).
    let mut reg = host("amd64", &["etcd"]);
    reg.name = "reg-1".into();
    reg.pki.insert(
        REGISTRY_PUSH_SET.into(),
        vec![pki_file(REGISTRY_HTPASSWD, 0o600)],
    );
    let phases = compile(&playbook, &cluster, &reg, &bundle).unwrap();
    assert!(phase(&phases, "container-runtime").is_none(), "etcd only");
    let registry = phase(&phases, "registry").unwrap();
    assert_eq!(
        task_names(&registry.tasks)[..2],
        ["registry binary (registry)", "registry config"]
    );
    let answers = registry
        .tasks
        .iter()
        .find(|t| t.name == "registry answers")
        .unwrap();
    let Action::Check(check) = &answers.action else {
        panic!()
    };
    let CheckKind::CommandSucceeds { argv, .. } = &check.check else {
        panic!()
    };
    assert!(!argv.iter().any(|a| a == "--cacert"), "{argv:?}");
    assert_eq!(
        argv.last().map(String::as_str),
        Some("http://10.213.74.12:5000/v2/")
    );

    let mut other = lab_host();
    other.pki.clear();
    let phases = compile(&playbook, &cluster, &other, &bundle).unwrap();
    let runtime = runtime_registry_tasks(&phases);
    assert_eq!(runtime.len(), 5, "{runtime:?}");
    assert!(runtime.iter().all(|n| n.starts_with("registry mirrors")));
}

#[test]
fn without_a_bundle_registry_no_host_runs_the_registry_phase() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let phases = compile(&playbook(), &runc_cluster("1.7"), &lab_host(), &bundle).unwrap();
    assert!(phase(&phases, "registry").is_none());
    assert!(runtime_registry_tasks(&phases).is_empty());
}

#[test]
fn a_bundle_without_a_registry_binary_is_a_compile_error_on_the_registry_host() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let err = compile(
        &playbook(),
        &registry_cluster(false),
        &registry_host("reg-1", &["worker"], true),
        &bundle,
    )
    .unwrap_err();
    let Error::ArtifactNotInBundle { name, arch, .. } = &err else {
        panic!("expected ArtifactNotInBundle, got {err}")
    };
    assert_eq!((name.as_str(), arch.as_str()), ("registry", "amd64"));
}
