//! Kubeconfigs with embedded credentials, laid out as kubeadm writes `admin.conf`.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    leaf::IssuedCert,
};

/// A kubeconfig for `user` of `cluster_name` at `server_url`, trusting `ca_pem` and
/// authenticating with `client`; the one context is `<user>@<cluster_name>` and is current.
/// The result holds a private key: write it with mode 0600.
pub fn kubeconfig(
    cluster_name: &str,
    server_url: &str,
    ca_pem: &str,
    user: &str,
    client: &IssuedCert,
) -> Result<String> {
    let context = format!("{user}@{cluster_name}");
    let config = Config {
        api_version: "v1",
        clusters: vec![NamedCluster {
            cluster: Cluster {
                certificate_authority_data: STANDARD.encode(ca_pem),
                server: server_url,
            },
            name: cluster_name,
        }],
        contexts: vec![NamedContext {
            context: Context {
                cluster: cluster_name,
                user,
            },
            name: &context,
        }],
        current_context: &context,
        kind: "Config",
        preferences: BTreeMap::new(),
        users: vec![NamedUser {
            name: user,
            user: User {
                client_certificate_data: STANDARD.encode(&client.cert_pem),
                client_key_data: STANDARD.encode(&client.key_pem),
            },
        }],
    };
    serde_yaml::to_string(&config).map_err(|source| Error::RenderKubeconfig {
        cluster: cluster_name.to_owned(),
        user: user.to_owned(),
        source,
    })
}

// Field order follows kubeadm's output (client-go sorts keys alphabetically).
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Config<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    clusters: Vec<NamedCluster<'a>>,
    contexts: Vec<NamedContext<'a>>,
    current_context: &'a str,
    kind: &'a str,
    preferences: BTreeMap<String, String>,
    users: Vec<NamedUser<'a>>,
}

#[derive(Serialize)]
struct NamedCluster<'a> {
    cluster: Cluster<'a>,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster<'a> {
    certificate_authority_data: String,
    server: &'a str,
}

#[derive(Serialize)]
struct NamedContext<'a> {
    context: Context<'a>,
    name: &'a str,
}

#[derive(Serialize)]
struct Context<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: User,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: String,
    client_key_data: String,
}
