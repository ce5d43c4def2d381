//! Runtime handlers the spec lists but a host does not run (a kata handler where no VM can be
//! created, nvidia off GPU Nodes, gvisor and crun off Debian-family hosts), so the host's
//! containerd config leaves them out (see `kubegrid_plan::host_runtimes`). Each one is logged
//! and put in the host's report, so the user learns which handler is missing where, and why,
//! instead of finding pods that cannot start.

use crate::operation::Run;

/// Notes the skipped handlers of every host with facts.
pub fn note_skipped(run: &mut Run) {
    for i in 0..run.req.hosts.len() {
        let Some(facts) = &run.facts[i] else {
            continue;
        };
        let host = run.req.hosts[i].context(facts.clone(), Default::default());
        let (_, skipped) = kubegrid_plan::host_runtimes(&run.req.context, &host);
        for s in &skipped {
            tracing::warn!(
                host = %host.name,
                handler = %s.handler,
                "{s}"
            );
        }
        run.reports[i].skipped_runtimes = skipped.iter().map(|s| s.to_string()).collect();
    }
}
