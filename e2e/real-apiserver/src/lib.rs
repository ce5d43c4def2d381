//! **Test harness: a real Kubernetes API server** for kubegrid's tests. Never part of the
//! product (`publish = false`; only tests depend on it).
//!
//! [`RealApiServer::start`] runs, on loopback, with a data folder and certificates of its own:
//! - etcd 3.5 (Debian sid's `etcd-server`);
//! - k8s.io/apiextensions-apiserver, built by `build.sh` from Debian's Go packages: the stock
//!   server with discovery at `/apis` turned on (`discovery/main.go`).
//!
//! It serves CRDs and custom resources as kube-apiserver does: structural schemas, CEL with
//! the real cost limits, defaulting, pruning, status and scale subresources, watches,
//! finalizers and server-side apply. It does not serve core v1 (Secrets, Events, Namespaces,
//! Nodes) or coordination.k8s.io (Leases); [`RealApiServer::routed_client`] puts the in-memory
//! fake behind a routing layer ([`route`]) for those. Only client certificates in
//! `system:masters` are authorized, as the admin client this harness hands out has.
//!
//! A test that runs the operator on a routed client and reads the kubegrid objects with the
//! fake's helpers starts a [`mirror`] ([`RealApiServer::mirror`]): it copies the real Clusters
//! and Nodes, unchanged, into the fake's store for the test's assertions and waits (the
//! routing layer never sends kubegrid.io requests to the fake).
//!
//! Deliberate differences from a kube-apiserver, all for want of the core API: the admission
//! plugins that need it (NamespaceLifecycle, webhooks, admission policies) and API priority
//! and fairness are off, so objects may name namespaces that do not exist; readiness is
//! `/readyz` without `informer-sync`, whose Service informer has no core API to list.

mod binaries;
mod error;
pub mod front;
pub mod mirror;
mod process;
pub mod route;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_pki::{Ca, IssuedCert, LeafSpec, Usage};
use tower::Layer;

use crate::process::{PROBE_EVERY, Process, free_port, http_get};
pub use crate::{
    binaries::{Binaries, DEFAULT_DIR, in_ci},
    error::{Error, Result},
    front::{Front, Seen, Tally},
    mirror::Mirror,
    route::{RouteLayer, Routes, Warnings},
};

/// How often a start is retried when a child lost its port to another process.
const START_ATTEMPTS: usize = 3;
/// How long the test bed's certificates are valid.
const VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// The field manager of the harness's server-side applies.
const MANAGER: &str = "kubegrid-test-harness";

/// A running etcd plus API server. Stop it with [`RealApiServer::stop`]; dropping it kills
/// both processes.
pub struct RealApiServer {
    dir: tempfile::TempDir,
    etcd: Process,
    apiserver: Process,
    url: String,
    kubeconfig: PathBuf,
    ca: Ca,
    client: kube::Client,
    binaries: Binaries,
    warnings: Warnings,
}

impl RealApiServer {
    /// Starts the build of [`Binaries::for_test`] for test `test`: `None` when it is missing
    /// outside CI (the test is SKIPPED). Panics, with the processes' logs, when it does not
    /// start.
    pub async fn for_test(test: &str) -> Option<Self> {
        let binaries = Binaries::for_test(test)?;
        eprintln!(
            "{test}: real apiextensions-apiserver and etcd from Debian {} / etcd-server {}",
            binaries
                .package_version("golang-k8s-apiextensions-apiserver-dev")
                .unwrap_or("?"),
            binaries.package_version("etcd-server").unwrap_or("?"),
        );
        match Self::start(binaries).await {
            Ok(server) => Some(server),
            Err(error) => panic!("{test}: the real API server did not start: {error}"),
        }
    }

    /// Starts etcd and the API server from `binaries` on free loopback ports, and waits until
    /// both are ready.
    pub async fn start(binaries: Binaries) -> Result<Self> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(binaries.clone()).await {
                Ok(server) => return Ok(server),
                // A port taken between choosing and binding it ends the child at once.
                Err(error @ Error::Exited { .. }) => last = Some(error),
                Err(other) => return Err(other),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn start_once(binaries: Binaries) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kubegrid-real-apiserver-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "create the data folder",
                path: std::env::temp_dir(),
                source,
            })?;
        let (ca, admin) = certificates(dir.path())?;
        let (client_port, peer_port, secure_port) = (free_port()?, free_port()?, free_port()?);
        let mut etcd = Process::spawn(
            "etcd",
            &binaries.etcd,
            &etcd_args(dir.path(), client_port, peer_port),
            dir.path().join("etcd.log"),
        )?;
        etcd.wait_ready(|| async move {
            let body = http_get(client_port, "/health").await?;
            if body.contains(r#""health":"true""#) {
                Ok(())
            } else {
                Err(body)
            }
        })
        .await?;
        let url = format!("https://127.0.0.1:{secure_port}");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let text = kubegrid_pki::kubeconfig("real-apiserver", &url, ca.cert_pem(), "admin", &admin)
            .map_err(|source| Error::IssueCertificate {
                what: "admin kubeconfig",
                source,
            })?;
        write(&kubeconfig, &text)?;
        let mut apiserver = Process::spawn(
            "apiextensions-apiserver",
            &binaries.apiserver,
            &apiserver_args(dir.path(), client_port, secure_port, &kubeconfig),
            dir.path().join("apiserver.log"),
        )?;
        let client = client_from(&text).await?;
        let probe = client.clone();
        apiserver
            .wait_ready(|| {
                let probe = probe.clone();
                async move {
                    let request = http::Request::get("/readyz?exclude=informer-sync")
                        .body(Vec::new())
                        .expect("static request");
                    match probe.request_text(request).await {
                        Ok(text) if text.trim() == "ok" => Ok(()),
                        Ok(text) => Err(text),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await?;
        Ok(Self {
            dir,
            etcd,
            apiserver,
            url,
            kubeconfig,
            ca,
            client,
            binaries,
            warnings: Warnings::default(),
        })
    }

    /// A client authenticated as `system:masters` (the admin certificate).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The server's URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin kubeconfig file (client certificate in `system:masters`), e.g. for kubectl.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The programs this server runs, and the kubectl of the same build.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The CA that signed the server's certificate and that the server trusts for clients.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// kubectl 1.36 of the build, pointed at this server with the admin kubeconfig.
    pub fn kubectl(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.binaries.kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            // kubectl's discovery cache stays inside the data folder.
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"));
        command
    }

    /// One client whose kubegrid.io and CRD requests go to this server and whose other
    /// requests go to `fake` ([`route`] lists the paths), named `name` on the fake's side
    /// as by [`FakeCluster::client_as`].
    pub fn routed_client(&self, fake: &FakeCluster, name: Option<&str>) -> kube::Client {
        Self::routed_client_of(&self.client, &self.warnings, fake, name)
    }

    /// [`RealApiServer::routed_client`] with `real` as the real server's client, recording
    /// its warnings in `warnings`, for the front's connections, which hold clones of them
    /// rather than the server.
    pub(crate) fn routed_client_of(
        real: &kube::Client,
        warnings: &Warnings,
        fake: &FakeCluster,
        name: Option<&str>,
    ) -> kube::Client {
        let service = RouteLayer::new(real.clone(), Routes::kubegrid())
            .recording(warnings.clone())
            .layer(fake.service(name.map(String::from)));
        kube::Client::new(service, "default")
    }

    /// Starts a [`Mirror`] of `resources` (e.g. [`mirror::kubegrid_resources`]) on this
    /// server into `fake`, after copying what exists now.
    pub async fn mirror(
        &self,
        fake: &FakeCluster,
        resources: Vec<kube::core::ApiResource>,
    ) -> Result<Mirror> {
        Mirror::start(self.client(), fake, resources).await
    }

    /// The `Warning` headers the real server sent to this server's routed clients, e.g. one
    /// for each unknown field it pruned from a write.
    pub fn routed_warnings(&self) -> Vec<String> {
        self.warnings.all()
    }

    /// Where the routed clients (and the [`Front`]'s) record the real server's warnings.
    pub(crate) fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// Applies `crds` (server-side apply) and waits until each is Established.
    pub async fn apply_crds(&self, crds: &[CustomResourceDefinition]) -> Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client());
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(crd),
            )
            .await
            .map_err(|source| Error::Api {
                what: format!("apply of CRD {name}"),
                source,
            })?;
        }
        for crd in crds {
            self.wait_established(crd.metadata.name.as_deref().unwrap_or_default())
                .await?;
        }
        Ok(())
    }

    /// Waits until CRD `name` has the condition Established=True.
    pub async fn wait_established(&self, name: &str) -> Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client());
        let start = std::time::Instant::now();
        loop {
            let crd = api.get(name).await.map_err(|source| Error::Api {
                what: format!("get of CRD {name}"),
                source,
            })?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                return Ok(());
            }
            if start.elapsed() > process::READY_WITHIN {
                return Err(Error::NotEstablished {
                    name: name.to_owned(),
                    seconds: process::READY_WITHIN.as_secs(),
                    conditions: serde_json::to_string(&conditions).unwrap_or_default(),
                });
            }
            // The CRD controller sets the condition within a moment; no event to wait on
            // without a watch, and a get is cheap.
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// The last lines of the API server's log, for a failing test's message.
    pub fn apiserver_log(&self) -> String {
        self.apiserver.log_tail()
    }

    /// Stops the API server, then etcd (SIGTERM, then SIGKILL after a grace period), and
    /// removes the data folder.
    pub async fn stop(self) {
        self.apiserver.stop().await;
        self.etcd.stop().await;
        drop(self.dir);
    }
}

/// A new CA, the server certificate for 127.0.0.1 and the admin client certificate, written
/// into `dir` for the API server; returns the CA and the admin certificate.
fn certificates(dir: &Path) -> Result<(Ca, IssuedCert)> {
    let issue = |what| move |source| Error::IssueCertificate { what, source };
    let ca = Ca::generate("kubegrid-test-apiserver-ca", VALIDITY).map_err(issue("CA"))?;
    let server = ca
        .issue(&LeafSpec {
            common_name: "apiextensions-apiserver".into(),
            organizations: Vec::new(),
            dns_names: vec!["localhost".into()],
            ip_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            usage: Usage::Server,
            validity: VALIDITY,
        })
        .map_err(issue("serving certificate"))?;
    let admin = ca
        .issue(&LeafSpec {
            common_name: "kubegrid-test-admin".into(),
            organizations: vec!["system:masters".into()],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: Usage::Client,
            validity: VALIDITY,
        })
        .map_err(issue("admin client certificate"))?;
    write(&dir.join("ca.crt"), ca.cert_pem())?;
    write(&dir.join("server.crt"), &server.cert_pem)?;
    write(&dir.join("server.key"), &server.key_pem)?;
    Ok((ca, admin))
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: "write a file of the test bed",
        path: path.to_path_buf(),
        source,
    })
}

fn etcd_args(dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name=test".into(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=test={peer}"),
        // A test's data is thrown away with the folder; fsync only slows it down.
        "--unsafe-no-fsync".into(),
        "--log-level=error".into(),
    ]
}

fn apiserver_args(dir: &Path, etcd_port: u16, secure_port: u16, kubeconfig: &Path) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    let kubeconfig = kubeconfig.display().to_string();
    vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={secure_port}"),
        format!("--tls-cert-file={}", file("server.crt")),
        format!("--tls-private-key-file={}", file("server.key")),
        format!("--client-ca-file={}", file("ca.crt")),
        // Delegated authentication and authorization would ask a core API (TokenReview,
        // SubjectAccessReview) that is not there: with the lookup skipped, only client
        // certificates authenticate, and only system:masters (always allowed) is authorized;
        // any other request fails (500) when its review finds no server to ask.
        "--authentication-skip-lookup".into(),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--kubeconfig={kubeconfig}"),
        // These need the core API (namespaces, webhook and policy objects, flow schemas).
        "--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook".into(),
        "--enable-priority-and-fairness=false".into(),
        format!("--cert-dir={}", file("certs")),
    ]
}

async fn client_from(kubeconfig: &str) -> Result<kube::Client> {
    let config = Kubeconfig::from_yaml(kubeconfig).map_err(|e| Error::Client {
        detail: e.to_string(),
    })?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Client {
            detail: e.to_string(),
        })?;
    kube::Client::try_from(config).map_err(|e| Error::Client {
        detail: e.to_string(),
    })
}
