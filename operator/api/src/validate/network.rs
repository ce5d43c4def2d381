//! Network rules that only kube-apiserver or kubeadm would otherwise enforce, mid-install,
//! and the CNI manifest file the CLI sends to the init host.

use std::path::Path;

use super::{Checker, Subject};
use crate::cni::{MAX_MANIFEST_BYTES, check_manifest};

/// kube-apiserver refuses a service range with more than 2^20 addresses
/// (`--service-cluster-ip-range ... is too large`), in either family.
const MAX_SERVICE_HOST_BITS: u8 = 20;

impl Checker<'_> {
    /// The service range is no larger than the API server allows.
    pub(super) fn service_cidr_size(&mut self, at: &Subject) {
        let net = self.manifest.cluster().spec.network.service_cidr;
        let host_bits = net.max_prefix_len() - net.prefix_len();
        if host_bits > MAX_SERVICE_HOST_BITS {
            let least = net.max_prefix_len() - MAX_SERVICE_HOST_BITS;
            self.report(
                at,
                "spec.network.serviceCIDR",
                format!("`{net}`, a range of 2^{host_bits} addresses"),
                format!(
                    "a prefix of /{least} or longer (at most 2^{MAX_SERVICE_HOST_BITS} \
                     addresses, the most kube-apiserver accepts), e.g. {}",
                    if net.addr().is_ipv4() {
                        "10.96.0.0/12"
                    } else {
                        "fd00:10:96::/108"
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
