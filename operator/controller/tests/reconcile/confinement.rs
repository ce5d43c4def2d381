//! The operator confines each Cluster (issue 13): a field that names a file or an environment
//! variable of the operator's pod, or a bundle outside the bundle roots, is refused with
//! Ready=False/InvalidSpec naming the field, no operation runs, and nothing is read. The
//! references that replace those fields reach the engine from the Cluster's namespace.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, symlink},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::common::*;

// On the real server too, where the Cluster passes the CRDs' rules and only the operator's
// own checks refuse it (or nothing does). The others put fields that the real server's CEL
// rules refuse at admission (`privateKeyFile`, `passwordEnv`, `cniManifest`,
// `publicKeyFile`, a `..` in `bundle.source`; the CRD tests check those refusals), so they
// run on the fake only, which runs no rules, to check the operator's own refusal.
on_both!(
    a_bundle_at_an_absolute_path_outside_the_roots_is_refused_unread,
    a_symbolic_link_in_a_bundle_root_that_leads_outside_is_refused_unread,
    references_reach_the_engine_from_the_clusters_namespace_in_memory,
    a_deleted_nodes_password_reaches_its_removal,
    a_cni_manifest_ref_that_is_not_kubernetes_objects_is_refused,
    an_encrypted_key_in_the_secret_is_refused_not_opened_with_the_operators_passphrase,
);

fn never_fails() -> Arc<Plan> {
    Arc::new(|_, _| Vec::new())
}

/// A FIFO that records whether anything opened it for reading (a copy of the one in the
/// kubegrid-api tests). A watcher keeps opening its write end without blocking, which
/// succeeds only while a reader holds the FIFO open; the first reader gets one line and
/// every reader reaches the end of the stream, so none is left waiting.
struct Tripwire {
    path: PathBuf,
    tripped: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Tripwire {
    fn new(path: &Path) -> Self {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let tripped = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (path, tripped, stop) = (path.to_path_buf(), tripped.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                        .open(&path)
                    {
                        Ok(mut f) => {
                            if !tripped.swap(true, Ordering::SeqCst) {
                                let _ = f.write_all(b"kind: Secret\n");
                            }
                        }
                        // No reader (ENXIO): poll again; nothing signals an open.
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
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

    fn at(&self) -> String {
        self.path.display().to_string()
    }

    fn tripped(&self) -> bool {
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

/// Starts the operator on `bed` and waits for Ready=False/InvalidSpec; checks that the
/// message names `field` and that no operation ran. Returns the message.
async fn refused(bed: &Bed, field: &str) -> String {
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let ready = eventually(bed, "Ready=False InvalidSpec", |f| {
        condition(f, "Ready").filter(|c| c["reason"] == "InvalidSpec" && c["status"] == "False")
    })
    .await;
    let message = ready["message"].as_str().unwrap().to_string();
    assert!(message.contains(field), "`{field}` missing from: {message}");
    assert!(
        bed.calls().is_empty(),
        "an operation ran: {:#?}",
        bed.calls()
    );
    message
}

/// A bed on `backend` whose Cluster `gpu` is edited by `edit` before it is created there
/// and before the operator starts.
async fn bed_with(backend: Backend, edit: impl FnOnce(&mut Value)) -> Bed {
    let fake = fake(true, "Orphan");
    let mut c = cluster(&fake);
    edit(&mut c["spec"]);
    fake.put(c);
    Bed::on(backend, fake, true, never_fails()).await
}

async fn edit_node(bed: &Bed, name: &str, edit: impl FnOnce(&mut Value)) {
    let mut n = node_of(bed, name);
    edit(&mut n["spec"]);
    bed.put(n).await;
}

#[tokio::test]
async fn a_cni_manifest_path_is_refused_and_never_read() {
    let bed = bed_with(Backend::Fake, |_| {}).await;
    // The operator's own service account token, as a hostile spec would name it.
    let token = Tripwire::new(&bed.dir.path().join("token"));
    let mut c = cluster(&bed.fake);
    c["spec"]["network"]["cni"] = json!("none");
    c["spec"]["network"]["cniManifest"] = json!(token.at());
    bed.fake.put(c);
    let message = refused(&bed, "spec.network.cniManifest").await;
    assert!(message.contains("cniManifestRef"), "{message}");
    assert!(!token.tripped(), "the operator read {}", token.at());
}

#[tokio::test]
async fn key_files_of_the_cluster_its_bastion_and_a_node_are_refused_and_never_read() {
    let bed = Bed::new(fake(true, "Orphan"), true, never_fails());
    let key = Tripwire::new(&bed.dir.path().join("id_ed25519"));
    let mut c = cluster(&bed.fake);
    c["spec"]["ssh"]["privateKeyFile"] = json!(key.at());
    c["spec"]["ssh"]["bastion"] =
        json!({"address": "10.213.99.1", "user": "jump", "privateKeyFile": key.at()});
    bed.fake.put(c);
    edit_node(&bed, "gpu-1", |spec| {
        spec["ssh"] = json!({"privateKeyFile": "../../etc/ssh/ssh_host_ed25519_key"});
    })
    .await;
    let message = refused(&bed, "Cluster/gpu spec.ssh.privateKeyFile").await;
    assert!(
        message.contains("Cluster/gpu spec.ssh.bastion.privateKeyFile"),
        "{message}"
    );
    assert!(
        message.contains("Node/gpu-1 spec.ssh.privateKeyFile"),
        "{message}"
    );
    assert!(message.contains("privateKeySecretRef"), "{message}");
    assert!(!key.tripped(), "the operator read {}", key.at());
}

#[tokio::test]
async fn password_variables_of_the_cluster_and_a_node_are_refused() {
    // Set in this process, as the operator's database URL would be in its pod: a run would
    // send it as an SSH password to an address the spec chose.
    let bed = bed_with(Backend::Fake, |spec| {
        spec["ssh"]["passwordEnv"] = json!("PATH");
    })
    .await;
    edit_node(&bed, "cp-1", |spec| {
        spec["ssh"] = json!({"passwordEnv": "HOME"});
    })
    .await;
    let message = refused(&bed, "Cluster/gpu spec.ssh.passwordEnv").await;
    assert!(
        message.contains("Node/cp-1 spec.ssh.passwordEnv"),
        "{message}"
    );
    assert!(message.contains("passwordSecretRef"), "{message}");
    let path = std::env::var("PATH").unwrap();
    assert!(!message.contains(&path), "{message}");
}

#[tokio::test]
async fn a_bundle_public_key_file_is_refused_and_never_read() {
    let bed = Bed::new(fake(true, "Orphan"), true, never_fails());
    let key = Tripwire::new(&bed.dir.path().join("bundle.pub"));
    let mut c = cluster(&bed.fake);
    c["spec"]["bundle"]["publicKeyFile"] = json!(key.at());
    bed.fake.put(c);
    let message = refused(&bed, "spec.bundle.publicKeyFile").await;
    assert!(message.contains("publicKeyRef"), "{message}");
    assert!(!key.tripped(), "the operator read {}", key.at());
}

/// A bundle outside the roots (`bundles/`), whose manifest would trip if anything opened it
/// (the intent digest reads a bundle's manifest).
fn outside_bundle(bed: &Bed) -> Tripwire {
    let outside = bed.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    Tripwire::new(&outside.join("manifest.yaml"))
}

async fn a_bundle_at_an_absolute_path_outside_the_roots_is_refused_unread(backend: Backend) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    let manifest = outside_bundle(&bed);
    let source = bed.dir.path().join("elsewhere").display().to_string();
    let mut c = cluster(&bed.fake);
    c["spec"]["bundle"]["source"] = json!(source);
    bed.put(c).await;
    let message = refused(&bed, "spec.bundle.source").await;
    assert!(message.contains("outside the bundle roots"), "{message}");
    assert!(!manifest.tripped(), "the operator read {}", manifest.at());
}

#[tokio::test]
async fn a_bundle_reached_with_dot_dot_is_refused_unread() {
    let bed = Bed::new(fake(true, "Orphan"), true, never_fails());
    let manifest = outside_bundle(&bed);
    let mut c = cluster(&bed.fake);
    c["spec"]["bundle"]["source"] = json!("../elsewhere");
    bed.fake.put(c);
    let message = refused(&bed, "spec.bundle.source").await;
    assert!(message.contains("`..`"), "{message}");
    assert!(!manifest.tripped(), "the operator read {}", manifest.at());
}

async fn a_symbolic_link_in_a_bundle_root_that_leads_outside_is_refused_unread(backend: Backend) {
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    let manifest = outside_bundle(&bed);
    symlink(
        bed.dir.path().join("elsewhere"),
        bed.dir.path().join("bundles/escape"),
    )
    .unwrap();
    let mut c = cluster(&bed.fake);
    c["spec"]["bundle"]["source"] = json!("escape");
    bed.put(c).await;
    let message = refused(&bed, "spec.bundle.source").await;
    assert!(message.contains("symbolic link"), "{message}");
    assert!(!manifest.tripped(), "the operator read {}", manifest.at());
}

#[tokio::test]
async fn a_reset_is_confined_too() {
    // deletionPolicy Reset skips the install rules, not the confinement: a Cluster deleted
    // with a key file in its spec is not reset with the operator's file.
    let bed = Bed::new(fake(true, "Reset"), true, never_fails());
    let key = Tripwire::new(&bed.dir.path().join("id_ed25519"));
    let mut c = cluster(&bed.fake);
    c["spec"]["ssh"]["privateKeyFile"] = json!(key.at());
    c["metadata"]["finalizers"] = json!(["kubegrid.io/cluster"]);
    bed.fake.put(c);
    assert!(bed.fake.delete_object(API, "Cluster", NS, "gpu"));
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    let ready = eventually(&bed, "Ready=False ResetBlocked", |f| {
        condition(f, "Ready").filter(|c| c["reason"] == "ResetBlocked")
    })
    .await;
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("spec.ssh.privateKeyFile"), "{message}");
    assert!(bed.calls().is_empty(), "a reset ran: {:#?}", bed.calls());
    assert!(!key.tripped(), "the operator read {}", key.at());
}

async fn references_reach_the_engine_from_the_clusters_namespace_in_memory(backend: Backend) {
    let bed = bed_with(backend, |spec| {
        spec["network"]["cni"] = json!("none");
        spec["network"]["cniManifestRef"] = json!({"name": "cni", "key": "cni.yaml"});
        spec["ssh"]["passwordSecretRef"] = json!({"name": "gpu-password"});
    })
    .await;
    edit_node(&bed, "gpu-1", |spec| {
        spec["ssh"] = json!({"passwordSecretRef": {"name": "gpu-1-password", "key": "pw"}});
    })
    .await;
    let cni = "apiVersion: v1\nkind: Namespace\nmetadata: {name: my-cni}\n";
    bed.fake
        .put(secret("gpu-password", "password", "cluster-wide\n"));
    bed.fake.put(secret("gpu-1-password", "pw", "only-gpu-1"));
    // The same names in another namespace are never looked at.
    bed.fake.put(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cni", "namespace": "other"},
        "data": {"cni.yaml": "kind: Wrong\n"}
    }));
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    // Without the ConfigMap: a condition that says how to create it, and no operation.
    let ready = eventually(&bed, "Ready=False ConfigMapMissing", |f| {
        condition(f, "Ready").filter(|c| c["reason"] == "ConfigMapMissing")
    })
    .await;
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains(
            "ConfigMap cni with the CNI manifest (spec.network.cniManifestRef) does not exist"
        ),
        "{message}"
    );
    assert!(
        message.contains("kubectl -n fleet create configmap cni --from-file=cni.yaml=FILE"),
        "{message}"
    );
    assert!(bed.calls().is_empty(), "{:#?}", bed.calls());
    bed.fake.put(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cni", "namespace": NS},
        "data": {"cni.yaml": cni}
    }));
    eventually(&bed, "Ready=True once the ConfigMap exists", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    let calls = bed.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].cni_manifest.as_deref(), Some(cni));
    assert_eq!(
        calls[0].passwords,
        [
            ("cp-1".to_string(), "cluster-wide".to_string()),
            ("gpu-1".to_string(), "only-gpu-1".to_string()),
        ]
        .into()
    );
    // Neither was written to a file: the work directory holds nothing after the operation,
    // nor after the certificates check that follows it (which reads the keys again).
    eventually(&bed, "the certificates check after the install", |f| {
        cluster(f)["status"]["certificates"]["lastChecked"]
            .is_string()
            .then_some(())
    })
    .await;
    let work = bed.dir.path().join("work-op-a/fleet/gpu");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", work.display());
}

async fn a_deleted_nodes_password_reaches_its_removal(backend: Backend) {
    // Passwords from Secrets are never journaled with a member, so the operation that
    // removes a deleted Node gets the password from the Node's Secret.
    let bed = Bed::on(backend, fake(true, "Orphan"), true, never_fails()).await;
    edit_node(&bed, "gpu-1", |spec| {
        spec["ssh"] = json!({"passwordSecretRef": {"name": "gpu-1-password"}});
    })
    .await;
    bed.fake
        .put(secret("gpu-1-password", "password", "only-gpu-1"));
    let (_stop, _task, _) = bed.start("op-a", Duration::from_secs(2)).await;
    eventually(&bed, "Ready", |f| {
        condition(f, "Ready").filter(|c| c["status"] == "True")
    })
    .await;
    assert!(bed.delete_object(API, "Node", NS, "gpu-1").await);
    eventually(&bed, "gpu-1 removed", |f| {
        node_of(f, "gpu-1").is_null().then_some(())
    })
    .await;
    let calls = bed.calls();
    let last = calls.last().unwrap();
    assert_eq!(last.nodes, ["cp-1"], "{calls:#?}");
    assert_eq!(
        last.passwords,
        [("gpu-1".to_string(), "only-gpu-1".to_string())].into(),
        "{calls:#?}"
    );
}

async fn a_cni_manifest_ref_that_is_not_kubernetes_objects_is_refused(backend: Backend) {
    let bed = bed_with(backend, |spec| {
        spec["network"]["cni"] = json!("none");
        spec["network"]["cniManifestRef"] = json!({"name": "cni", "key": "cni.yaml"});
    })
    .await;
    // YAML that parses but is no Kubernetes object: it must not reach the init host.
    bed.fake.put(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cni", "namespace": NS},
        "data": {"cni.yaml": "just: some\nsettings: [1, 2]\n"}
    }));
    let message = refused(&bed, "spec.network.cniManifestRef").await;
    assert!(
        message.contains("ConfigMap cni key `cni.yaml`"),
        "{message}"
    );
    assert!(message.contains("apiVersion"), "{message}");
}

async fn an_encrypted_key_in_the_secret_is_refused_not_opened_with_the_operators_passphrase(
    backend: Backend,
) {
    let bed = bed_with(backend, |_| {}).await;
    let key = bed.dir.path().join("sealed");
    let keygen = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "tenant-secret",
            "-C",
            "t",
            "-f",
        ])
        .arg(&key)
        .output()
        .expect("run ssh-keygen (openssh-client)");
    assert!(keygen.status.success(), "{keygen:?}");
    let text = std::fs::read_to_string(&key).unwrap();
    bed.fake.put(secret("gpu-ssh", "ssh-privatekey", &text));
    let message = refused(&bed, "spec.ssh.privateKeySecretRef").await;
    assert!(message.contains("encrypted private key"), "{message}");
    assert!(
        message.contains("Secret gpu-ssh key `ssh-privatekey`"),
        "{message}"
    );
}
