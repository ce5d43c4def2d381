//! The Kubernetes API during an upgrade: one client from the admin kubeconfig kubegrid keeps,
//! the Nodes' readiness and cordons, and the PodDisruptionBudgets, for the planner.

use std::collections::{BTreeMap, BTreeSet};

use kube::Client;

use crate::{error::Error, operation::Run};

/// What the API said about the Nodes and budgets.
#[derive(Debug, Clone, Default)]
pub struct ApiState {
    /// Ready by Node name; Nodes the API does not know are absent.
    pub ready: BTreeMap<String, bool>,
    /// Cordoned Nodes.
    pub cordoned: BTreeSet<String>,
    /// Every PodDisruptionBudget with the Nodes its pods run on.
    pub pdbs: Vec<kubegrid_upgrade::Pdb>,
}

/// The admin kubeconfig for the cluster's endpoint, made from the certificates the run
/// prepared (the same one `apply` writes).
pub fn kubeconfig(run: &Run) -> Result<String, Error> {
    let k = super::kubernetes(run)?;
    let (Some(admin), Some(ca)) = (&run.admin_client, &run.kubernetes_ca_pem) else {
        return Err(Error::Protocol {
            host: run.req.cluster.clone(),
            message: "the cluster's CA and admin certificate were not prepared".into(),
        });
    };
    let server = crate::kubernetes::server_url(&k.endpoint_host, k.endpoint_port);
    kubegrid_pki::kubeconfig(
        &run.req.cluster,
        &server,
        ca,
        kubegrid_pki::ADMIN_USER,
        admin,
    )
    .map_err(|e| Error::Pki {
        what: "admin kubeconfig".into(),
        source: Box::new(e),
    })
}

/// Connects and reads the Nodes and budgets; the error is one line for a blocker.
pub async fn read(kubeconfig: &str) -> Result<(Client, ApiState), String> {
    let client = kubegrid_cluster::connect(kubeconfig)
        .await
        .map_err(|e| e.to_string())?;
    let nodes = kubegrid_cluster::node_conditions(&client)
        .await
        .map_err(|e| e.to_string())?;
    let budgets = kubegrid_cluster::budgets(&client)
        .await
        .map_err(|e| e.to_string())?;
    let state = ApiState {
        ready: nodes.iter().map(|(n, c)| (n.clone(), c.ready)).collect(),
        cordoned: nodes
            .iter()
            .filter(|(_, c)| c.unschedulable)
            .map(|(n, _)| n.clone())
            .collect(),
        pdbs: budgets
            .into_iter()
            .map(|b| kubegrid_upgrade::Pdb {
                namespace: b.namespace,
                name: b.name,
                disruptions_allowed: b.disruptions_allowed,
                nodes: b.nodes,
            })
            .collect(),
    };
    Ok((client, state))
}
