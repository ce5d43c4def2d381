//! Semantic validation: every rule that the schema cannot express, checked before any host
//! is contacted. All problems are collected, so one run shows everything to fix.

mod certificates;
mod confine;
pub(crate) mod gpu;
mod names;
mod network;
mod nodes;
mod registry;
pub(crate) mod runtime;
pub(crate) mod serving;
mod update;
mod upgrade;

use std::{io::ErrorKind, net::IpAddr};

use crate::{
    Error, Manifest, Problem, Result, SourceLine,
    cluster::{ContainerRuntimeSpec, ControlPlaneEndpoint, NetworkSpec},
    ssh::{BastionSpec, SshSpec},
    text::{EXCERPT_CHARS, excerpt},
    version::{
        SUPPORTED_CONTAINERD_LINES, kubernetes_version_expectation, parse_kubernetes_version,
    },
};

/// Who will act on the spec, which changes what can be checked and what counts as SSH
/// credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidateFor {
    /// The `kubegrid` CLI on this machine: key files and bundle paths must exist here,
    /// password variables must be set, and Secret references are unusable.
    Cli,
    /// The operator in a cluster: Secret references count as credentials, and fields that
    /// name a file or an environment variable are refused, since they would be the operator
    /// pod's own (see [`Manifest::check_confined`]).
    Operator,
}

impl Manifest {
    /// Checks every semantic rule and returns [`Error::Invalid`] listing all problems.
    ///
    /// etcd membership: Nodes with role `etcd` are the members; when no Node has that
    /// role, etcd is stacked on the control-plane Nodes and they are the members. Either
    /// way the count must be odd, since an even count tolerates no more failures than the
    /// odd count below it.
    pub fn validate(&self, target: ValidateFor) -> Result<()> {
        self.validate_checked(target, false)
    }

    /// [`Manifest::validate`] for a cluster that is already installed: every rule but the
    /// odd etcd member count, since a change of an installed cluster's members is checked
    /// against its running members instead (quorum, and an even count only when forced).
    pub fn validate_installed(&self, target: ValidateFor) -> Result<()> {
        self.validate_checked(target, true)
    }

    fn validate_checked(&self, target: ValidateFor, installed: bool) -> Result<()> {
        let mut check = Checker {
            manifest: self,
            target,
            installed,
            problems: Vec::new(),
        };
        check.cluster();
        check.names();
        check.nodes();
        check.topology();
        check.credentials();
        check.confinement();
        if check.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                problems: check.problems,
            })
        }
    }
}

/// The resource a problem is about.
#[derive(Clone)]
struct Subject {
    resource: String,
    location: Option<SourceLine>,
}

struct Checker<'a> {
    manifest: &'a Manifest,
    target: ValidateFor,
    /// The cluster is installed: its etcd member count is the membership rules' business.
    installed: bool,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(
        &mut self,
        subject: &Subject,
        field: &str,
        seen: impl Into<String>,
        expected: impl Into<String>,
    ) {
        self.problems.push(Problem {
            location: self.manifest.locate(subject.location.as_ref(), field),
            resource: subject.resource.clone(),
            field: field.to_string(),
            seen: seen.into(),
            expected: expected.into(),
        });
    }

    fn cluster_subject(&self) -> Subject {
        Subject {
            resource: format!("Cluster/{}", self.manifest.name()),
            location: self.manifest.cluster_location(),
        }
    }

    fn cluster(&mut self) {
        let at = self.cluster_subject();
        let spec = &self.manifest.cluster().spec;
        if let Err(seen) = parse_kubernetes_version(&spec.kubernetes_version) {
            self.report(
                &at,
                "spec.kubernetesVersion",
                seen,
                kubernetes_version_expectation(),
            );
        }
        self.endpoint(&at, &spec.control_plane_endpoint);
        self.network(&at, &spec.network);
        self.network_sizes(&at);
        self.runtime(&at, &spec.container_runtime);
        self.etcd_and_upgrade(&at);
        self.default_runtime(&at);
        self.gpu(&at);
        self.serving(&at);
        self.bundle(&at);
        self.bundle_registry(&at);
        self.ssh(&at, &spec.ssh);
        self.certificates(&at);
        self.cni_manifest(&at);
    }

    /// A CLI run reads the user's CNI manifest from disk and applies it on the init host, so
    /// it must be a regular file of Kubernetes objects now.
    fn cni_manifest(&mut self, at: &Subject) {
        let Some(raw) = &self.manifest.cluster().spec.network.cni_manifest else {
            return;
        };
        if self.target != ValidateFor::Cli {
            return;
        }
        let path = self.manifest.resolve_path(raw);
        self.cni_file(at, raw, &path);
    }

    fn endpoint(&mut self, at: &Subject, endpoint: &ControlPlaneEndpoint) {
        const FIELD: &str = "spec.controlPlaneEndpoint";
        match (&endpoint.address, &endpoint.vip) {
            (None, None) => self.report(
                at,
                FIELD,
                "neither address nor vip",
                "exactly one of address or vip",
            ),
            (Some(address), Some(vip)) => self.report(
                at,
                FIELD,
                format!("both address `{address}` and vip `{vip}`"),
                "exactly one of address or vip",
            ),
            (Some(address), None) => {
                self.address(at, &format!("{FIELD}.address"), address);
            }
            (None, Some(vip)) => {
                if vip.parse::<IpAddr>().is_err() {
                    self.report(
                        at,
                        &format!("{FIELD}.vip"),
                        format!("`{vip}`, which is not an IP address"),
                        "an IP address that kube-vip claims on a control-plane Node",
                    );
                }
            }
        }
        self.port(at, &format!("{FIELD}.port"), endpoint.port);
    }

    fn network(&mut self, at: &Subject, network: &NetworkSpec) {
        let (pod, service) = (network.pod_cidr, network.service_cidr);
        for (field, net) in [
            ("spec.network.podCIDR", pod),
            ("spec.network.serviceCIDR", service),
        ] {
            if net.trunc() != net {
                self.report(
                    at,
                    field,
                    format!("`{net}`, which has host bits set"),
                    format!("the network address `{}`", net.trunc()),
                );
            }
        }
        let family = |net: ipnet::IpNet| if net.addr().is_ipv4() { "IPv4" } else { "IPv6" };
        if family(pod) != family(service) {
            self.report(
                at,
                "spec.network",
                format!(
                    "podCIDR `{pod}` is {} and serviceCIDR `{service}` is {}",
                    family(pod),
                    family(service)
                ),
                "both IPv4 or both IPv6",
            );
        } else if pod.trunc().contains(&service.trunc()) || service.trunc().contains(&pod.trunc()) {
            self.report(
                at,
                "spec.network.serviceCIDR",
                format!("`{service}`, which overlaps podCIDR `{pod}`"),
                "a range that shares no address with podCIDR",
            );
        }
        if !crate::cluster::SUPPORTED_CNIS.contains(&network.cni.as_str()) {
            self.report(
                at,
                "spec.network.cni",
                format!("`{}`", network.cni),
                "cilium, or none with your own manifest in spec.network.cniManifest",
            );
        } else if network.cni == "none"
            && network.cni_manifest.is_none()
            && network.cni_manifest_ref.is_none()
        {
            let expected = match self.target {
                ValidateFor::Cli => {
                    "the path of your CNI's manifest, applied on the first control-plane Node"
                }
                ValidateFor::Operator => {
                    "cniManifestRef naming the ConfigMap key that holds your CNI's manifest"
                }
            };
            self.report(
                at,
                "spec.network.cniManifest",
                "no manifest while cni is none",
                expected,
            );
        }
    }

    fn runtime(&mut self, at: &Subject, runtime: &ContainerRuntimeSpec) {
        let version = &runtime.containerd.version;
        if !SUPPORTED_CONTAINERD_LINES.contains(&version.as_str()) {
            self.report(
                at,
                "spec.containerRuntime.containerd.version",
                format!("`{version}`"),
                format!(
                    "a release line, one of {} (the bundle pins the patch release)",
                    SUPPORTED_CONTAINERD_LINES.join(", ")
                ),
            );
        }
        if runtime.runtimes.is_empty() {
            self.report(
                at,
                "spec.containerRuntime.runtimes",
                "an empty list",
                "at least one runtime, usually runc",
            );
        }
        for (i, name) in runtime.runtimes.iter().enumerate() {
            if runtime.runtimes[..i].contains(name) {
                self.report(
                    at,
                    &format!("spec.containerRuntime.runtimes[{i}]"),
                    format!("`{name}` a second time"),
                    "each runtime listed once",
                );
            }
        }
        if !runtime.runtimes.contains(&runtime.default_runtime) {
            let listed: Vec<&str> = runtime.runtimes.iter().map(|r| r.as_str()).collect();
            self.report(
                at,
                "spec.containerRuntime.defaultRuntime",
                format!(
                    "`{}`, which runtimes does not list",
                    runtime.default_runtime
                ),
                format!("one of runtimes: [{}]", listed.join(", ")),
            );
        }
        if runtime
            .sandbox_image
            .as_ref()
            .is_some_and(|i| i.trim().is_empty())
        {
            self.report(
                at,
                "spec.containerRuntime.sandboxImage",
                "an empty string",
                "an image reference, or no field to use the bundle's pause image",
            );
        }
        for (i, mirror) in runtime.registry_mirrors.iter().enumerate() {
            let field = format!("spec.containerRuntime.registryMirrors[{i}]");
            if mirror.registry.trim().is_empty() || mirror.registry.contains('/') {
                self.report(
                    at,
                    &format!("{field}.registry"),
                    format!("`{}`", mirror.registry),
                    "a registry host such as docker.io",
                );
            }
            let scheme_ok = ["http://", "https://"]
                .iter()
                .any(|s| mirror.endpoint.len() > s.len() && mirror.endpoint.starts_with(s));
            if !scheme_ok {
                self.report(
                    at,
                    &format!("{field}.endpoint"),
                    format!("`{}`", mirror.endpoint),
                    "an http:// or https:// URL",
                );
            }
        }
    }

    fn bundle(&mut self, at: &Subject) {
        let Some(bundle) = &self.manifest.cluster().spec.bundle else {
            return;
        };
        const FIELD: &str = "spec.bundle.source";
        let source = bundle.source.as_str();
        if let Some(rest) = source.strip_prefix("file://") {
            if !rest.starts_with('/') {
                self.report(
                    at,
                    FIELD,
                    format!("`{source}`"),
                    "a file:// URL with an absolute path (file:///srv/bundle), or a plain path",
                );
                return;
            }
        } else if source.contains("://") {
            self.report(
                at,
                FIELD,
                format!("`{source}`, a URL kubegrid cannot fetch"),
                "a local path or a file:// URL",
            );
            return;
        } else if source.trim().is_empty() {
            self.report(at, FIELD, "an empty string", "a bundle path");
            return;
        }
        if let Some(key) = &bundle.public_key_ref
            && key.name.trim().is_empty()
        {
            self.report(
                at,
                "spec.bundle.publicKeyRef.name",
                "an empty string",
                "the name of a Secret",
            );
        }
        if self.target == ValidateFor::Cli
            && let Some(dir) = self.manifest.bundle_dir()
            && !dir.exists()
        {
            self.report(
                at,
                FIELD,
                format!(
                    "`{source}`, which resolves to {}, which does not exist",
                    dir.display()
                ),
                "an existing bundle",
            );
        }
    }

    fn ssh(&mut self, at: &Subject, ssh: &SshSpec) {
        if ssh.user.trim().is_empty() {
            self.report(at, "spec.ssh.user", "an empty string", "a login user name");
        }
        self.port(at, "spec.ssh.port", ssh.port);
        if let Some(file) = &ssh.private_key_file {
            self.key_file(at, "spec.ssh.privateKeyFile", file);
        }
        if let Some(var) = &ssh.password_env {
            self.password_env(at, "spec.ssh.passwordEnv", var);
        }
        if let Some(secret) = &ssh.private_key_secret_ref
            && secret.name.trim().is_empty()
        {
            self.report(
                at,
                "spec.ssh.privateKeySecretRef.name",
                "an empty string",
                "the name of a Secret",
            );
        }
        if let Some(bastion) = &ssh.bastion {
            self.bastion(at, "spec.ssh.bastion", bastion);
        }
    }

    fn bastion(&mut self, at: &Subject, field: &str, bastion: &BastionSpec) {
        self.address(at, &format!("{field}.address"), &bastion.address);
        self.port(at, &format!("{field}.port"), bastion.port);
        if bastion.user.trim().is_empty() {
            self.report(
                at,
                &format!("{field}.user"),
                "an empty string",
                "a login user name",
            );
        }
        if let Some(file) = &bastion.private_key_file {
            self.key_file(at, &format!("{field}.privateKeyFile"), file);
        }
    }

    /// Whether `address` is an IP address or a host name; reports it when not.
    fn address(&mut self, at: &Subject, field: &str, address: &str) -> bool {
        let seen = if address.trim().is_empty() {
            "an empty string".to_string()
        } else if address.chars().any(char::is_whitespace) {
            format!(
                "`{}`, which contains whitespace",
                excerpt(address, EXCERPT_CHARS)
            )
        } else if let Err(why) = names::host(address) {
            format!("`{}`, {why}", excerpt(address, EXCERPT_CHARS))
        } else {
            return true;
        };
        self.report(
            at,
            field,
            seen,
            "an IP address (IPv6 without brackets) or a DNS name such as node-1.example.com",
        );
        false
    }

    fn port(&mut self, at: &Subject, field: &str, port: u16) {
        if port == 0 {
            self.report(at, field, "0", "a port from 1 to 65535");
        }
    }

    /// A key file must be a regular file this process can open (CLI only).
    fn key_file(&mut self, at: &Subject, field: &str, raw: &str) {
        if self.target != ValidateFor::Cli {
            return;
        }
        let path = self.manifest.resolve_path(raw);
        let shown = if path.as_os_str() == raw {
            format!("`{raw}`")
        } else {
            format!("`{raw}` ({})", path.display())
        };
        let seen = match std::fs::metadata(&path) {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                format!("{shown}, which does not exist")
            }
            Err(err) => format!("{shown}, which cannot be read: {err}"),
            Ok(meta) if !meta.is_file() => format!("{shown}, which is not a regular file"),
            Ok(_) => match std::fs::File::open(&path) {
                Ok(_) => return,
                Err(err) => format!("{shown}, which cannot be read: {err}"),
            },
        };
        self.report(
            at,
            field,
            seen,
            "a readable private key file (relative paths start at the spec file's directory)",
        );
    }

    fn password_env(&mut self, at: &Subject, field: &str, var: &str) {
        // The operator refuses the field whatever it names (`confinement`).
        if self.target != ValidateFor::Cli {
            return;
        }
        let valid = !var.is_empty()
            && !var.starts_with(|c: char| c.is_ascii_digit())
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.report(
                at,
                field,
                format!("`{var}`"),
                "an environment variable name such as KUBEGRID_SSH_PASSWORD",
            );
        } else if std::env::var_os(var).is_none() {
            self.report(
                at,
                field,
                format!("`{var}`, which is not set in kubegrid's environment"),
                "the name of a set environment variable that holds the password",
            );
        }
    }
}
