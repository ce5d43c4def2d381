//! The `runtime-classes` check: every RuntimeClass kubegrid creates has a Node whose
//! containerd runs its handler.
//!
//! A listed handler is left out of the hosts that cannot run it (kata without a VM, gvisor and
//! crun off Debian-family hosts, nvidia off GPU Nodes; see `kubegrid_plan::host_runtimes`),
//! and each host's report says so. That is what a mixed fleet wants, but a RuntimeClass that no
//! Node runs leaves every pod that asks for it Pending: an apply that went on past preflight's
//! refusal (`--skip-check kata-vm` where no host can create a VM) ends with this check failed,
//! naming why each Node left the handler out. It reads the facts only, so it runs also where
//! the API checks are skipped.

use kubegrid_cluster::CheckResult;

use crate::operation::Run;

/// The check's name in the report and the journal (phase `cluster-checks`).
pub const RUNTIME_CLASSES: &str = "runtime-classes";

/// The check, or None when the spec lists no handler besides runc.
pub fn check(run: &Run) -> Option<CheckResult> {
    let handlers: Vec<&String> = run
        .req
        .context
        .runtimes
        .iter()
        .filter(|r| *r != "runc")
        .collect();
    if handlers.is_empty() {
        return None;
    }
    // Per Kubernetes Node with facts: its name, the handlers it runs, and why it skips others.
    let nodes: Vec<(String, Vec<String>, Vec<kubegrid_plan::SkippedRuntime>)> = run
        .req
        .hosts
        .iter()
        .zip(&run.facts)
        .filter(|(h, _)| {
            h.roles
                .iter()
                .any(|r| r == "control-plane" || r == "worker")
        })
        .filter_map(|(h, facts)| {
            let host = h.context(facts.clone()?, Default::default());
            let (configured, skipped) = kubegrid_plan::host_runtimes(&run.req.context, &host);
            Some((h.target.host.clone(), configured, skipped))
        })
        .collect();
    let mut runs = Vec::new();
    let mut nowhere = Vec::new();
    for handler in handlers {
        let on: Vec<&str> = nodes
            .iter()
            .filter(|(_, configured, _)| configured.contains(handler))
            .map(|(name, _, _)| name.as_str())
            .collect();
        if on.is_empty() {
            let why: Vec<String> = nodes
                .iter()
                .flat_map(|(name, _, skipped)| {
                    skipped
                        .iter()
                        .filter(|s| &s.handler == handler)
                        .map(move |s| format!("{name}: {s}"))
                })
                .collect();
            nowhere.push(format!(
                "RuntimeClass {handler} has no Node whose containerd runs its handler, so pods asking for it stay Pending; expected at least one ({})",
                if why.is_empty() {
                    "no Node's facts were read".to_string()
                } else {
                    why.join("; ")
                }
            ));
        } else {
            runs.push(format!("{handler} on {}", on.join(", ")));
        }
    }
    Some(CheckResult {
        name: RUNTIME_CLASSES.into(),
        ok: nowhere.is_empty(),
        detail: if nowhere.is_empty() {
            format!("every RuntimeClass has Nodes: {}", runs.join("; "))
        } else {
            nowhere.join("\n")
        },
        duration_ms: 0,
    })
}
