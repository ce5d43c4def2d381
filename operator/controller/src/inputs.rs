//! What an operation takes from the Cluster's namespace besides keys: its own CNI manifest
//! from a ConfigMap (`spec.network.cniManifestRef`) and SSH passwords from Secrets
//! (`ssh.passwordSecretRef`). Both are read by name, in the Cluster's namespace only (the
//! references carry no namespace), and handed to the engine in memory: neither is written to
//! a file, and a password never passes through an environment variable.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, ResourceExt};
use kubegrid_api::{DEFAULT_PASSWORD_KEY, Manifest, Node};
use kubegrid_engine::ssh::Password;

use crate::{
    error::{Error, Result},
    secrets,
};

/// The CNI manifest that `spec.network.cniManifestRef` names, as text; `None` when the
/// Cluster names none.
pub async fn cni_manifest(
    config_maps: &Api<ConfigMap>,
    cluster: &str,
    manifest: &Manifest,
) -> Result<Option<String>> {
    let Some(r) = &manifest.cluster().spec.network.cni_manifest_ref else {
        return Ok(None);
    };
    let ns = config_maps.namespace().unwrap_or("default").to_string();
    let missing = |reason: String, hint: String| Error::ReadConfigMap {
        cluster: cluster.to_string(),
        reason,
        hint,
    };
    let create = format!(
        "kubectl -n {ns} create configmap {} --from-file={}=FILE",
        r.name, r.key
    );
    let map = config_maps
        .get_opt(&r.name)
        .await
        .map_err(Error::kube(format!("read ConfigMap {}", r.name)))?
        .ok_or_else(|| {
            missing(
                format!(
                    "ConfigMap {} with the CNI manifest (spec.network.cniManifestRef) does not exist",
                    r.name
                ),
                create.clone(),
            )
        })?;
    let text = map
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .cloned()
        .or_else(|| {
            map.binary_data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
        });
    match text {
        // The same content rules as a CLI file: a stream of Kubernetes objects, nothing else
        // reaches the init host.
        Some(text) if !text.trim().is_empty() => match kubegrid_api::cni::check_manifest(&text) {
            Ok(()) => Ok(Some(text)),
            Err(problem) => Err(Error::InvalidSpec {
                cluster: cluster.to_string(),
                problems: format!(
                    "spec.network.cniManifestRef: ConfigMap {} key `{}` is not a manifest of \
                     Kubernetes objects: {problem}\n  hint: every YAML document needs apiVersion \
                     and kind",
                    r.name, r.key
                ),
            }),
        },
        _ => {
            let mut keys: Vec<&String> = map.data.iter().flat_map(|d| d.keys()).collect();
            keys.extend(map.binary_data.iter().flat_map(|d| d.keys()));
            Err(missing(
                format!(
                    "ConfigMap {} has no non-empty text key `{}` with the CNI manifest \
                     (spec.network.cniManifestRef; it has: {})",
                    r.name,
                    r.key,
                    keys.iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "{create} --dry-run=client -o yaml | kubectl apply -f -, or name the key \
                     that holds it in cniManifestRef.key"
                ),
            ))
        }
    }
}

/// Each host's SSH password from the Secret its `passwordSecretRef` names (the Node's, or
/// else the Cluster's), by Node name; a Secret named by several hosts is read once. The
/// `leaving` Nodes (deleted, still members) are included where their Secret can be read, so
/// that their hosts can be reached for the reset; theirs is never written to the journal.
pub async fn passwords(
    secrets_api: &Api<Secret>,
    cluster: &str,
    manifest: &Manifest,
    leaving: &[Node],
) -> Result<BTreeMap<String, Password>> {
    let mut read: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let live = manifest
        .hosts()
        .into_iter()
        .map(|h| (h.name, h.password_secret, true));
    let cluster_ref = &manifest.cluster().spec.ssh.password_secret_ref;
    let gone = leaving.iter().map(|n| {
        let own = n
            .spec
            .ssh
            .as_ref()
            .and_then(|s| s.password_secret_ref.clone());
        (n.name_any(), own.or_else(|| cluster_ref.clone()), false)
    });
    for (name, r, required) in live.chain(gone) {
        let Some(r) = r else {
            continue;
        };
        let key = r.key_or(DEFAULT_PASSWORD_KEY).to_string();
        let slot = (r.name.clone(), key.clone());
        if !read.contains_key(&slot) {
            match password(secrets_api, cluster, &r.name, &key).await {
                Ok(text) => {
                    read.insert(slot.clone(), text);
                }
                Err(e) if required => return Err(e),
                Err(e) => {
                    // The removal then fails on authentication, naming the host.
                    tracing::warn!(cluster, node = %name, "password of a leaving Node: {e}");
                    continue;
                }
            }
        }
        out.insert(name, Password::Value(read[&slot].clone()));
    }
    Ok(out)
}

/// The password in `key` of Secret `name`, without the final newline `--from-file` keeps.
async fn password(
    secrets_api: &Api<Secret>,
    cluster: &str,
    name: &str,
    key: &str,
) -> Result<String> {
    let bytes = secrets::read(
        secrets_api,
        cluster,
        name,
        Some(key),
        "SSH password (ssh.passwordSecretRef)",
    )
    .await?;
    let text = String::from_utf8(bytes).map_err(|_| Error::ReadSecret {
        cluster: cluster.to_string(),
        reason: format!("Secret {name} key `{key}` with the SSH password is not UTF-8 text"),
        hint: "store the password as text, e.g. kubectl create secret generic NAME \
               --from-literal=password=..."
            .into(),
    })?;
    let trimmed = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(trimmed.to_string())
}
