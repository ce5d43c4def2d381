//! The crate's one error type.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Ways starting, using or stopping the real API server can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `e2e/real-apiserver/build.sh` has not built the programs (or not completely).
    #[error(
        "no real API server build at {dir}: {missing} is missing; hint: run .ci/setup (or \
         e2e/real-apiserver/build.sh), or point KUBEGRID_APISERVER_DIR at a build"
    )]
    NotBuilt {
        /// Where the build was looked for.
        dir: PathBuf,
        /// The file that is not there.
        missing: String,
    },

    /// The test bed's certificates could not be made.
    #[error("failed to issue the test bed's {what}")]
    IssueCertificate {
        /// Which certificate.
        what: &'static str,
        /// What kubegrid-pki reported.
        #[source]
        source: kubegrid_pki::Error,
    },

    /// A file of the test bed could not be written, or a process not started.
    #[error("failed to {what} ({path})")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or program.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A process ended before it was ready.
    #[error("{program} exited before it was ready ({status}); its log ends with:\n{log}")]
    Exited {
        /// `etcd` or `apiextensions-apiserver`.
        program: &'static str,
        /// How it ended.
        status: String,
        /// The last lines of its log.
        log: String,
    },

    /// A process did not become ready in time.
    #[error(
        "{program} was not ready after {seconds} s (last answer: {last}); its log ends with:\n{log}"
    )]
    NotReady {
        /// `etcd` or `apiextensions-apiserver`.
        program: &'static str,
        /// How long was waited.
        seconds: u64,
        /// What the last readiness probe saw.
        last: String,
        /// The last lines of its log.
        log: String,
    },

    /// The client for the server could not be built from its kubeconfig.
    #[error("failed to build a client from the test bed's kubeconfig: {detail}")]
    Client {
        /// What kube reported.
        detail: String,
    },

    /// A request to the real server failed.
    #[error("{what} failed on the real API server: {source}")]
    Api {
        /// The request.
        what: String,
        /// What kube reported.
        #[source]
        source: kube::Error,
    },

    /// A CRD never reached the Established condition.
    #[error("CRD {name} was not Established after {seconds} s; its conditions: {conditions}")]
    NotEstablished {
        /// The CRD.
        name: String,
        /// How long was waited.
        seconds: u64,
        /// Its status conditions as last read.
        conditions: String,
    },

    /// The HTTPS front ([`crate::Front`]) could not start.
    #[error("the test front failed to {what}: {detail}")]
    Front {
        /// What it was doing.
        what: &'static str,
        /// The cause.
        detail: String,
    },
}
