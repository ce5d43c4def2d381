//! From the Cluster and Node resources to what the engine and the compiler take. The CLI and
//! the operator both go through here, so a spec means the same thing to both.

use std::collections::BTreeMap;

use kubegrid_api::{HostTarget, Manifest};
use kubegrid_plan::{ClusterContext, RegistryMirror, TaintContext};

use crate::{
    operation::HostSpec,
    ssh::{Password, SshTarget},
};

/// One engine host per Node, in file order.
pub fn hosts(manifest: &Manifest) -> Vec<HostSpec> {
    manifest
        .hosts()
        .into_iter()
        .map(|h| HostSpec {
            target: target(manifest.name(), &h),
            roles: h.roles.iter().map(|r| r.as_str().to_string()).collect(),
            declared_arch: h.arch.map(|a| a.as_str().to_string()),
            labels: h.labels.clone(),
            taints: h
                .taints
                .iter()
                .map(|t| TaintContext {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: format!("{:?}", t.effect),
                })
                .collect(),
        })
        .collect()
}

fn target(cluster: &str, h: &HostTarget) -> SshTarget {
    SshTarget {
        cluster: cluster.to_string(),
        host: h.name.clone(),
        address: h.address.clone(),
        port: h.port,
        user: h.user.clone(),
        key_file: h.key_file.clone(),
        password: h.password_env.clone().map(Password::Env),
        sudo: h.sudo,
        bastion: h.bastion.as_ref().map(|b| {
            Box::new(SshTarget {
                cluster: cluster.to_string(),
                host: format!("bastion {}", b.address),
                address: b.address.clone(),
                port: b.port,
                user: b.user.clone(),
                key_file: b.key_file.clone().or_else(|| h.key_file.clone()),
                password: None,
                sudo: false,
                bastion: None,
            })
        }),
    }
}

/// The compiler's view of the Cluster.
pub fn cluster_context(manifest: &Manifest) -> Result<ClusterContext, kubegrid_plan::Error> {
    let spec = &manifest.cluster().spec;
    let rt = &spec.container_runtime;
    let mut ctx = ClusterContext::new(manifest.name(), &rt.containerd.version)?;
    ctx.containerd_source = match rt.source {
        kubegrid_api::ContainerdSource::Archive => kubegrid_plan::ContainerdSource::Archive,
        kubegrid_api::ContainerdSource::Packages => kubegrid_plan::ContainerdSource::Packages,
    };
    ctx.runtimes = rt.runtimes.iter().map(|r| r.as_str().to_string()).collect();
    if !ctx.runtimes.iter().any(|r| r == "runc") {
        // runc stays configured: CRI needs a working default even when pods pick another.
        ctx.runtimes.insert(0, "runc".into());
    }
    ctx.default_runtime = rt.default_runtime.as_str().to_string();
    ctx.sandbox_image = match &rt.sandbox_image {
        Some(image) => image.clone(),
        None => {
            let v =
                kubegrid_api::parse_kubernetes_version(&spec.kubernetes_version).map_err(|e| {
                    kubegrid_plan::Error::InvalidContext {
                        problem: format!("kubernetesVersion: {e}"),
                    }
                })?;
            ClusterContext::sandbox_image_for(&v)?
        }
    };
    let mut mirrors: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in &rt.registry_mirrors {
        mirrors
            .entry(&m.registry)
            .or_default()
            .push(m.endpoint.clone());
    }
    ctx.registry_mirrors = mirrors
        .into_iter()
        .map(|(registry, endpoints)| RegistryMirror::new(registry, endpoints))
        .collect();
    ctx.bundle_registry = crate::registry::bundle_registry(manifest)?;
    ctx.kubernetes = Some(crate::kubernetes::kubernetes_context(manifest)?);
    Ok(ctx)
}

/// The bundle must have containerd of the spec's source (archive or packages) on the line the
/// spec asks for: the config format follows the line, and containerd 1.x cannot read a
/// version 3 config. Checked before any connection.
pub fn check_bundle(
    ctx: &ClusterContext,
    bundle: &kubegrid_plan::Bundle,
) -> Result<(), kubegrid_plan::Error> {
    match containerd_problem(ctx, bundle.manifest()) {
        None => Ok(()),
        Some(problem) => Err(kubegrid_plan::Error::InvalidContext {
            problem: format!("bundle {}: {problem}", bundle.dir().display()),
        }),
    }
}

/// What is wrong with the bundle's containerd for the spec's source and line, naming what the
/// bundle has ([`kubegrid_plan::containerd_problem`]).
pub fn containerd_problem(
    ctx: &ClusterContext,
    bundle: &kubegrid_plan::Manifest,
) -> Option<String> {
    kubegrid_plan::containerd_problem(ctx, bundle)
}
