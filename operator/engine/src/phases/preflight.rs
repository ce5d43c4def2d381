//! Phase two: preflight over every host's facts. It blocks: one finding anywhere stops the
//! operation before any host is changed.

use super::Phase;
use crate::{
    error::Error,
    operation::Run,
    preflight::{self, Subject},
    progress::Progress,
};

/// Engine-side checks over the gathered facts.
#[derive(Debug, Clone, Copy)]
pub struct Preflight;

impl Phase for Preflight {
    fn name(&self) -> &str {
        "preflight"
    }

    async fn run(&self, run: &mut Run) -> Result<(), Error> {
        run.observer.event(&Progress::PhaseStarted {
            phase: self.name().to_string(),
            hosts: run.live().len(),
        });
        let subjects: Vec<Subject<'_>> = run
            .live()
            .into_iter()
            .filter_map(|i| {
                let h = &run.req.hosts[i];
                let facts = run.facts[i].as_ref()?;
                Some(Subject {
                    name: &h.target.host,
                    roles: &h.roles,
                    declared_arch: h.declared_arch.as_deref(),
                    facts,
                    clock_offset_ms: run.clock_offsets[i],
                    address: &h.target.address,
                    kubernetes: run.req.context.kubernetes.as_ref(),
                    containerd_source: run.req.context.containerd_source,
                    containerd_line: (
                        run.req.context.containerd.major,
                        run.req.context.containerd.minor,
                    ),
                    etcd_version: run.req.context.etcd_version.as_ref(),
                    gpu: run.req.context.gpu.as_ref(),
                    gpu_node: run.req.context.gpu.is_some() && h.gpu_node(facts),
                    gpu_required: h.gpu_required(),
                    runtimes: &run.req.context.runtimes,
                })
            })
            .collect();
        let findings = preflight::run(&subjects, &run.req.options.skip_checks);
        drop(subjects);
        for i in run.live() {
            let name = run.reports[i].name.clone();
            let mine: Vec<String> = findings
                .iter()
                .filter(|f| f.host == name)
                .map(ToString::to_string)
                .collect();
            if !mine.is_empty() {
                run.fail_host(i, self.name(), mine.join("; ")).await;
            }
        }
        run.findings = findings;
        run.observer.event(&Progress::PhaseFinished {
            phase: self.name().to_string(),
        });
        Ok(())
    }
}
