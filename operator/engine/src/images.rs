//! Pushing the bundle's images into the bundle registry (`spec.bundle.registry`) right after
//! the `registry` phase has started it, so that every pull the nodes make through
//! containerd's mirrors (kubeadm's images, the CNI, the pause image) finds its image there.

use std::time::{Duration, Instant};

use kubegrid_oci::{
    ImageRef, Layout, PushOptions, RegistryEndpoint, RepositoryNaming, Transport, Trust,
};
use kubegrid_plan::{IMAGES_DIR, ManifestImage};

use crate::{
    operation::{Mode, PhaseTime, Run},
    registry::BundleRegistryEndpoint,
};

/// The playbook phase that starts the registry; images are pushed as soon as it is done.
pub const AFTER_PHASE: &str = "registry";

/// The name the push step has in phase timings and host failures.
pub const STEP: &str = "registry-images";

/// How long the registry may take to answer the engine after the phase checked it locally.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What one push of the bundle's images did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushSummary {
    /// Images pushed (or found already there).
    pub images: usize,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Blobs the registry already had.
    pub blobs_present: usize,
    /// Images no host pulls through the registry (their registry is not mirrored), skipped.
    pub skipped: Vec<String>,
}

/// Pushes every image of the bundle into the bundle registry (apply only, and only while the
/// registry host is still live). A failure fails every live host: none of them could pull
/// the cluster's images.
pub async fn push(run: &mut Run) {
    if run.req.mode != Mode::Apply {
        return;
    }
    let Some(registry) = run.registry.clone() else {
        return;
    };
    let images = run.req.bundle.manifest().images.clone();
    let registry_live = run
        .req
        .hosts
        .iter()
        .position(|h| h.target.host == registry.host)
        .is_some_and(|i| run.sessions[i].is_some());
    if images.is_empty() || !registry_live {
        return;
    }
    let started = Instant::now();
    let layout_dir = run.req.bundle.dir().join(IMAGES_DIR);
    match push_all(&layout_dir, &registry, &images).await {
        Ok(summary) => {
            tracing::info!(
                registry = %registry.url(),
                images = summary.images,
                blobs_pushed = summary.blobs_pushed,
                blobs_present = summary.blobs_present,
                skipped = ?summary.skipped,
                "bundle images are in the registry"
            );
            run.phase_times.push(PhaseTime {
                phase: STEP.into(),
                wall_ms: started.elapsed().as_millis() as u64,
            });
        }
        Err(why) => {
            for i in run.live() {
                run.fail_host(i, STEP, why.clone()).await;
            }
        }
    }
}

/// Pushes `images` from the OCI layout at `layout_dir` into `registry`; the error says which
/// image failed and why, with a hint.
pub async fn push_all(
    layout_dir: &std::path::Path,
    registry: &BundleRegistryEndpoint,
    images: &[ManifestImage],
) -> Result<PushSummary, String> {
    let layout = Layout::open(layout_dir).map_err(|e| {
        format!(
            "the bundle's image layout {} cannot be read: {e}",
            layout_dir.display()
        )
    })?;
    let transport = match &registry.ca_pem {
        Some(ca) => Transport::Https(Trust::Only(vec![ca.clone().into_bytes()])),
        None => Transport::Http,
    };
    // The registry hosts pull from is read-only; pushes go to its push endpoint, with the
    // credential the engine keeps.
    let mut endpoint = RegistryEndpoint::new(registry.push_authority(), transport);
    if let Some(push) = &registry.push {
        endpoint = endpoint.with_basic_auth(push.user.clone(), push.password.clone());
    }
    wait_until_answering(&endpoint, registry).await?;
    let options = PushOptions {
        naming: RepositoryNaming::WithRegistry,
        ..PushOptions::default()
    };
    let mut summary = PushSummary::default();
    for image in images {
        let reference = format!("{}:{}", image.name, image.tag);
        if BundleRegistryEndpoint::repository(&image.name).is_none() {
            summary.skipped.push(reference);
            continue;
        }
        let parsed = ImageRef::parse(&reference)
            .map_err(|e| format!("bundle image {reference} has a bad name: {e}"))?;
        let pushed = kubegrid_oci::push(&layout, &parsed, &endpoint, &options)
            .await
            .map_err(|e| {
                format!(
                    "pushing bundle image {reference} into the bundle registry's push endpoint {} on {} failed: {e}; hint: check it with `systemctl status kubegrid-registry-push` on {}",
                    registry.push_authority(),
                    registry.host,
                    registry.host
                )
            })?;
        summary.images += 1;
        summary.blobs_pushed += pushed.blobs_pushed;
        summary.blobs_present += pushed.blobs_present;
    }
    Ok(summary)
}

/// Polls `/v2/` until the registry answers this machine: the phase's own check ran on the
/// registry host, and the path from here may need a moment more (or be blocked).
async fn wait_until_answering(
    endpoint: &RegistryEndpoint,
    registry: &BundleRegistryEndpoint,
) -> Result<(), String> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        match kubegrid_oci::ping(endpoint).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "the bundle registry's push endpoint {} on {} does not answer this machine after {}s: {e}; hint: the engine pushes the bundle's images there, so port {} of {} must be reachable from here",
                    registry.push_authority(),
                    registry.host,
                    ANSWER_TIMEOUT.as_secs(),
                    registry.push_port(),
                    registry.address,
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
