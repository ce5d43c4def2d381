//! SSH on russh: connecting with retries, authenticating, pinning host keys, bastions.
//!
//! One [`Connection`] per host lives for a whole operation, so every phase reuses it.

mod exec;
mod handler;
mod keyfile;

use std::{path::PathBuf, sync::Arc, time::Duration};

use russh::{
    client,
    keys::{HashAlg, PrivateKeyWithHashAlg},
};
use tokio::sync::Mutex;
use tracing::debug;

pub use exec::{ExecOutput, Input};
use handler::{KeyCheck, Pinning};
pub use keyfile::{check_key_file, check_key_files, key_is_encrypted};

use crate::error::Error;

/// The environment variable an encrypted private key's passphrase is read from.
pub const PASSPHRASE_ENV: &str = "KUBEGRID_SSH_PASSPHRASE";

/// Where and how to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The cluster the host belongs to: host keys are pinned per cluster and Node name.
    pub cluster: String,
    /// The Node's name: pins and messages are keyed by it.
    pub host: String,
    /// IP address or DNS name.
    pub address: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key file (ed25519, RSA or ECDSA; OpenSSH or PEM).
    pub key_file: Option<PathBuf>,
    /// Where the password for password authentication comes from.
    pub password: Option<Password>,
    /// Run privileged commands through `sudo -n` (non-root users).
    pub sudo: bool,
    /// Jump host to tunnel through.
    pub bastion: Option<Box<SshTarget>>,
}

/// Where a password for password authentication comes from. Its `Debug` never shows a
/// password value.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// An environment variable of this process, named by the spec (the CLI, whose user
    /// owns that environment).
    Env(String),
    /// The password itself, read by the operator from a Secret in the Cluster's namespace;
    /// nothing of the operator's own environment is involved.
    Value(String),
}

impl Password {
    /// The password, read from its variable when it names one.
    pub fn reveal(&self, host: &str) -> Result<String, Error> {
        match self {
            Self::Env(var) => std::env::var(var).map_err(|_| Error::PasswordEnv {
                host: host.to_string(),
                var: var.clone(),
            }),
            Self::Value(value) => Ok(value.clone()),
        }
    }

    /// The variable it names, if it is one.
    pub fn env(&self) -> Option<&str> {
        match self {
            Self::Env(var) => Some(var),
            Self::Value(_) => None,
        }
    }

    /// Where it came from, for messages: `$VAR` or `a Secret`.
    pub fn describe(&self) -> String {
        match self {
            Self::Env(var) => format!("${var}"),
            Self::Value(_) => "a Secret".to_string(),
        }
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(var) => f.debug_tuple("Env").field(var).finish(),
            Self::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

/// Connection behaviour.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Limit for TCP connect plus SSH handshake, per attempt.
    pub connect_timeout: Duration,
    /// Attempts for a connection that is refused or times out (auth and host-key failures are
    /// never retried: trying again cannot fix them).
    pub attempts: u32,
    /// First backoff between attempts; doubled after each.
    pub backoff: Duration,
    /// Keepalive interval; three unanswered keepalives drop the connection.
    pub keepalive: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            connect_timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(500),
            keepalive: Duration::from_secs(5),
        }
    }
}

/// The key a host presented, and whether it was pinned just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// Algorithm name ("ssh-ed25519").
    pub algorithm: String,
    /// OpenSSH-style fingerprint ("SHA256:…").
    pub fingerprint: String,
}

/// Answers whether a presented host key is acceptable; backed by the journal.
pub trait KeyPins: Send + Sync {
    /// The pinned fingerprint for `host`, if any.
    fn pinned(&self, host: &str) -> Option<HostKey>;
}

/// An authenticated SSH connection.
pub struct Connection {
    target: SshTarget,
    handle: Arc<Mutex<client::Handle<KeyCheck>>>,
    key: HostKey,
    // Keeps the bastion's connection alive for as long as the tunnel through it is used.
    _bastion: Option<Box<Connection>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects (through the bastion when there is one), checks the host key against `pins`
    /// and authenticates. Refused or timed-out connects are retried with backoff.
    pub async fn open(
        target: &SshTarget,
        pins: &dyn KeyPins,
        opts: &SshOptions,
    ) -> Result<Connection, Error> {
        let bastion = match &target.bastion {
            Some(b) => Some(Box::new(Box::pin(Connection::open(b, pins, opts)).await?)),
            None => None,
        };
        let mut last = String::new();
        let mut delay = opts.backoff;
        for attempt in 1..=opts.attempts.max(1) {
            match connect_once(target, bastion.as_deref(), pins, opts).await {
                Ok((handle, key)) => {
                    let mut conn = Connection {
                        target: target.clone(),
                        handle: Arc::new(Mutex::new(handle)),
                        key,
                        _bastion: bastion,
                    };
                    conn.authenticate().await?;
                    return Ok(conn);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(why)) => {
                    debug!(host = %target.host, attempt, %why, "connect failed");
                    last = why;
                    if attempt < opts.attempts {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        Err(Error::Connect {
            host: target.host.clone(),
            address: host_port(&target.address, target.port),
            attempts: opts.attempts.max(1),
            reason: last,
        })
    }

    /// The host key this connection was verified with.
    pub fn host_key(&self) -> &HostKey {
        &self.key
    }

    /// The target this connection reaches.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Closes the connection politely.
    pub async fn close(&self) {
        let handle = self.handle.lock().await;
        // A host that already went away cannot be told goodbye; nothing is lost.
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    async fn authenticate(&mut self) -> Result<(), Error> {
        let t = &self.target;
        let mut handle = self.handle.lock().await;
        let mut tried = Vec::new();
        if let Some(path) = &t.key_file {
            let key = load_key(&t.host, path)?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten()
                .or(Some(HashAlg::Sha256));
            let res = handle
                .authenticate_publickey(
                    t.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(|e| self.lost(e))?;
            if res.success() {
                return Ok(());
            }
            tried.push(format!("publickey {}", path.display()));
        }
        if let Some(source) = &t.password {
            let password = source.reveal(&t.host)?;
            let res = handle
                .authenticate_password(t.user.clone(), password)
                .await
                .map_err(|e| self.lost(e))?;
            if res.success() {
                return Ok(());
            }
            tried.push(format!("password from {}", source.describe()));
        }
        Err(Error::Auth {
            host: t.host.clone(),
            user: t.user.clone(),
            tried: if tried.is_empty() {
                "nothing (no key file or password configured)".into()
            } else {
                tried.join(", ")
            },
        })
    }

    fn lost(&self, e: russh::Error) -> Error {
        Error::ConnectionLost {
            host: self.target.host.clone(),
            reason: e.to_string(),
        }
    }
}

enum Attempt {
    Retry(String),
    Fatal(Error),
}

async fn connect_once(
    target: &SshTarget,
    bastion: Option<&Connection>,
    pins: &dyn KeyPins,
    opts: &SshOptions,
) -> Result<(client::Handle<KeyCheck>, HostKey), Attempt> {
    let config = Arc::new(client::Config {
        keepalive_interval: Some(opts.keepalive),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let pinning = Arc::new(std::sync::Mutex::new(Pinning::new(
        target.host.clone(),
        pins.pinned(&target.host),
    )));
    let handler = KeyCheck::new(pinning.clone());
    let connect = async {
        match bastion {
            None => client::connect(config, (target.address.as_str(), target.port), handler).await,
            Some(b) => {
                let handle = b.handle.lock().await;
                let channel = handle
                    .channel_open_direct_tcpip(
                        target.address.clone(),
                        u32::from(target.port),
                        "127.0.0.1",
                        0,
                    )
                    .await?;
                drop(handle);
                client::connect_stream(config, channel.into_stream(), handler).await
            }
        }
    };
    let result = tokio::time::timeout(opts.connect_timeout, connect).await;
    let outcome = pinning.lock().map(|p| p.outcome()).unwrap_or_default();
    match result {
        Err(_) => Err(Attempt::Retry(format!(
            "no SSH handshake within {:?}",
            opts.connect_timeout
        ))),
        Ok(Ok(handle)) => match outcome.accepted {
            Some(key) => Ok((handle, key)),
            None => Err(Attempt::Fatal(Error::Protocol {
                host: target.host.clone(),
                message: "the SSH handshake finished without a host key check".into(),
            })),
        },
        Ok(Err(e)) => match outcome.refused {
            Some((pinned, offered)) => Err(Attempt::Fatal(Error::HostKeyChanged {
                cluster: target.cluster.clone(),
                host: target.host.clone(),
                address: host_port(&target.address, target.port),
                pinned: pinned.fingerprint,
                offered: offered.fingerprint,
            })),
            None => Err(Attempt::Retry(e.to_string())),
        },
    }
}

/// `address:port` for messages and the journal, with an IPv6 address in brackets
/// (`[fd00::1]:22`) so the port reads apart from the address.
pub(crate) fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

fn load_key(host: &str, path: &std::path::Path) -> Result<russh::keys::PrivateKey, Error> {
    let passphrase = std::env::var(PASSPHRASE_ENV).ok();
    russh::keys::load_secret_key(path, passphrase.as_deref()).map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => Error::KeyPassphrase {
            host: host.to_string(),
            path: path.to_path_buf(),
            var: PASSPHRASE_ENV,
        },
        other => Error::LoadKey {
            host: host.to_string(),
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod host_port_tests {
    use super::host_port;

    #[test]
    fn ipv6_addresses_are_bracketed_before_a_port() {
        assert_eq!(host_port("fd00::1", 22), "[fd00::1]:22");
        assert_eq!(host_port("10.0.0.1", 22), "10.0.0.1:22");
        assert_eq!(host_port("node-1.example", 2222), "node-1.example:2222");
    }
}

#[cfg(test)]
mod password_tests {
    use super::Password;

    #[test]
    fn a_password_value_is_used_as_given_and_never_shown() {
        let value = Password::Value("hunter2-from-a-secret".into());
        assert_eq!(value.reveal("gpu-1").unwrap(), "hunter2-from-a-secret");
        assert_eq!(value.env(), None);
        let shown = format!("{value:?} {}", value.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_password_variable_is_read_from_the_environment_only_when_named() {
        let unset = Password::Env("KUBEGRID_TEST_SURELY_UNSET_PASSWORD_VAR".into());
        let err = unset.reveal("gpu-1").unwrap_err().to_string();
        assert!(
            err.contains("gpu-1") && err.contains("KUBEGRID_TEST_SURELY_UNSET_PASSWORD_VAR"),
            "{err}"
        );
        assert_eq!(unset.env(), Some("KUBEGRID_TEST_SURELY_UNSET_PASSWORD_VAR"));
        let path = Password::Env("PATH".into());
        assert_eq!(
            path.reveal("gpu-1").unwrap(),
            std::env::var("PATH").unwrap()
        );
    }
}
