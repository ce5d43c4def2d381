//! The crate's error type.

/// Result alias used across kubegrid-cluster.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way an operation of this crate can fail.
///
/// Post-install checks do not use this type: they report failures as
/// [`crate::CheckResult`]s so that one failed check never hides the others.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the certificate a TLS server presents failed (not listening, no handshake).
    #[error("reading the certificate served on {addr}: {reason}")]
    ServedCertificate {
        /// `host:port`.
        addr: String,
        /// What happened.
        reason: String,
    },

    /// The kubeconfig text is not a valid kubeconfig document.
    #[error("failed to parse the admin kubeconfig; expected a kubeconfig YAML document")]
    ParseKubeconfig {
        /// What the parser reported.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The kubeconfig parsed but does not describe a usable context.
    #[error(
        "failed to load the admin kubeconfig; expected a current context with embedded \
         certificate data (certificate-authority-data, client-certificate-data, client-key-data)"
    )]
    LoadKubeconfig {
        /// What kube-rs reported.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The kubeconfig loaded but a client could not be built from it (bad PEM, bad URL).
    #[error(
        "failed to build a Kubernetes client for {server}; hint: check the embedded certificates"
    )]
    BuildClient {
        /// The apiserver URL named by the kubeconfig.
        server: String,
        /// What kube-rs reported.
        #[source]
        source: kube::Error,
    },

    /// Patching labels onto a Node failed.
    #[error(
        "failed to label node {node} with {labels}; hint: the node must have joined the cluster \
         (kubectl get node {node})"
    )]
    LabelNode {
        /// The Node name.
        node: String,
        /// The labels that were being applied, as `k=v,...`.
        labels: String,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },

    /// Marking a Node unschedulable failed.
    #[error("failed to cordon node {node} (patch spec.unschedulable=true)")]
    CordonNode {
        /// The Node name.
        node: String,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },

    /// Listing the pods bound to a Node failed.
    #[error("failed to list the pods on node {node} (fieldSelector spec.nodeName={node})")]
    ListNodePods {
        /// The Node name.
        node: String,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },

    /// Looking up a Node failed for a reason other than it being absent.
    #[error("failed to read node {node}")]
    GetNode {
        /// The Node name.
        node: String,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },

    /// Pods were still on the node when the drain gave up.
    #[error(
        "failed to drain node {node}: {count} pod(s) remain ({list}): {reason}; \
         hint: fix the blocking PodDisruptionBudget or remove the node with force",
        count = pods.len(),
        list = pods.join(", ")
    )]
    DrainFailed {
        /// The Node name.
        node: String,
        /// The pods left on the node, as `namespace/name`.
        pods: Vec<String>,
        /// Why they are still there.
        reason: String,
    },

    /// Listing Nodes, pods or PodDisruptionBudgets for an upgrade plan failed.
    #[error(
        "failed to list {what} through the Kubernetes API: {}",
        describe(source)
    )]
    ListForUpgrade {
        /// What was listed ("Nodes", "pods", "PodDisruptionBudgets").
        what: &'static str,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },

    /// Setting or removing an annotation of a Node failed.
    #[error("failed to annotate node {node} ({key}): {}", describe(source))]
    AnnotateNode {
        /// The Node name.
        node: String,
        /// The annotation key.
        key: String,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },

    /// Marking a Node schedulable again failed.
    #[error(
        "failed to uncordon node {node} (patch spec.unschedulable=false): {}",
        describe(source)
    )]
    UncordonNode {
        /// The Node name.
        node: String,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },

    /// A Node did not report Ready in time after its upgrade.
    #[error("node {node} is not Ready after {waited:?}: {seen}")]
    NodeNotReady {
        /// The Node name.
        node: String,
        /// How long it was waited for.
        waited: std::time::Duration,
        /// What the last look saw.
        seen: String,
    },

    /// Deleting a Node object failed.
    #[error("failed to delete node {node}")]
    DeleteNode {
        /// The Node name.
        node: String,
        /// What the apiserver answered.
        #[source]
        source: kube::Error,
    },
}

/// Renders a kube error in one line for check details and drain reasons.
///
/// kube's own `Display` for API errors repeats the whole `Status` in Debug
/// form, which is unreadable inside a check detail.
pub(crate) fn describe(err: &kube::Error) -> String {
    match err {
        // kube makes up this reason when the body was not a Status, e.g. the
        // plain-text answer of a failing /readyz; the body itself is the news.
        kube::Error::Api(status) if status.reason.is_empty() || status.reason == PLAIN_BODY => {
            format!("{}: {}", status.code, one_line(&status.message))
        }
        kube::Error::Api(status) => {
            format!(
                "{} {}: {}",
                status.code,
                status.reason,
                one_line(&status.message)
            )
        }
        other => one_line(&other.to_string()),
    }
}

/// The reason kube-client gives statuses it reconstructed from a non-JSON body.
const PLAIN_BODY: &str = "Failed to parse error data";

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The HTTP status code of an API error, if the error is one.
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
