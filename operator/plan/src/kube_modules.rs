//! The playbook modules that bootstrap Kubernetes, and how they compile to agent tasks.

use std::path::{Path, PathBuf};

use kubegrid_agent::protocol::{Action, ArchiveArgs, BinaryArgs, CommandArgs, FileArgs};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    bundle::Bundle,
    context::{ClusterContext, HostContext},
    error::{Error, Result},
    kubernetes::{ADMIN_CONF, KubernetesContext},
    templates::render,
};

/// `binaries:` executables from the bundle, installed into one directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinariesSpec {
    /// Names the bundle manifest lists with `kind: binary`.
    pub bundle: Vec<String>,
    /// Directory they are installed in, e.g. /usr/bin.
    pub dir: PathBuf,
    /// Put before each installed file name: `kubegrid-` installs the bundle's `registry` as
    /// `<dir>/kubegrid-registry`, so kubegrid's copy never shadows or replaces a packaged one.
    #[serde(default)]
    pub prefix: String,
}

/// `archive:` a bundle archive unpacked into a directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSpec {
    /// Name the bundle manifest lists with `kind: archive`.
    pub bundle: String,
    /// Directory it is unpacked into.
    pub dest: PathBuf,
}

/// `pki_files:` the files of one certificate set the engine issued for the host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiFilesSpec {
    /// Set name: `etcd` (an external etcd member's certificates) or `control-plane` (the CAs
    /// and clients kubeadm init reads).
    pub set: String,
}

/// `cni_manifest:` the CNI's manifest and its apply on the init node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CniManifestSpec {
    /// Where the manifest is written.
    pub path: PathBuf,
    /// Template rendered when the user brings no manifest of their own.
    pub template: String,
}

/// Where `kubectl apply` records the manifest it applied, so a re-run with the same manifest
/// applies nothing and reports unchanged.
const CNI_STAMP_DIR: &str = "/var/lib/kubegrid/cni-applied";

fn kubernetes<'a>(cluster: &'a ClusterContext, task: &str) -> Result<&'a KubernetesContext> {
    cluster
        .kubernetes
        .as_ref()
        .ok_or_else(|| Error::InvalidContext {
            problem: format!(
                "task `{task}` bootstraps Kubernetes, but the operation has no Kubernetes settings"
            ),
        })
}

/// One Binary task per executable, each in the version the cluster asks for when the bundle
/// has several ([`Bundle::binary_for`]).
pub(crate) fn binaries(
    spec: &BinariesSpec,
    task: &str,
    cluster: &ClusterContext,
    host: &HostContext,
    bundle: &Bundle,
) -> Result<Vec<(String, Action, String)>> {
    spec.bundle
        .iter()
        .map(|name| {
            let file = bundle.binary_for(name, &host.facts.arch, cluster)?;
            let action = Action::Binary(BinaryArgs {
                path: spec.dir.join(format!("{}{name}", spec.prefix)),
                sha256: file.sha256.clone(),
                mode: 0o755,
            });
            Ok((format!("{task} ({name})"), action, file.sha256.clone()))
        })
        .collect()
}

/// The Archive task; containerd's archive is the one on the spec's release line.
pub(crate) fn archive(
    spec: &ArchiveSpec,
    cluster: &ClusterContext,
    host: &HostContext,
    bundle: &Bundle,
) -> Result<(Action, String)> {
    let line = crate::containerd::pinned_line(cluster, &spec.bundle);
    let file = bundle.archive_on_line(&spec.bundle, &host.facts.arch, line)?;
    let action = Action::Archive(ArchiveArgs {
        sha256: file.sha256.clone(),
        dest: spec.dest.clone(),
    });
    Ok((action, file.sha256.clone()))
}

/// One File task per certificate or key of the set; keys keep the PKI's 0600.
pub(crate) fn pki_files(
    spec: &PkiFilesSpec,
    task: &str,
    host: &HostContext,
) -> Result<Vec<(String, Action)>> {
    let files = host
        .pki
        .get(&spec.set)
        .ok_or_else(|| Error::InvalidContext {
            problem: format!(
                "task `{task}` writes certificate set `{}`, but none was issued for host {}",
                spec.set, host.name
            ),
        })?;
    Ok(files
        .iter()
        .map(|f| {
            let action = Action::File(FileArgs {
                path: f.path.clone(),
                content: f.content.clone(),
                mode: f.mode,
                owner: "root".into(),
                group: "root".into(),
                backup: false,
            });
            (format!("{task} ({})", file_name(&f.path)), action)
        })
        .collect())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The manifest file, then `kubectl apply` guarded by a stamp named after the manifest's
/// sha256: applied once per distinct manifest.
pub(crate) fn cni_manifest(
    spec: &CniManifestSpec,
    task: &str,
    cluster: &ClusterContext,
    host: &HostContext,
) -> Result<Vec<(String, Action)>> {
    let k = kubernetes(cluster, task)?;
    let content = match &k.cni_manifest {
        Some(own) => own.clone(),
        None => render(&spec.template, cluster, host, None)?,
    };
    Ok(apply_manifest(task, &spec.path, content))
}

/// A manifest file, then `kubectl apply` of it on the init node guarded by a stamp named
/// after the manifest's sha256: applied once per distinct manifest, so a re-run applies
/// nothing and reports unchanged.
pub(crate) fn apply_manifest(
    task: &str,
    path: &std::path::Path,
    content: String,
) -> Vec<(String, Action)> {
    let digest = hex::encode(Sha256::digest(content.as_bytes()));
    let stamp = format!("{CNI_STAMP_DIR}/{}", &digest[..16]);
    let apply = format!(
        "kubectl --kubeconfig {ADMIN_CONF} apply --server-side --force-conflicts -f {} && mkdir -p {CNI_STAMP_DIR} && touch {stamp}",
        path.display()
    );
    vec![
        (
            format!("{task} (manifest)"),
            Action::File(FileArgs {
                path: path.to_path_buf(),
                content,
                mode: 0o600,
                owner: "root".into(),
                group: "root".into(),
                backup: true,
            }),
        ),
        (
            format!("{task} (apply)"),
            Action::Command(CommandArgs {
                argv: vec!["/bin/sh".into(), "-c".into(), apply],
                creates: Some(PathBuf::from(stamp)),
                unless: None,
                env: Default::default(),
                redact: Vec::new(),
                watch: Vec::new(),
            }),
        ),
    ]
}

/// Where `refresh_join_secrets` finds this operation's token and certificate key: the init
/// configuration rendered again (a file task before it), so neither secret is on a command
/// line, and `upload-certs` sees the cluster's etcd settings (with external etcd it must also
/// upload the etcd client certificates).
pub const REFRESH_CONFIG: &str = "/etc/kubernetes/kubegrid/kubeadm-refresh.yaml";

/// A bootstrap token for this operation's joins and the control-plane certificates uploaded
/// again under this operation's key (kubeadm deletes them after two hours). The playbook
/// removes [`REFRESH_CONFIG`] afterwards in a task marked `always`, so it goes even when
/// one of these fails.
pub(crate) fn refresh_join_secrets(
    task: &str,
    cluster: &ClusterContext,
) -> Result<Vec<(String, Action)>> {
    let k = kubernetes(cluster, task)?;
    let command = |argv: &[&str]| {
        Action::Command(CommandArgs {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            creates: None,
            unless: None,
            env: Default::default(),
            redact: k.join.redactions(),
            watch: Vec::new(),
        })
    };
    Ok(vec![
        (
            format!("{task} (token)"),
            command(&["kubeadm", "token", "create", "--config", REFRESH_CONFIG]),
        ),
        (
            format!("{task} (certificates)"),
            command(&[
                "kubeadm",
                "init",
                "phase",
                "upload-certs",
                "--upload-certs",
                "--config",
                REFRESH_CONFIG,
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use kubegrid_agent::protocol::Action;
    use semver::Version;

    use super::*;
    use crate::kubernetes::{EtcdContext, JoinSecrets};

    fn cluster(own_cni: Option<&str>) -> ClusterContext {
        let mut c = ClusterContext::new("c", "1.7").unwrap();
        c.kubernetes = Some(KubernetesContext {
            version: Version::new(1, 31, 4),
            kubeadm_api: "kubeadm.k8s.io/v1beta4".into(),
            endpoint_host: "10.0.0.10".into(),
            endpoint_port: 6443,
            vip: None,
            pod_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.96.0.0/12".into(),
            dns_domain: "cluster.local".into(),
            cni: if own_cni.is_some() { "none" } else { "cilium" }.into(),
            cni_manifest: own_cni.map(String::from),
            etcd: EtcdContext::stacked(),
            init_node: "cp-1".into(),
            initialized: false,
            joins_pending: true,
            cert_validity_hours: 8760,
            ca_validity_hours: 87600,
            cert_validity_secs: 8760 * 3600,
            ca_validity_secs: 87600 * 3600,
            join: JoinSecrets {
                token: "abcdef.0123456789abcdef".into(),
                certificate_key: "ab".repeat(32),
                ca_cert_hash: "sha256:00".into(),
            },
            kube_vip_image: crate::kubernetes::KUBE_VIP_IMAGE.into(),
        });
        c
    }

    fn spec() -> CniManifestSpec {
        CniManifestSpec {
            path: "/etc/kubernetes/kubegrid/cni.yaml".into(),
            template: "cni/cilium.yaml.tera".into(),
        }
    }

    fn host() -> HostContext {
        HostContext {
            name: "cp-1".into(),
            roles: vec!["control-plane".into()],
            address: "10.0.0.11".into(),
            ..Default::default()
        }
    }

    /// The manifest and the stamp the apply is guarded by.
    fn manifest_and_stamp(tasks: &[(String, Action)]) -> (String, PathBuf) {
        let (Action::File(file), Action::Command(apply)) = (&tasks[0].1, &tasks[1].1) else {
            panic!("expected a file then a command: {tasks:?}")
        };
        (file.content.clone(), apply.creates.clone().unwrap())
    }

    #[test]
    fn own_cni_manifest_is_applied_as_given_and_once_per_content() {
        let own = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: my-cni}\n";
        let tasks = cni_manifest(&spec(), "cni", &cluster(Some(own)), &host()).unwrap();
        let (content, stamp) = manifest_and_stamp(&tasks);
        assert_eq!(content, own);
        let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: my-cni-2}\n";
        let tasks2 = cni_manifest(&spec(), "cni", &cluster(Some(other)), &host()).unwrap();
        let (_, stamp2) = manifest_and_stamp(&tasks2);
        assert_ne!(stamp, stamp2, "a changed manifest is applied again");
        let again = cni_manifest(&spec(), "cni", &cluster(Some(own)), &host()).unwrap();
        assert_eq!(manifest_and_stamp(&again).1, stamp, "the same one is not");
    }

    #[test]
    fn rendered_cilium_carries_the_pod_cidr_and_secrets_are_redacted() {
        let tasks = cni_manifest(&spec(), "cni", &cluster(None), &host()).unwrap();
        let (content, _) = manifest_and_stamp(&tasks);
        assert!(content.contains("10.244.0.0/16"));
        let refresh = refresh_join_secrets("join secrets", &cluster(None)).unwrap();
        for (_, action) in &refresh {
            let Action::Command(c) = action else { panic!() };
            assert_eq!(c.redact.len(), 2, "token and certificate key are redacted");
        }
    }
}
