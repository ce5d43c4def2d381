//! Network rules that only kube-apiserver or kubeadm would otherwise enforce, mid-install
//! (the sizes of the pod and service ranges), and the CNI manifest file the CLI sends to
//! the init host.

use std::path::Path;

use super::{Checker, Subject};
use crate::cni::{MAX_MANIFEST_BYTES, check_manifest};

/// kube-apiserver refuses a service range with more than 2^20 addresses
/// (`--service-cluster-ip-range ... is too large`), in either family.
const MAX_SERVICE_HOST_BITS: u8 = 20;
/// kube-controller-manager's default per-Node pod ranges (`--node-cidr-mask-size`), which
/// kubeadm leaves as they are.
const NODE_MASK_V4: u8 = 24;
const NODE_MASK_V6: u8 = 64;
/// kubeadm refuses a pod subnet more than this many bits wider than the node mask.
const MAX_NODE_MASK_DIFF: u8 = 16;

impl Checker<'_> {
    /// The pod and service ranges have sizes kubeadm and kube-apiserver accept.
    pub(super) fn network_sizes(&mut self, at: &Subject) {
        let network = &self.manifest.cluster().spec.network;
        let (pod, service) = (network.pod_cidr, network.service_cidr);
        let host_bits = service.max_prefix_len() - service.prefix_len();
        if host_bits > MAX_SERVICE_HOST_BITS {
            let least = service.max_prefix_len() - MAX_SERVICE_HOST_BITS;
            self.report(
                at,
                "spec.network.serviceCIDR",
                format!("`{service}`, a range of 2^{host_bits} addresses"),
                format!(
                    "a prefix of /{least} or longer (at most 2^{MAX_SERVICE_HOST_BITS} \
                     addresses, the most kube-apiserver accepts), e.g. {}",
                    if service.addr().is_ipv4() {
                        "10.96.0.0/12"
                    } else {
                        "fd00:10:96::/108"
                    }
                ),
            );
        }
        let node_mask = if pod.addr().is_ipv4() {
            NODE_MASK_V4
        } else {
            NODE_MASK_V6
        };
        let widest = node_mask - MAX_NODE_MASK_DIFF;
        if !(widest..=node_mask).contains(&pod.prefix_len()) {
            self.report(
                at,
                "spec.network.podCIDR",
                format!("`{pod}`, a /{} range", pod.prefix_len()),
                format!(
                    "a prefix from /{widest} to /{node_mask}: kube-controller-manager gives \
                     each Node a /{node_mask} of it, and kubeadm refuses a pod range more than \
                     {MAX_NODE_MASK_DIFF} bits wider than that, e.g. {}",
                    if pod.addr().is_ipv4() {
                        "10.244.0.0/16"
                    } else {
                        "fd00:10:244::/56"
                    }
                ),
            );
        }
    }

    /// The CNI manifest the CLI will apply: a regular file of Kubernetes objects.
    pub(super) fn cni_file(&mut self, at: &Subject, raw: &str, path: &Path) {
        const FIELD: &str = "spec.network.cniManifest";
        let shown = format!("`{}` ({})", crate::text::excerpt(raw, 80), path.display());
        let hint = "a regular file of Kubernetes objects (YAML documents, each with apiVersion \
                    and kind), e.g. your CNI's release manifest";
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "which does not exist".to_string()
                } else {
                    format!("which cannot be read: {e}")
                };
                self.report(at, FIELD, format!("{shown}, {why}"), hint);
                return;
            }
        };
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file (a device, pipe or socket)"
            };
            self.report(at, FIELD, format!("{shown}, which is {what}"), hint);
            return;
        }
        if meta.len() > MAX_MANIFEST_BYTES {
            self.report(
                at,
                FIELD,
                format!("{shown}, which is {} bytes", meta.len()),
                format!("a manifest of at most {} MiB", MAX_MANIFEST_BYTES >> 20),
            );
            return;
        }
        let problem = match std::fs::read(path) {
            Err(e) => format!("which cannot be read: {e}"),
            Ok(bytes) => match crate::parse::guard::utf8(&bytes) {
                Err(r) => format!(
                    "which holds {} at line {} column {}",
                    r.what, r.line, r.column
                ),
                Ok(text) => match check_manifest(text) {
                    Ok(()) => return,
                    Err(why) => format!("which holds {why}"),
                },
            },
        };
        self.report(at, FIELD, format!("{shown}, {problem}"), hint);
    }
}
