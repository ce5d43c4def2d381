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
            gpu: h.gpu,
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
    ctx.gpu = spec.gpu.as_ref().map(gpu_context);
    if let Some(gpu) = &ctx.gpu {
        gpu.validate()?;
    }
    Ok(ctx)
}

/// The compiler's view of `spec.gpu`. The driver and toolkit releases are the spec's where it
/// names them; [`cluster_context_for_bundle`] resolves them against the bundle's pins.
fn gpu_context(gpu: &kubegrid_api::GpuSpec) -> kubegrid_plan::GpuContext {
    fn name<T: serde::Serialize>(value: &T) -> String {
        serde_json::to_value(value)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
    kubegrid_plan::GpuContext {
        driver_source: name(&gpu.driver.source),
        driver_branch: gpu.driver.branch.clone(),
        driver_version: String::new(),
        toolkit_version: gpu.toolkit.version.clone().unwrap_or_default(),
        fabric_manager: name(&gpu.fabric_manager),
        device_plugin: name(&gpu.device_plugin),
        mig_strategy: name(&gpu.mig.strategy),
        validation: gpu.validation,
        operator_values: gpu.operator_values.clone(),
    }
}

/// [`cluster_context`], with `spec.etcd.version` (a release line) resolved to the etcd the
/// bundle pins on that line: the version `binaries: bundle: [etcd, etcdctl]` installs. Without
/// the field, the newest etcd the bundle carries.
pub fn cluster_context_for_bundle(
    manifest: &Manifest,
    bundle: &kubegrid_plan::Bundle,
) -> Result<ClusterContext, kubegrid_plan::Error> {
    let mut ctx = cluster_context(manifest)?;
    ctx.etcd_version = match manifest.cluster().spec.etcd.as_ref().map(|e| &e.version) {
        Some(line) => Some(etcd_on_line(bundle, line)?),
        None => etcd_versions(bundle).into_iter().max(),
    };
    if let Some(gpu) = ctx.gpu.as_mut() {
        gpu_pins(gpu, bundle)?;
    }
    ctx.serving = match &manifest.cluster().spec.serving {
        Some(serving) => Some(serving_context(serving, &ctx, bundle)?),
        None => None,
    };
    Ok(ctx)
}

/// `spec.serving` with the kubegrid image of this release from the bundle: a bundle without
/// it fails here, before any host is contacted.
fn serving_context(
    serving: &kubegrid_api::ServingSpec,
    ctx: &ClusterContext,
    bundle: &kubegrid_plan::Bundle,
) -> Result<kubegrid_plan::ServingContext, kubegrid_plan::Error> {
    Ok(kubegrid_plan::ServingContext {
        namespace: serving.namespace().to_string(),
        cache_capacity: serving.cache_capacity.clone(),
        pod_monitors: serving.pod_monitors,
        image: kubegrid_plan::ServingContext::image_from_bundle(
            bundle.manifest(),
            env!("CARGO_PKG_VERSION"),
            ctx.bundle_registry.is_some(),
        )?,
        keda: match serving.keda {
            true => Some(kubegrid_plan::KedaContext::from_bundle(
                bundle,
                ctx.bundle_registry.is_some(),
            )?),
            false => None,
        },
    })
}

/// The releases of a bundle component (`nvidia-driver`), without Debian revisions.
fn component_versions(bundle: &kubegrid_plan::Bundle, component: &str) -> Vec<String> {
    let mut all: Vec<String> = bundle
        .manifest()
        .files
        .iter()
        .filter(|f| f.component.as_deref() == Some(component))
        .filter_map(|f| f.version.as_deref())
        .map(|v| v.split('-').next().unwrap_or(v).to_string())
        .collect();
    all.sort_by_key(|v| {
        v.split('.')
            .map(|n| n.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    all.dedup();
    all
}

/// The driver and toolkit releases the bundle pins for `spec.gpu`: the newest driver on the
/// spec's branch from the source it names, and the spec's toolkit release or the newest.
/// Refused before any connection when the bundle lacks them.
fn gpu_pins(
    gpu: &mut kubegrid_plan::GpuContext,
    bundle: &kubegrid_plan::Bundle,
) -> Result<(), kubegrid_plan::Error> {
    let missing =
        |what: String, have: &[String], hint: &str| kubegrid_plan::Error::InvalidContext {
            problem: format!(
                "{what}, but bundle {} has {}; hint: {hint}",
                bundle.dir().display(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
        };
    let component = match gpu.driver_source.as_str() {
        "packages" => Some("nvidia-driver"),
        "runfile" => Some("nvidia-driver-runfile"),
        _ => None,
    };
    if let (Some(component), Some(branch)) = (component, gpu.driver_branch.clone()) {
        let have = component_versions(bundle, component);
        gpu.driver_version = have
            .iter()
            .rev()
            .find(|v| v.split('.').next() == Some(branch.as_str()))
            .cloned()
            .ok_or_else(|| {
                missing(
                    format!(
                        "spec.gpu.driver.branch is {branch} from source {}",
                        gpu.driver_source
                    ),
                    &have,
                    "build the bundle with that branch (offline-bundle/sources.yaml), or set spec.gpu.driver.branch to one it has",
                )
            })?;
    }
    let toolkits = component_versions(bundle, "nvidia-container-toolkit");
    gpu.toolkit_version = if gpu.toolkit_version.is_empty() {
        toolkits.last().cloned().ok_or_else(|| {
            missing(
                "spec.gpu needs the NVIDIA container toolkit".into(),
                &toolkits,
                "build the bundle without `--without nvidia-container-toolkit`",
            )
        })?
    } else if toolkits.contains(&gpu.toolkit_version) {
        gpu.toolkit_version.clone()
    } else {
        return Err(missing(
            format!("spec.gpu.toolkit.version is {}", gpu.toolkit_version),
            &toolkits,
            "set spec.gpu.toolkit.version to one the bundle has, or leave it out for the bundle's",
        ));
    };
    Ok(())
}

/// Every etcd version the bundle carries, for any arch.
fn etcd_versions(bundle: &kubegrid_plan::Bundle) -> Vec<semver::Version> {
    bundle
        .manifest()
        .files
        .iter()
        .filter(|f| f.kind == kubegrid_plan::FileKind::Binary && f.name.as_deref() == Some("etcd"))
        .filter_map(|f| f.version.as_deref())
        .filter_map(|v| semver::Version::parse(v.trim_start_matches('v')).ok())
        .collect()
}

/// The newest etcd the bundle carries on `line` ("3.5").
fn etcd_on_line(
    bundle: &kubegrid_plan::Bundle,
    line: &str,
) -> Result<semver::Version, kubegrid_plan::Error> {
    let all = etcd_versions(bundle);
    all.iter()
        .filter(|v| format!("{}.{}", v.major, v.minor) == line)
        .max()
        .cloned()
        .ok_or_else(|| {
            let mut have: Vec<String> = all.iter().map(ToString::to_string).collect();
            have.sort();
            have.dedup();
            kubegrid_plan::Error::InvalidContext {
                problem: format!(
                    "spec.etcd.version is {line}, but bundle {} has no etcd on that line (it has: {}); hint: use a bundle with etcd {line}, or set spec.etcd.version to a line it has",
                    bundle.dir().display(),
                    if have.is_empty() { "no etcd".to_string() } else { have.join(", ") }
                ),
            }
        })
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
