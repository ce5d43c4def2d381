//! Runtime handlers the spec lists but a host cannot run: their binary is missing, so the
//! host's containerd config leaves them out (see `kubegrid_plan::host_runtimes`). Each one
//! is logged and put in the host's report, so the user learns which handler is missing
//! where instead of finding pods that cannot start.

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
                binary = s.binary,
                "runtime handler not configured: its binary is not installed on this host"
            );
        }
        run.reports[i].skipped_runtimes = skipped.iter().map(|s| s.to_string()).collect();
    }
}
