//! The engine's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while running an operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TCP connect or SSH handshake failed on every attempt.
    #[error(
        "{host}: cannot connect to {address} after {attempts} attempt(s): {reason}\n  hint: check that the host is up, sshd listens on that port and no firewall drops the traffic"
    )]
    Connect {
        /// Node name.
        host: String,
        /// address:port.
        address: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The host presented a different key from the one pinned on first contact.
    #[error(
        "{host}: host key for {address} changed: pinned {pinned}, offered {offered}; refusing to connect\n  hint: if the host was really reinstalled, accept the new key deliberately with: kubegrid host-key accept {host} --cluster {cluster} --fingerprint {offered}"
    )]
    HostKeyChanged {
        /// Cluster name.
        cluster: String,
        /// Node name.
        host: String,
        /// address:port.
        address: String,
        /// The pinned fingerprint.
        pinned: String,
        /// The fingerprint offered now.
        offered: String,
    },
    /// Every configured authentication method was refused.
    #[error(
        "{host}: authentication as {user} refused (tried {tried})\n  hint: check the user, that the public key is in ~{user}/.ssh/authorized_keys, or the password"
    )]
    Auth {
        /// Node name.
        host: String,
        /// Login user.
        user: String,
        /// Methods tried.
        tried: String,
    },
    /// A private key file could not be read or parsed.
    #[error("{host}: cannot load private key {path}: {reason}")]
    LoadKey {
        /// Node name.
        host: String,
        /// Key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A private key file that cannot work, found before connecting.
    #[error("{host}: private key file {path} {problem}\n  hint: {hint}")]
    KeyFile {
        /// Node name.
        host: String,
        /// Key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What to do.
        hint: String,
    },
    /// An encrypted key without its passphrase.
    #[error(
        "{host}: private key {path} is encrypted and ${var} is not set\n  hint: export {var} with the key's passphrase"
    )]
    KeyPassphrase {
        /// Node name.
        host: String,
        /// Key file.
        path: PathBuf,
        /// The variable to set.
        var: &'static str,
    },
    /// Password auth was asked for but its variable is unset.
    #[error("{host}: ssh.passwordEnv names ${var}, which is not set")]
    PasswordEnv {
        /// Node name.
        host: String,
        /// The variable.
        var: String,
    },
    /// The connection dropped or a channel could not be opened.
    #[error("{host}: connection lost: {reason}")]
    ConnectionLost {
        /// Node name.
        host: String,
        /// Why.
        reason: String,
    },
    /// A certificates operation cannot begin or go on (another rotation in progress, no CA to
    /// start from, no admin certificate in the journal).
    #[error("cluster {cluster}: {message}")]
    Rotation {
        /// Cluster name.
        cluster: String,
        /// Why, with a hint.
        message: String,
    },
    /// The host or agent answered something the engine cannot use.
    #[error("{host}: {message}")]
    Protocol {
        /// Node name.
        host: String,
        /// What was wrong.
        message: String,
    },
    /// No agent binary for a host's architecture. Found while probing, before anything on
    /// any host changed: a failed probe stops the run after the facts phase.
    #[error(
        "{host}: the host is {machine} ({arch}) and there is no kubegrid-agent for {arch}; looked in {looked}\n  hint: add one to the bundle (`kubegrid bundle build --agent kubegrid-agent-{arch}`; docs/agent.md says how to build it for glibc 2.28), or set KUBEGRID_AGENT_DIR to a folder holding kubegrid-agent-{arch}"
    )]
    AgentMissing {
        /// Node name.
        host: String,
        /// What the host's `uname -m` printed.
        machine: String,
        /// Host architecture.
        arch: String,
        /// Where agents were looked for.
        looked: String,
    },
    /// Reading a local file (agent binary, bundle file) failed.
    #[error("cannot read {path}: {source}")]
    ReadLocal {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Compiling the playbook for a host failed.
    #[error("{host}: cannot compile the plan: {source}")]
    Compile {
        /// Node name.
        host: String,
        /// Why (boxed: plan errors are large and this enum is returned everywhere).
        source: Box<kubegrid_plan::Error>,
    },
    /// kubegrid's PKI could not load or issue a certificate.
    #[error("cannot prepare certificate {what}: {source}")]
    Pki {
        /// Which certificate ("kubernetes-ca", "etcd-server-node-1").
        what: String,
        /// Why.
        source: Box<kubegrid_pki::Error>,
    },
    /// A host already has a CA the journal does not hold.
    #[error(
        "{host}: already has a CA at {path}, but the journal {} holds no {ca} for cluster {cluster}; refusing to replace it, which would break every certificate of that cluster\n  hint: run kubegrid with the journal that installed this cluster (--journal), or reset the hosts if the cluster is to be rebuilt",
        journal.display()
    )]
    CaNotInJournal {
        /// Cluster name.
        cluster: String,
        /// The host holding a CA.
        host: String,
        /// Which CA ("kubernetes-ca", "etcd-ca").
        ca: String,
        /// Where the host has it.
        path: String,
        /// The journal in use.
        journal: PathBuf,
    },
    /// The spec changes the etcd members of an installed cluster in a way that would lose
    /// quorum, or (without `--force`) leave an even member count.
    #[error("cluster {cluster}: {message}")]
    MembershipRefused {
        /// Cluster name.
        cluster: String,
        /// The arithmetic, and a hint.
        message: String,
    },
    /// The spec asks `apply` or `plan` for another Kubernetes version than the one the
    /// cluster runs: that is an upgrade, which `kubegrid upgrade` runs node by node.
    #[error(
        "cluster {cluster} runs Kubernetes {installed} and the spec asks for {requested}; apply and plan do not change the version of an installed cluster, so nothing was changed\n  hint: see the upgrade's steps with `kubegrid upgrade plan -f SPEC` and run it with `kubegrid upgrade apply -f SPEC`, or set spec.kubernetesVersion back to {installed}"
    )]
    VersionChangeNeedsUpgrade {
        /// Cluster name.
        cluster: String,
        /// The version installed.
        installed: String,
        /// The version the spec asks for.
        requested: String,
    },
    /// The admin kubeconfig could not be written where the user asked.
    #[error(
        "cannot write the admin kubeconfig to {path}: {source}\n  hint: pick a writable path with --kubeconfig"
    )]
    WriteKubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle registry's push credential could not be made.
    #[error("bundle registry push credential: {reason}")]
    RegistryCredential {
        /// Why.
        reason: String,
    },
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] kubegrid_journal::Error),
    /// A host's boot id could not be read (before or after a controlled reboot).
    #[error("{host}: cannot read the boot id from /proc/sys/kernel/random/boot_id: {detail}")]
    BootId {
        /// Node name.
        host: String,
        /// What was seen instead.
        detail: String,
    },
    /// `systemctl reboot` was refused by the host.
    #[error("{host}: `systemctl reboot` failed (exit {exit}): {stderr}")]
    RebootRefused {
        /// Node name.
        host: String,
        /// Its exit status.
        exit: u32,
        /// The end of its stderr.
        stderr: String,
    },
    /// A rebooted host did not answer with a new boot id in time.
    #[error(
        "{host}: did not come back from the reboot within {timeout_s} s (boot id before the reboot: {old_boot_id}); last seen: {last_seen}\n  hint: look at the host's console; a longer wait is `reboot: {{timeout_seconds: N}}` in the playbook, and applying again continues from here without a second reboot"
    )]
    RebootTimeout {
        /// Node name.
        host: String,
        /// The wait's limit.
        timeout_s: u64,
        /// The boot id the reboot was requested at.
        old_boot_id: String,
        /// The last thing the wait saw.
        last_seen: String,
    },
}

impl Error {
    /// True for failures caused by what the user gave (spec, bundle, keys), not by hosts.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::LoadKey { .. }
                | Error::KeyFile { .. }
                | Error::CaNotInJournal { .. }
                | Error::VersionChangeNeedsUpgrade { .. }
                | Error::MembershipRefused { .. }
                | Error::KeyPassphrase { .. }
                | Error::PasswordEnv { .. }
                | Error::AgentMissing { .. }
        )
    }
}
