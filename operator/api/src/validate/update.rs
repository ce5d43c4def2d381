//! Checks on an update of a stored object: the fields that the CRDs' transition rules
//! (`self == oldSelf`) keep as created. API servers before 1.25, or with CEL validation
//! turned off, do not run those rules, so the operator runs these before acting.

use crate::{
    Cluster, Error, Node, Problem, Result,
    cluster::ControlPlaneEndpoint,
    manifest::name_of,
    rules::{WHY_CLUSTER_NAME, WHY_ENDPOINT, WHY_POD_CIDR, WHY_SERVICE_CIDR},
};

impl Cluster {
    /// Checks that `self`, an update of `old` (the object the operator last acted on), keeps
    /// every immutable field: `spec.controlPlaneEndpoint` (it is in every certificate and
    /// kubeconfig) and `spec.network.podCIDR` / `spec.network.serviceCIDR` (the CNI, host
    /// routes and Services use them).
    ///
    /// Returns [`Error::Invalid`] with one [`Problem`] per changed field, worded like the
    /// other validation problems. The CRD's CEL transition rules refuse the same changes on
    /// API servers that run them.
    pub fn validate_update(&self, old: &Cluster) -> Result<()> {
        let resource = format!("Cluster/{}", name_of(&self.metadata.name));
        let (new_spec, old_spec) = (&self.spec, &old.spec);
        let mut problems = Vec::new();
        if new_spec.control_plane_endpoint != old_spec.control_plane_endpoint {
            problems.push(changed(
                &resource,
                "spec.controlPlaneEndpoint",
                &endpoint(&old_spec.control_plane_endpoint),
                &endpoint(&new_spec.control_plane_endpoint),
                WHY_ENDPOINT,
            ));
        }
        let (new_net, old_net) = (&new_spec.network, &old_spec.network);
        if new_net.pod_cidr != old_net.pod_cidr {
            problems.push(changed(
                &resource,
                "spec.network.podCIDR",
                &old_net.pod_cidr.to_string(),
                &new_net.pod_cidr.to_string(),
                WHY_POD_CIDR,
            ));
        }
        if new_net.service_cidr != old_net.service_cidr {
            problems.push(changed(
                &resource,
                "spec.network.serviceCIDR",
                &old_net.service_cidr.to_string(),
                &new_net.service_cidr.to_string(),
                WHY_SERVICE_CIDR,
            ));
        }
        verdict(problems)
    }
}

impl Node {
    /// Checks that `self`, an update of `old`, keeps `spec.clusterName`: a host moves to
    /// another Cluster only by deleting its Node (which resets or orphans it) and creating
    /// a new one.
    ///
    /// Returns [`Error::Invalid`] with a [`Problem`] naming the field, as
    /// [`Cluster::validate_update`] does; the CRD's CEL transition rule refuses the same.
    pub fn validate_update(&self, old: &Node) -> Result<()> {
        let mut problems = Vec::new();
        if self.spec.cluster_name != old.spec.cluster_name {
            problems.push(changed(
                &format!("Node/{}", name_of(&self.metadata.name)),
                "spec.clusterName",
                &old.spec.cluster_name,
                &self.spec.cluster_name,
                WHY_CLUSTER_NAME,
            ));
        }
        verdict(problems)
    }
}

fn changed(resource: &str, field: &str, old: &str, new: &str, hint: &str) -> Problem {
    Problem {
        location: None,
        resource: resource.to_string(),
        field: field.to_string(),
        seen: format!("a change from `{old}` to `{new}`"),
        expected: format!("`{old}`, the value it was created with ({hint})"),
    }
}

fn endpoint(endpoint: &ControlPlaneEndpoint) -> String {
    let host = match (&endpoint.address, &endpoint.vip) {
        (Some(address), None) => format!("address {address}"),
        (None, Some(vip)) => format!("vip {vip}"),
        (Some(address), Some(vip)) => format!("address {address}, vip {vip}"),
        (None, None) => "no address".to_string(),
    };
    format!("{host} port {}", endpoint.port)
}

fn verdict(problems: Vec<Problem>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid { problems })
    }
}
