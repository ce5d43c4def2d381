//! **STAND-IN** for Kubernetes' `kubeadm`, `kubelet`, `kubectl` and `crictl`, for kubegrid's
//! lab e2e tests only. This is **not upstream Kubernetes** and kubegrid itself never runs it:
//! no package registry reachable here provides Kubernetes 1.3x binaries, so the e2e bundle
//! (`e2e/standin-bundle.sh`) installs this one multi-call binary under those four names, and
//! product bundles never contain it.
//!
//! It picks the program to stand in for from argv[0]'s file name (`kubeadm`, `kubelet`,
//! `kubectl`, `crictl`), or from the first argument when run as `kubegrid-standin NAME ...`.
//! Every invocation:
//! - appends one JSON line to `/var/log/kubegrid-standins/invocations.jsonl` (`standin`,
//!   `version` (the one this build claims), `argv`, `unixNanos`, `host`, `config`, `ok`, `error`,
//!   `warnings`), with `O_APPEND` in one
//!   write, so the e2e tests can assert order and arguments across hosts;
//! - validates its input the way the real program would reject it (kubeadm: the config's API
//!   version for the Kubernetes version, required documents and fields, CIDRs, endpoints,
//!   join discovery, external etcd files; upgrade: kubeadm's version policy and external etcd
//!   version) and exits non-zero with a clear message;
//! - simulates only the file effects kubegrid's playbook relies on (the static pod manifests
//!   with the control plane's version in their image tags and kubeadm's certificate and
//!   kubeconfig flags, rewritten by `kubeadm upgrade apply`/`node`, all removed by `kubeadm
//!   reset`); it starts no control plane;
//! - writes kubeadm's certificates as upstream's `certs` and `kubeconfig` phases do
//!   (`kubeadm init`, and a control-plane `join` when `/etc/kubernetes/pki/ca.crt` and `ca.key`
//!   are on the host): apiserver, apiserver-kubelet-client, front-proxy CA and client, sa key
//!   pair, with stacked etcd etcd's CA, server, peer and healthcheck-client and
//!   apiserver-etcd-client, all under the CA on the host (generated when absent), valid for
//!   `certificateValidityPeriod` (else one year) and never past their CA; a valid pair on
//!   disk is kept. admin, super-admin, controller-manager, scheduler and kubelet kubeconfigs
//!   carry embedded credentials. Keys are ECDSA P-256 (upstream's default is RSA 2048, which
//!   the ring provider cannot generate). A joining worker's kubelet.conf holds no client
//!   credentials (upstream's come from TLS bootstrap; the stand-in has no cluster to sign);
//! - `kubeadm certs check-expiration` prints kubeadm's tables from the files on the host, and
//!   `kubeadm certs renew NAME|all` re-signs the present leaves under the CA on the host,
//!   keeping their subject, SANs and key;
//! - the kubelet serves its HTTPS port 10250 with its serving certificate
//!   (`/var/lib/kubelet/pki/kubelet.crt`, self-signed `<hostname>@<unix time>` when missing)
//!   answering /healthz, and, while `/etc/kubernetes/manifests/kube-apiserver.yaml` exists, a
//!   STAND-IN kube-apiserver on the manifest's `--secure-port` (default 6443): TLS with its
//!   `--tls-cert-file`/`--tls-private-key-file`, clients verified against any CA of its
//!   `--client-ca-file` bundle, /readyz, /livez and /healthz answered `ok`, the three files
//!   read on every handshake (kube-apiserver reloads them too), the port closed while the
//!   manifest is moved away. Its log lines start with `[STAND-IN kube-apiserver]`.
//!
//! Every line it prints to stderr starts with `[STAND-IN <name>]`; version output says
//! "STAND-IN ... not upstream". Where the real program prints a value for scripts to read
//! (`kubeadm version -o short`, `kubeadm token create`), stdout carries the bare value and the
//! label goes to stderr.
//!
//! The Kubernetes version it claims is fixed at build time: `KUBEGRID_STANDIN_K8S_VERSION`
//! (default `v1.31.4`); `kubeadm init` validates against the config's `kubernetesVersion` when
//! the config names one. `KUBEGRID_STANDIN_ROOT`, when set, prefixes every host path it reads
//! or writes (the log included) and keeps it from touching systemd, so it can be exercised
//! outside a lab host; lab hosts never set it.

mod checks;
mod kubeadm;
mod kubeadm_config;
mod kubectl;
mod kubelet;
mod pki;
mod record;
mod tls;
mod yaml;

use std::{
    io,
    path::{Path, PathBuf},
    process::ExitCode,
};

use checks::KubeVersion;
use record::Record;

/// The Kubernetes version this build claims, from the build environment.
const BUILD_VERSION: &str = match option_env!("KUBEGRID_STANDIN_K8S_VERSION") {
    Some(v) => v,
    None => "v1.31.4",
};

/// Which program this invocation stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `kubeadm`.
    Kubeadm,
    /// `kubelet`.
    Kubelet,
    /// `kubectl`.
    Kubectl,
    /// `crictl`.
    Crictl,
}

impl Tool {
    fn from_name(name: &str) -> Option<Tool> {
        match name {
            "kubeadm" => Some(Tool::Kubeadm),
            "kubelet" => Some(Tool::Kubelet),
            "kubectl" => Some(Tool::Kubectl),
            "crictl" => Some(Tool::Crictl),
            _ => None,
        }
    }

    /// The program's name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Kubeadm => "kubeadm",
            Tool::Kubelet => "kubelet",
            Tool::Kubectl => "kubectl",
            Tool::Crictl => "crictl",
        }
    }

    /// The label that starts every line this stand-in prints.
    pub fn label(self) -> String {
        format!("[STAND-IN {}]", self.name())
    }

    /// The phrase version output carries.
    pub fn disclaimer(self) -> String {
        format!(
            "STAND-IN {} for kubegrid e2e tests, not upstream Kubernetes",
            self.name()
        )
    }
}

/// What every stand-in needs: which program it is, where the host's files are, its version.
#[derive(Debug)]
pub struct Ctx {
    /// The program stood in for.
    pub tool: Tool,
    /// `/`, or `KUBEGRID_STANDIN_ROOT` when exercised outside a lab host.
    pub root: PathBuf,
    /// The Kubernetes version this build claims.
    pub version: KubeVersion,
}

impl Ctx {
    /// A host path (absolute, as the real program would use it) under this context's root.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Whether systemd runs this host and the stand-in may talk to it.
    pub fn systemd(&self) -> bool {
        self.root == Path::new("/") && Path::new("/run/systemd/system").is_dir()
    }

    /// Prints one labelled line to stderr.
    pub fn say(&self, line: &str) {
        eprintln!("{} {line}", self.tool.label());
    }
}

/// Why an invocation failed; the message goes to stderr and into the record's `error`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is not one the stand-in (or the real program) accepts.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a host file failed.
    #[error("failed to {what} {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "read".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The input was read but the real program would reject it.
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for an [`Error::Io`] constructor.
pub fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let invoked = argv
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let (tool, args) = match Tool::from_name(&invoked) {
        Some(tool) => (tool, &argv[1..]),
        None => match argv.get(1).and_then(|n| Tool::from_name(n)) {
            Some(tool) => (tool, &argv[2..]),
            None => {
                eprintln!(
                    "[STAND-IN kubegrid-standin] usage: kubegrid-standin kubeadm|kubelet|kubectl|crictl ARGS..., \
                     or install it under one of those names; it is a test stand-in, not upstream Kubernetes"
                );
                return ExitCode::from(2);
            }
        },
    };
    let Some(version) = KubeVersion::parse(BUILD_VERSION) else {
        eprintln!(
            "{} built with KUBEGRID_STANDIN_K8S_VERSION={BUILD_VERSION:?}, which is not a vMAJOR.MINOR.PATCH version; rebuild it",
            tool.label()
        );
        return ExitCode::from(2);
    };
    let root =
        std::env::var_os("KUBEGRID_STANDIN_ROOT").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    let ctx = Ctx {
        tool,
        root,
        version,
    };
    // The record is the e2e tests' evidence, so an invocation that cannot be recorded fails
    // before it changes anything.
    let mut rec = match Record::open(&ctx, &argv) {
        Ok(rec) => rec,
        Err(e) => {
            ctx.say(&format!("cannot record this invocation: {e}"));
            return ExitCode::from(1);
        }
    };
    let result = match tool {
        Tool::Kubeadm => kubeadm::run(&ctx, args, &mut rec),
        Tool::Kubelet => kubelet::run(&ctx, args, &mut rec),
        Tool::Kubectl => kubectl::run_kubectl(&ctx, args, &mut rec),
        Tool::Crictl => kubectl::run_crictl(&ctx, args),
    };
    let code = match &result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.to_string().lines() {
                ctx.say(line);
            }
            ExitCode::from(1)
        }
    };
    if let Err(e) = rec.finish(result.as_ref().err().map(ToString::to_string)) {
        ctx.say(&format!("cannot record this invocation: {e}"));
        return ExitCode::from(1);
    }
    code
}
