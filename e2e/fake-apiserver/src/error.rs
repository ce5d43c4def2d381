//! The crate's one error type.

use std::net::SocketAddr;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Ways starting the HTTPS fake can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM text held no usable item of the kind wanted.
    #[error("failed to read the {what} PEM: {detail}; expected {expected}")]
    ReadPem {
        /// Which PEM: `server certificate`, `server key` or `client CA`.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
        /// What should have been there.
        expected: &'static str,
    },

    /// rustls refused the certificate, key or client CA.
    #[error("failed to configure TLS with the given {what}")]
    ConfigureTls {
        /// What was being configured.
        what: &'static str,
        /// What rustls reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A certificate, key or CA bundle file could not be read.
    #[error("failed to read the {what} file {}", path.display())]
    ReadFile {
        /// Which file: `server certificate`, `server key` or `client CA`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The listening socket could not be bound or set up.
    #[error(
        "failed to listen on {listen}; hint: the address must be assigned to this machine \
         and the port free"
    )]
    Listen {
        /// The address asked for.
        listen: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The thread that serves connections could not be started.
    #[error("failed to start the fake apiserver's thread")]
    StartThread {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
