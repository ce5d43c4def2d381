//! The operator confines each Cluster: no field may name a file or an environment variable of
//! the operator's pod, and the bundle must lie inside the bundle roots. Every escape is tried
//! here, against the CEL rules and the code validation alike, and each is refused unread.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, symlink},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use kubegrid_api::{Error, Manifest, ValidateFor};

use crate::{
    common::{Fixture, GOOD, problems_for},
    schema_rules::{Checker, Verdict, code_create, edit, pair},
};

/// Edits of the operator's good spec, and the one field that the CEL rules and the code
/// must both refuse (or none): every file and variable field, and the ref forms that replace
/// them.
pub(crate) const RULE_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "    serviceCIDR: 10.96.0.0/12\n",
        "    serviceCIDR: 10.96.0.0/12\n    cniManifest: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
        "Cluster/gpu-prod",
        "spec.network.cniManifest",
    ),
    (
        "    serviceCIDR: 10.96.0.0/12\n",
        "    serviceCIDR: 10.96.0.0/12\n    cniManifestRef: {name: cni, key: cni.yaml}\n",
        "",
        "",
    ),
    (
        "    privateKeySecretRef: {name: gpu-prod-ssh}\n",
        "    privateKeySecretRef: {name: gpu-prod-ssh}\n    privateKeyFile: ../../../etc/ssh/ssh_host_ed25519_key\n",
        "Cluster/gpu-prod",
        "spec.ssh.privateKeyFile",
    ),
    (
        "    privateKeySecretRef: {name: gpu-prod-ssh}\n",
        "    privateKeySecretRef: {name: gpu-prod-ssh}\n    passwordEnv: KUBEGRID_DATABASE_URL\n",
        "Cluster/gpu-prod",
        "spec.ssh.passwordEnv",
    ),
    (
        "    privateKeySecretRef: {name: gpu-prod-ssh}\n",
        "    passwordSecretRef: {name: gpu-prod-ssh-password}\n",
        "",
        "",
    ),
    (
        "bastion: {address: 203.0.113.10, user: jump}",
        "bastion: {address: 203.0.113.10, user: jump, privateKeyFile: ~/.ssh/id_ed25519}",
        "Cluster/gpu-prod",
        "spec.ssh.bastion.privateKeyFile",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 2222, privateKeyFile: /root/.ssh/id_ed25519}",
        "Node/gpu-1",
        "spec.ssh.privateKeyFile",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 2222, passwordEnv: KUBEGRID_DATABASE_URL}",
        "Node/gpu-1",
        "spec.ssh.passwordEnv",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 2222, passwordSecretRef: {name: gpu-1-password, key: pw}}",
        "",
        "",
    ),
    (
        "ssh: {user: root, port: 2222}",
        "ssh: {user: root, port: 2222, bastion: {address: 203.0.113.11, user: jump, privateKeyFile: /etc/shadow}}",
        "Node/gpu-1",
        "spec.ssh.bastion.privateKeyFile",
    ),
    (
        "    source: bundle\n",
        "    source: bundle\n    publicKeyFile: /etc/kubegrid/bundle.pub\n",
        "Cluster/gpu-prod",
        "spec.bundle.publicKeyFile",
    ),
    (
        "    source: bundle\n",
        "    source: ../../etc\n",
        "Cluster/gpu-prod",
        "spec.bundle.source",
    ),
    (
        "    source: bundle\n",
        "    source: file:///var/lib/kubegrid/bundles/../../../etc\n",
        "Cluster/gpu-prod",
        "spec.bundle.source",
    ),
    (
        "    source: bundle\n",
        "    source: k8s/..\n",
        "Cluster/gpu-prod",
        "spec.bundle.source",
    ),
    // A name with dots is no `..` component; the roots decide about absolute paths.
    (
        "    source: bundle\n",
        "    source: k8s..1.31/..x\n",
        "",
        "",
    ),
    (
        "    source: bundle\n",
        "    source: /var/lib/kubegrid/bundles/k8s-1.31\n",
        "",
        "",
    ),
];

#[test]
fn every_file_and_variable_field_gets_the_same_verdict_from_the_rules_and_the_code() {
    let checker = Checker::new();
    for (from, to, resource, field) in RULE_CASES {
        let text = edit(from, to);
        let want = if field.is_empty() {
            Verdict::new()
        } else {
            pair(resource, field)
        };
        assert_eq!(checker.schema(&text, None).0, want, "schema on `{to}`");
        assert_eq!(code_create(&text), want, "code on `{to}`");
    }
    // The bound that keeps the rule's regex within the API server's cost budget.
    let long = format!(
        "    source: {}\n",
        "b".repeat(kubegrid_api::MAX_BUNDLE_SOURCE_LEN + 1)
    );
    let text = edit("    source: bundle\n", &long);
    let want = pair("Cluster/gpu-prod", "spec.bundle.source");
    assert_eq!(checker.schema(&text, None).0, want);
    assert_eq!(code_create(&text), want);
}

#[test]
fn each_refusal_names_the_field_and_the_reference_to_use_instead() {
    for (from, to, resource, field) in RULE_CASES {
        if field.is_empty() || *field == "spec.bundle.source" {
            continue;
        }
        let problems = problems_for(&edit(from, to), ValidateFor::Operator);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let problem = &problems[0];
        assert!(
            problem.contains(&format!("{resource} {field}: got `")),
            "{problem}"
        );
        let hint = match field.rsplit('.').next().unwrap() {
            "cniManifest" => "ConfigMap of the same namespace and name it in cniManifestRef",
            "passwordEnv" => "Secret of the same namespace and name it in passwordSecretRef",
            "publicKeyFile" => "Secret of the same namespace and name it in publicKeyRef",
            _ if field.contains("bastion") => "host's key from privateKeySecretRef",
            _ => {
                "Secret of the same namespace and name it in the Cluster's spec.ssh.privateKeySecretRef"
            }
        };
        assert!(problem.contains(hint), "`{hint}` missing from: {problem}");
        assert!(problem.contains("for the kubegrid CLI only"), "{problem}");
    }
}

#[test]
fn the_cli_keeps_files_and_variables_but_cannot_read_a_config_map() {
    let cli = GOOD.replacen(
        "    serviceCIDR: 10.96.0.0/12\n",
        "    serviceCIDR: 10.96.0.0/12\n    cniManifestRef: {name: cni, key: cni.yaml}\n",
        1,
    );
    let problems = problems_for(&cli, ValidateFor::Cli);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("Cluster/gpu-prod spec.network.cniManifestRef: got ConfigMap `cni`")
            && problems[0].contains("cannot read")
            && problems[0].contains("expected cniManifest"),
        "{}",
        problems[0]
    );
    // A password Secret is no credential for the CLI.
    let secret_only = GOOD.replacen(
        "    privateKeyFile: keys/id_ed25519\n",
        "    passwordSecretRef: {name: gpu-prod-ssh-password}\n",
        1,
    );
    let problems = problems_for(&secret_only, ValidateFor::Cli);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("spec.ssh: got only privateKeySecretRef or passwordSecretRef"),
        "{}",
        problems[0]
    );
    // The CLI's user owns the files and variables the spec names.
    let local = GOOD.replacen(
        "    privateKeyFile: keys/id_ed25519\n",
        "    privateKeyFile: keys/id_ed25519\n    passwordEnv: PATH\n",
        1,
    );
    assert!(problems_for(&local, ValidateFor::Cli).is_empty());
}

/// A FIFO that records whether anything opened it for reading (the reconciler scenarios have
/// a copy). A watcher keeps opening its
/// write end without blocking, which succeeds only while a reader holds the FIFO open; it
/// then writes a line and closes, so a reader is never left waiting.
pub(crate) struct Tripwire {
    pub path: PathBuf,
    tripped: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Tripwire {
    pub(crate) fn new(path: &Path) -> Self {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let (tripped, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let watcher = {
            let (path, tripped, stop) = (path.to_path_buf(), tripped.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                        .open(&path)
                    {
                        // One line for the first reader; later opens only close again, so
                        // every reader reaches the end of the stream.
                        Ok(mut f) => {
                            if !tripped.swap(true, Ordering::SeqCst) {
                                let _ = f.write_all(b"read by the code under test\n");
                            }
                        }
                        // No reader (ENXIO): poll again; nothing signals an open.
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
                    }
                }
            })
        };
        Self {
            path: path.to_path_buf(),
            tripped,
            stop,
            watcher: Some(watcher),
        }
    }

    pub(crate) fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

#[test]
fn the_tripwire_notices_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let wire = Tripwire::new(&dir.path().join("fifo"));
    assert!(!wire.tripped());
    let text = std::fs::read_to_string(&wire.path).unwrap();
    assert_eq!(text, "read by the code under test\n");
    assert!(wire.tripped());
}

#[test]
fn the_operator_opens_none_of_the_files_a_spec_names() {
    let fixture = Fixture::new(GOOD);
    let wire = Tripwire::new(&fixture.dir.path().join("token"));
    let at = wire.path.display().to_string();
    let text = GOOD
        .replacen(
            "    serviceCIDR: 10.96.0.0/12\n",
            &format!("    serviceCIDR: 10.96.0.0/12\n    cniManifest: {at}\n"),
            1,
        )
        .replacen(
            "    privateKeyFile: keys/id_ed25519\n",
            &format!("    privateKeyFile: {at}\n    passwordEnv: HOME\n"),
            1,
        )
        .replacen(
            "    source: bundle\n",
            &format!("    source: bundle\n    publicKeyFile: {at}\n"),
            1,
        )
        .replacen(
            "bastion: {address: 203.0.113.10, user: jump}",
            &format!("bastion: {{address: 203.0.113.10, user: jump, privateKeyFile: {at}}}"),
            1,
        )
        .replacen(
            "ssh: {user: root, port: 2222}",
            &format!("ssh: {{user: root, port: 2222, privateKeyFile: {at}, passwordEnv: PATH}}"),
            1,
        );
    std::fs::write(&fixture.path, &text).unwrap();
    let manifest = fixture.parse().unwrap();
    let fields = |result: Result<(), Error>| -> Vec<String> {
        match result {
            Err(Error::Invalid { problems }) => problems
                .iter()
                .map(|p| format!("{} {}", p.resource, p.field))
                .collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    };
    let want = [
        "Cluster/gpu-prod spec.network.cniManifest",
        "Cluster/gpu-prod spec.bundle.publicKeyFile",
        "Cluster/gpu-prod spec.ssh.privateKeyFile",
        "Cluster/gpu-prod spec.ssh.passwordEnv",
        "Cluster/gpu-prod spec.ssh.bastion.privateKeyFile",
        "Node/gpu-1 spec.ssh.privateKeyFile",
        "Node/gpu-1 spec.ssh.passwordEnv",
    ];
    assert_eq!(fields(manifest.check_confined()), want);
    assert_eq!(fields(manifest.validate(ValidateFor::Operator)), want);
    assert!(!wire.tripped(), "the operator's validation opened {at}");
    // The value quoted is the path written, not the file's content.
    let err = manifest
        .validate(ValidateFor::Operator)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("read by the code under test"), "{err}");
}

/// A manifest whose bundle source is `source`, with relative paths resolving in `spec_dir`.
fn with_source(source: &str, spec_dir: &Path) -> Manifest {
    let text = edit("    source: bundle\n", &format!("    source: {source}\n"));
    let m = kubegrid_api::parse(&text, &spec_dir.join("cluster.yaml")).unwrap();
    Manifest::from_resources(m.cluster().clone(), m.nodes().to_vec(), spec_dir).unwrap()
}

fn refused(result: kubegrid_api::Result<Option<PathBuf>>) -> String {
    match result {
        Err(Error::Invalid { problems }) => {
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert_eq!(problems[0].resource, "Cluster/gpu-prod");
            assert_eq!(problems[0].field, "spec.bundle.source");
            problems[0].to_string()
        }
        other => panic!("expected the source refused, got {other:?}"),
    }
}

#[test]
fn bundles_are_taken_only_inside_the_roots_with_symbolic_links_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bundles");
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(root.join("k8s-1.31")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // Were the outside bundle's manifest opened, the tripwire would say so.
    let wire = Tripwire::new(&outside.join("manifest.yaml"));
    symlink(&outside, root.join("escape")).unwrap();
    symlink(root.join("k8s-1.31"), root.join("current")).unwrap();
    let roots = vec![root.clone()];
    let canonical = std::fs::canonicalize(root.join("k8s-1.31")).unwrap();

    // Inside: relative, absolute, file:// and through a link that stays inside.
    for source in [
        "k8s-1.31".to_string(),
        root.join("k8s-1.31").display().to_string(),
        format!("file://{}", root.join("k8s-1.31").display()),
        "current".to_string(),
    ] {
        let got = with_source(&source, &root).confined_bundle_dir(&roots);
        assert_eq!(got.unwrap(), Some(canonical.clone()), "{source}");
    }
    // Not there yet, but inside: returned for the caller to report missing.
    let missing = with_source("k8s-1.32", &root).confined_bundle_dir(&roots);
    assert_eq!(missing.unwrap(), Some(root.join("k8s-1.32")));

    // An absolute path outside every root.
    let etc = refused(with_source("/etc", &root).confined_bundle_dir(&roots));
    assert!(etc.contains("outside the bundle roots"), "{etc}");
    assert!(etc.contains(&root.display().to_string()), "{etc}");
    let shown =
        refused(with_source(&outside.display().to_string(), &root).confined_bundle_dir(&roots));
    assert!(shown.contains("outside the bundle roots"), "{shown}");
    // A relative path when the spec directory is not a root.
    let relative = refused(with_source("k8s-1.31", dir.path()).confined_bundle_dir(&roots));
    assert!(relative.contains("outside the bundle roots"), "{relative}");
    // A sibling whose name starts like the root is not inside it.
    std::fs::create_dir_all(dir.path().join("bundles-evil")).unwrap();
    let sibling = dir.path().join("bundles-evil").display().to_string();
    refused(with_source(&sibling, &root).confined_bundle_dir(&roots));
    // `..`, relative and absolute.
    for source in [
        "../elsewhere".to_string(),
        format!("{}/../elsewhere", root.display()),
    ] {
        let why = refused(with_source(&source, &root).confined_bundle_dir(&roots));
        assert!(why.contains("`..`"), "{why}");
    }
    // A symbolic link inside a root that leads outside.
    let link = refused(with_source("escape", &root).confined_bundle_dir(&roots));
    assert!(link.contains("symbolic link"), "{link}");
    assert!(
        link.contains(
            &std::fs::canonicalize(&outside)
                .unwrap()
                .display()
                .to_string()
        ),
        "{link}"
    );
    assert!(!wire.tripped(), "the outside bundle's manifest was opened");
}

#[test]
fn no_home_expansion_for_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bundles");
    std::fs::create_dir_all(&root).unwrap();
    // `~/x` would be the operator's home; the operator reads it as a name under the root.
    let got = with_source("~/x", &root).confined_bundle_dir(std::slice::from_ref(&root));
    assert_eq!(got.unwrap(), Some(root.join("~/x")));
}

#[test]
fn a_refusal_quotes_a_short_excerpt_of_what_was_written() {
    let long = format!("/{}", "a/".repeat(400));
    let text = edit(
        "    privateKeySecretRef: {name: gpu-prod-ssh}\n",
        &format!("    privateKeySecretRef: {{name: gpu-prod-ssh}}\n    privateKeyFile: {long}\n"),
    );
    let problems = problems_for(&text, ValidateFor::Operator);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("…`"), "{}", problems[0]);
    assert!(problems[0].len() < 600, "{}", problems[0]);
}
