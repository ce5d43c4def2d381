//! The bundle against the spec, before any host is contacted: the Kubernetes version and
//! every component the spec names must be the bundle's, every artifact the requested phases
//! need must be there for each Node's arch and roles, and an air-gapped kube-vip VIP needs
//! kube-vip's image in the bundle. The CLI (`apply`, `plan`) and the operator both call
//! this, so a bundle is refused the same way by both, once, with exit 2 / `BundleInvalid`.

use std::path::Path;

use kubegrid_api::Manifest;
use kubegrid_plan::{
    ClusterContext, HostContext, Playbook,
    needs::{self, NodeNeeds},
};

/// Checks the bundle whose manifest is `bundle` (shown to the user as `shown`: the
/// directory or packed file they named) against the spec, for the install playbook's phases
/// up to `until`. Every problem is named in one error.
pub fn check(
    manifest: &Manifest,
    context: &ClusterContext,
    shown: &Path,
    bundle: &kubegrid_plan::Manifest,
    playbook: &Playbook,
    until: Option<&str>,
) -> Result<(), kubegrid_plan::Error> {
    let nodes: Vec<NodeNeeds> = crate::spec::hosts(manifest)
        .into_iter()
        .map(|h| {
            let mut host = HostContext {
                name: h.target.host.clone(),
                roles: h.roles.clone(),
                ..HostContext::default()
            };
            // Left empty when undeclared: `when: {arch: ..}` then counts as unknown.
            host.facts.arch = h.declared_arch.clone().unwrap_or_default();
            NodeNeeds {
                name: h.target.host,
                needs: needs::needs(playbook, until, context, &host),
                arch: h.declared_arch,
            }
        })
        .collect();
    let all: Vec<&needs::Need> = nodes.iter().flat_map(|n| &n.needs).collect();
    let needed = |a: &needs::Artifact| all.iter().any(|n| n.artifact == *a);
    let mut problems = Vec::new();
    let spec_version = context.kubernetes.as_ref().map(|k| k.version.to_string());
    if let Some(want) = &spec_version
        && needed(&needs::Artifact::Binary("kubeadm".into()))
    {
        problems.extend(kubernetes_problems(want, bundle));
    }
    let containerd = kubegrid_plan::CONTAINERD.to_string();
    if needed(&needs::Artifact::Package(containerd.clone()))
        || needed(&needs::Artifact::Archive(containerd))
    {
        problems.extend(crate::spec::containerd_problem(context, bundle));
    }
    let phases = needs::phases_until(playbook, until);
    if phases.iter().any(|p| p.name == "control-plane-init")
        && let Some(problem) = kube_vip_problem(context, bundle)
    {
        problems.push(problem);
    }
    problems.extend(needs::missing(bundle, &nodes));
    needs::refuse_if_any(shown, problems, bundle, || {
        hint(manifest, spec_version.as_deref(), bundle, &nodes)
    })
}

/// The spec's Kubernetes version against the bundle's: each of kubeadm, kubelet and kubectl
/// must carry it (per arch) among its versions; a bundle may carry several, and compiling then
/// installs the spec's. The manifest's `kubernetes` (the bundle's primary version) is compared
/// only when no Kubernetes binary has a version. Pre-releases must match exactly too.
fn kubernetes_problems(want: &str, bundle: &kubegrid_plan::Manifest) -> Vec<String> {
    let strip = |v: &str| v.strip_prefix('v').unwrap_or(v).to_string();
    // (name (arch), versions), in manifest order.
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for f in &bundle.files {
        let name = f.name.as_deref().unwrap_or_default();
        if f.kind == kubegrid_plan::FileKind::Binary
            && kubegrid_plan::KUBERNETES_BINARIES.contains(&name)
            && let Some(v) = &f.version
        {
            let what = format!("{name} ({})", f.arch.as_str());
            let v = strip(v);
            match seen.iter_mut().find(|(w, _)| *w == what) {
                Some((_, versions)) if !versions.contains(&v) => versions.push(v),
                Some(_) => {}
                None => seen.push((what, vec![v])),
            }
        }
    }
    if seen.is_empty()
        && let Some(v) = &bundle.kubernetes
    {
        seen.push(("the manifest's kubernetes".into(), vec![strip(v)]));
    }
    let wrong: Vec<String> = seen
        .iter()
        .filter(|(_, versions)| !versions.iter().any(|v| v == want))
        .map(|(what, versions)| format!("{what} {}", versions.join(" and ")))
        .collect();
    if wrong.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "spec.kubernetesVersion is v{want}, but the bundle carries Kubernetes {}",
        wrong.join(", ")
    )]
}

/// An air-gapped cluster (one with a bundle registry) with a kube-vip VIP pulls kube-vip's
/// image from the bundle registry only, so the bundle must carry it.
fn kube_vip_problem(context: &ClusterContext, bundle: &kubegrid_plan::Manifest) -> Option<String> {
    let k = context.kubernetes.as_ref()?;
    let vip = k.vip.as_ref()?;
    context.bundle_registry.as_ref()?;
    let (name, tag) = k.kube_vip_image.rsplit_once(':')?;
    if bundle.images.iter().any(|i| i.name == name && i.tag == tag) {
        return None;
    }
    Some(format!(
        "spec.controlPlaneEndpoint.vip {vip} runs kube-vip, and with spec.bundle.registry the hosts pull images from the bundle, but the bundle has no image {name}:{tag}; add it to the release's images in offline-bundle/sources.yaml pinned by digest and rebuild, or use controlPlaneEndpoint.address with a load balancer"
    ))
}

/// Which bundle to build instead.
fn hint(
    manifest: &Manifest,
    version: Option<&str>,
    bundle: &kubegrid_plan::Manifest,
    nodes: &[NodeNeeds],
) -> String {
    let mut arches: Vec<&str> = nodes.iter().filter_map(|n| n.arch.as_deref()).collect();
    if arches.is_empty() {
        arches = needs::arches(bundle);
    }
    if arches.is_empty() {
        arches.push("amd64");
    }
    arches.sort_unstable();
    arches.dedup();
    let version = version.map_or_else(
        || manifest.cluster().spec.kubernetes_version.clone(),
        str::to_string,
    );
    format!(
        "build a bundle for this spec: kubegrid bundle build --k8s-version {} --arch {} --include-os-packages debian-12 --out bundle.tar.zst (or offline-bundle/dev-bundle.sh DIR ARCH for development); --until PHASE stops before the phases that need the rest",
        version.strip_prefix('v').unwrap_or(&version),
        arches.join(",")
    )
}

/// [`check`] for a bundle directory whose manifest has not been read yet (the operator,
/// before it prepares an operation): reads manifest.yaml alone, without hashing artifacts,
/// and checks the whole install playbook.
pub fn check_dir(manifest: &Manifest, dir: &Path) -> Result<(), kubegrid_plan::Error> {
    let context = crate::spec::cluster_context(manifest)?;
    let bundle = kubegrid_plan::read_manifest(dir)?;
    let playbook = Playbook::builtin("install")?;
    check(manifest, &context, dir, &bundle, &playbook, None)
}

#[cfg(test)]
mod tests;
