//! kubegrid's view of a running cluster through the Kubernetes API.
//!
//! After bootstrap the engine connects with the admin kubeconfig it generated
//! ([`connect`]), labels the nodes ([`label_nodes`]), runs the post-install
//! checks ([`run_checks`]) and, when Node entries leave the spec, drains and
//! deletes their Nodes ([`remove_node`]).

mod checks;
mod connect;
mod drain;
mod error;
mod poll;
mod roll;
mod served;

pub use crate::{
    checks::{
        API_READYZ, CONTROL_PLANE_LABEL, CheckOptions, CheckResult, DNS, ExpectedNode,
        GPU_ALLOCATABLE, GPU_POD, GVISOR_DMESG, GVISOR_POD, NODES_READY, POD_NETWORK,
        ROLE_CONTROL_PLANE, ROLE_WORKER, SYSTEM_PODS, WORKER_LABEL, check_api_readyz, check_dns,
        check_gpu_allocatable, check_gpu_pod, check_gvisor_pod, check_nodes_ready,
        check_pod_network, check_system_pods, label_nodes, run_checks,
    },
    connect::{connect, install_crypto_provider},
    drain::{DrainOptions, DrainReport, RemovalOutcome, delete_node, drain, remove_node},
    error::{Error, Result},
    roll::{
        Budget, NodeCondition, annotate_node, budgets, node_annotation, node_conditions, selects,
        uncordon, wait_ready,
    },
    served::served_certificate,
};

/// Field manager kubegrid's writes are recorded under in managedFields.
pub const FIELD_MANAGER: &str = "kubegrid";
