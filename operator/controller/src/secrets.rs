//! Secrets the operator reads (the SSH key, the bundle's public key) and writes (the workload
//! cluster's admin kubeconfig).
//!
//! Keys read from Secrets are written to files under the work directory, mode 0600, because
//! the engine's SSH client and bundle verifier take files. In the chart that directory is an
//! in-memory emptyDir, so the keys never reach a disk.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use kubegrid_api::Cluster;

use crate::error::{Error, Result};

/// The key of the bundle public key in its Secret (any single key is taken too).
pub const BUNDLE_KEY: &str = "public-key";
/// The key of the kubeconfig in `<cluster>-kubeconfig`, as Cluster API names it.
pub const KUBECONFIG_KEY: &str = "value";
/// Field manager for server-side apply.
pub const MANAGER: &str = "kubegrid-operator";

/// The name of the Secret that holds a Cluster's admin kubeconfig.
pub fn kubeconfig_secret_name(cluster: &str) -> String {
    format!("{cluster}-kubeconfig")
}

/// Reads `key` of Secret `name` (in the Cluster's namespace); `None` for `key` takes the only
/// key the Secret has. The error says what is missing and how to create it.
pub async fn read(
    secrets: &Api<Secret>,
    cluster: &str,
    name: &str,
    key: Option<&str>,
    what: &str,
) -> Result<Vec<u8>> {
    let missing = |reason: String, hint: String| Error::ReadSecret {
        cluster: cluster.to_string(),
        reason,
        hint,
    };
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("read Secret {name}")))?
        .ok_or_else(|| {
            missing(
                format!("Secret {name} with the {what} does not exist"),
                format!(
                    "kubectl -n {} create secret generic {name} --from-file={}=FILE",
                    secrets.namespace().unwrap_or("default"),
                    key.unwrap_or(BUNDLE_KEY)
                ),
            )
        })?;
    let data = secret.data.unwrap_or_default();
    let found = match key {
        Some(k) => data.get(k),
        None if data.len() == 1 => data.values().next(),
        None => data.get(BUNDLE_KEY),
    };
    match found {
        Some(ByteString(bytes)) if !bytes.is_empty() => Ok(bytes.clone()),
        _ => Err(missing(
            format!(
                "Secret {name} has no non-empty key `{}` with the {what} (it has: {})",
                key.unwrap_or(BUNDLE_KEY),
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            format!(
                "add the key: kubectl -n {ns} create secret generic {name} --from-file={}=FILE --dry-run=client -o yaml | kubectl apply -f -",
                key.unwrap_or(BUNDLE_KEY),
                ns = secrets.namespace().unwrap_or("default"),
            ),
        )),
    }
}

/// Writes `bytes` to `dir/name`, mode 0600, replacing it atomically.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    let io = |source| Error::WriteFile {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    // OpenSSH key parsers want the final newline that some `--from-literal` Secrets lose.
    if !bytes.ends_with(b"\n") {
        file.write_all(b"\n").map_err(io)?;
    }
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// Creates or updates Secret `<cluster>-kubeconfig`, owned by the Cluster so it goes when the
/// Cluster does.
pub async fn put_kubeconfig(secrets: &Api<Secret>, cluster: &Cluster, text: &str) -> Result<()> {
    let name = kubeconfig_secret_name(&cluster.name_any());
    let owner = OwnerReference {
        api_version: Cluster::api_version(&()).into_owned(),
        kind: Cluster::kind(&()).into_owned(),
        name: cluster.name_any(),
        uid: cluster.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: cluster.namespace(),
            labels: Some(BTreeMap::from([(
                "kubegrid.io/cluster".to_string(),
                cluster.name_any(),
            )])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some("kubegrid.io/kubeconfig".into()),
        data: Some(BTreeMap::from([(
            KUBECONFIG_KEY.to_string(),
            ByteString(text.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).map_err(|e| Error::Engine {
        cluster: cluster.name_any(),
        reason: format!("encoding Secret {name}: {e}"),
    })?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    secrets
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(value),
        )
        .await
        .map(drop)
        .map_err(Error::kube(format!("write Secret {name}")))
}

/// Removes the Cluster's ownership of its kubeconfig Secret, so that deleting the Cluster
/// (deletionPolicy Orphan: the hosts keep running) does not garbage-collect the only admin
/// credential of a live cluster. A missing Secret is fine.
pub async fn disown_kubeconfig(client: &kube::Client, cluster: &Cluster) -> Result<()> {
    let api: Api<Secret> =
        Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let name = kubeconfig_secret_name(&cluster.name_any());
    let patch = serde_json::json!({"metadata": {"ownerReferences": null}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("keep Secret {name}"))(e)),
    }
}
