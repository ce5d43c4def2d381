//! `Cluster::validate_update` and `Node::validate_update`: the immutable fields, in code.

use std::path::Path;

use kubegrid_api::{Error, Manifest, Problem};

use crate::common::{GOOD, edit};

fn manifest(text: &str) -> Manifest {
    kubegrid_api::parse(text, Path::new("/specs/cluster.yaml")).unwrap()
}

fn cluster_problems(old: &str, new: &str) -> Vec<Problem> {
    match manifest(new)
        .cluster()
        .validate_update(manifest(old).cluster())
    {
        Ok(()) => Vec::new(),
        Err(Error::Invalid { problems }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn mutable_fields_may_change() {
    let text = edit("kubernetesVersion: v1.31.4", "kubernetesVersion: v1.32.0")
        .replace("runtimes: [runc, kata-qemu, nvidia]", "runtimes: [runc]")
        .replace("address: 10.0.0.22", "address: 10.0.0.23");
    assert_eq!(cluster_problems(GOOD, &text), []);
    let (old, new) = (manifest(GOOD), manifest(&text));
    for (new, old) in new.nodes().iter().zip(old.nodes()) {
        new.validate_update(old).unwrap();
    }
}

#[test]
fn a_moved_endpoint_names_both_values_and_how_to_move_it() {
    let text = edit("vip: 10.0.0.100", "address: lb.example\n    port: 443");
    let problems = cluster_problems(GOOD, &text);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].to_string(),
        "Cluster/gpu-prod spec.controlPlaneEndpoint: got a change from `vip 10.0.0.100 port \
         6443` to `address lb.example port 443`; expected `vip 10.0.0.100 port 6443`, the value \
         it was created with (the endpoint is in every certificate and kubeconfig; create a \
         new Cluster to move it)"
    );
}

#[test]
fn every_changed_network_is_reported() {
    let text = edit("podCIDR: 10.244.0.0/16", "podCIDR: 10.240.0.0/16")
        .replace("serviceCIDR: 10.96.0.0/12", "serviceCIDR: 10.112.0.0/12");
    let problems = cluster_problems(GOOD, &text);
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["spec.network.podCIDR", "spec.network.serviceCIDR"]);
    assert!(
        problems[0]
            .seen
            .contains("`10.244.0.0/16` to `10.240.0.0/16`"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_node_keeps_its_cluster() {
    let old = manifest(GOOD);
    let mut moved = old.nodes()[0].clone();
    moved.spec.cluster_name = "gpu-next".into();
    let err = moved.validate_update(&old.nodes()[0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the spec has 1 problem:\n  Node/cp-1 spec.clusterName: got a change from `gpu-prod` \
         to `gpu-next`; expected `gpu-prod`, the value it was created with (delete the Node \
         and create one that names the other Cluster)"
    );
}
