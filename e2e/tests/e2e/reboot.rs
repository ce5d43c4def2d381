//! The engine's controlled reboot (`reboot:` playbook phases) on lab hosts, for real: the
//! host reboots, the engine reconnects with the pinned host key once the boot id changed,
//! and the operation goes on to the next phase; a run killed while it waits is continued by
//! the next one without a second reboot; a host that comes back with another host key is
//! refused.
//!
//! The CLI runs only the built-in playbooks, whose reboot phase is behind GPU predicates
//! that never hold on lab hosts, so these tests drive the engine's API the way `apply` does
//! (the lab's spec, the e2e bundle and its agent) with a test playbook of their own.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use kubegrid_e2e::{LabGuard, bundle_dir};
use kubegrid_engine::{
    agent::Agents,
    operation::{self, Mode, Options, Outcome, Report, Request},
    progress::{Observer, Progress},
};
use kubegrid_journal::Journal;
use kubegrid_plan::{Bundle, Playbook};

use crate::lab_reboot::wait_new_boot_id;

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

/// Workers reboot; each host notes its boot id before and after the reboot phase.
const PLAYBOOK: &str = r#"
name: reboot-e2e
phases:
  - name: before
    hosts: all
    tasks:
      - name: boot id before
        command: {argv: [sh, -c, "cat /proc/sys/kernel/random/boot_id > /var/lib/e2e-before"]}
  - name: restart
    hosts: all
    reboot: {when: {role: worker}, timeout_seconds: 120}
  - name: after
    hosts: all
    tasks:
      - name: boot id after
        command: {argv: [sh, -c, "cat /proc/sys/kernel/random/boot_id > /var/lib/e2e-after"]}
"#;

/// Records every event; on the first "waiting for a new boot id" it aborts the operation's
/// task, as if kubegrid were killed right there (after the reboot was requested).
#[derive(Default)]
struct Watch {
    events: Mutex<Vec<Progress>>,
    kill_when_waiting: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Observer for Watch {
    fn event(&self, e: &Progress) {
        self.events.lock().unwrap().push(e.clone());
        if matches!(e, Progress::HostWaiting { .. })
            && let Some(task) = self.kill_when_waiting.lock().unwrap().take()
        {
            task.abort();
        }
    }
}

impl Watch {
    /// (host, task, message) of every finished task of the reboot phase, in order.
    fn reboot_tasks(&self) -> Vec<(String, String, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Progress::TaskFinished {
                    host,
                    phase,
                    task,
                    message,
                    ..
                } if phase == "restart" => Some((host.clone(), task.clone(), message.clone())),
                _ => None,
            })
            .collect()
    }
}

/// What `kubegrid apply` builds from the lab's spec, with the test playbook, stopping after
/// its last phase (no Kubernetes steps: the hosts are only prepared).
fn request(lab: &LabGuard, mode: Mode, playbook: &str) -> Request {
    let manifest = kubegrid_api::load(&lab.spec()).expect("the lab's spec");
    let bundle = Bundle::open(&bundle_dir()).expect("the e2e bundle");
    let agents = Agents::for_bundle(&bundle).expect("the bundle's agent");
    let mut context = kubegrid_engine::spec::cluster_context_for_bundle(&manifest, &bundle)
        .expect("cluster context");
    context.kubernetes = None;
    Request {
        mode,
        cluster: manifest.name().to_string(),
        spec_digest: "e2e-reboot".into(),
        context,
        hosts: kubegrid_engine::spec::hosts(&manifest),
        bundle: Arc::new(bundle),
        playbook: Arc::new(Playbook::parse("reboot-e2e", playbook).expect("test playbook")),
        agents: Arc::new(agents),
        options: Options {
            until: Some("after".into()),
            cluster_checks: false,
            ..Options::default()
        },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An apply of the test playbook.
async fn apply(lab: &LabGuard, watch: Arc<Watch>) -> Report {
    resume(lab, None, watch).await
}

/// An apply that resumes `from` (an interrupted operation), as the operator does.
async fn resume(lab: &LabGuard, from: Option<i64>, watch: Arc<Watch>) -> Report {
    let journal = Journal::open(&lab.journal()).await.unwrap();
    let mut req = request(lab, Mode::Apply, PLAYBOOK);
    req.options.resume_from = from.map(kubegrid_journal::OperationId);
    operation::execute(req, journal, watch)
        .await
        .expect("the operation runs")
}

fn host_report<'a>(report: &'a Report, name: &str) -> &'a operation::HostReport {
    report.hosts.iter().find(|h| h.name == name).unwrap()
}

#[test]
fn reboot_phase_reboots_the_selected_hosts_in_parallel_and_the_operation_goes_on() {
    let lab = LabGuard::up(3);
    let rt = runtime();
    let boots: Vec<String> = lab.hosts.iter().map(|h| lab.ssh_ok(h, BOOT_ID)).collect();

    // The dry run names the hosts it would reboot and reboots none.
    let watch = Arc::new(Watch::default());
    let report = rt.block_on(async {
        let journal = Journal::open(&lab.journal()).await.unwrap();
        operation::execute(request(&lab, Mode::Plan, PLAYBOOK), journal, watch.clone())
            .await
            .unwrap()
    });
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    let planned = watch.reboot_tasks();
    let hosts: Vec<&str> = planned.iter().map(|(h, _, _)| h.as_str()).collect();
    assert_eq!(hosts.len(), 2, "{planned:?}");
    assert!(
        hosts.contains(&"lab-2") && hosts.contains(&"lab-3"),
        "{planned:?}"
    );
    for (host, _, message) in &planned {
        assert!(
            message.starts_with(&format!("would reboot {host}")),
            "{message}"
        );
    }
    for (h, boot) in lab.hosts.iter().zip(&boots) {
        assert_eq!(
            &lab.ssh_ok(h, BOOT_ID),
            boot,
            "a dry run must not reboot {}",
            h.name
        );
    }

    let watch = Arc::new(Watch::default());
    let report = rt.block_on(apply(&lab, watch.clone()));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    for (h, boot) in lab.hosts.iter().zip(&boots) {
        let now = lab.ssh_ok(h, BOOT_ID);
        let before = lab.ssh_ok(h, "cat /var/lib/e2e-before");
        let after = lab.ssh_ok(h, "cat /var/lib/e2e-after");
        assert_eq!(&before, boot);
        assert_eq!(after, now, "the phase after the reboot ran on the new boot");
        let r = host_report(&report, &h.name);
        if h.name == "lab-1" {
            assert_eq!(&now, boot, "lab-1 is no worker and must not reboot");
            assert!(r.reboot.is_none());
            continue;
        }
        assert_ne!(&now, boot, "{} did not reboot", h.name);
        let reboot = r.reboot.as_ref().expect("a reboot in the host's report");
        assert_eq!((&reboot.old_boot_id, &reboot.new_boot_id), (boot, &now));
        assert_eq!(reboot.requested_by, report.operation);
        assert!(reboot.seconds.is_some_and(|s| s > 0.0), "{reboot:?}");
        // `--output json` carries the same report.
        let json = serde_json::to_value(&report).unwrap();
        let host = json["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == h.name.as_str())
            .unwrap();
        assert_eq!(host["reboot"]["oldBootId"], boot.as_str());
        assert_eq!(host["reboot"]["newBootId"], now.as_str());
    }

    // Both requests went out before either host was back: the reboots overlapped.
    let tasks = watch.reboot_tasks();
    let first_back = tasks.iter().position(|(_, t, _)| t == "rebooted").unwrap();
    let requested = tasks[..first_back]
        .iter()
        .filter(|(_, t, _)| t == "reboot requested")
        .count();
    assert_eq!(requested, 2, "{tasks:?}");

    // The journal has both steps of each host, and no reboot is left pending.
    rt.block_on(async {
        let journal = Journal::open(&lab.journal()).await.unwrap();
        let events = journal
            .events(kubegrid_journal::OperationId(report.operation), None)
            .await
            .unwrap();
        for host in ["lab-2", "lab-3"] {
            let steps: Vec<&str> = events
                .iter()
                .filter(|e| e.host == host && e.phase == "restart")
                .map(|e| e.task.as_str())
                .collect();
            assert_eq!(steps, ["reboot requested", "rebooted"], "{host}");
            assert_eq!(
                journal
                    .state(&report.cluster, &format!("reboot/{host}/restart"))
                    .await
                    .unwrap(),
                None
            );
        }
    });
}

#[test]
fn a_run_killed_while_waiting_for_the_reboot_is_continued_without_a_second_reboot() {
    killed_while_waiting_then_continued(false);
}

#[test]
fn an_interrupted_operation_resumed_like_the_operator_does_does_not_reboot_twice() {
    killed_while_waiting_then_continued(true);
}

/// Kills a run right after its reboot request, lets the host reboot, then runs again: a plain
/// re-apply (the CLI), or with `resume` the operator's resume of the interrupted operation.
fn killed_while_waiting_then_continued(resume_it: bool) {
    let lab = LabGuard::up(2);
    let worker = lab.host("lab-2");
    let rt = runtime();
    let boot1 = lab.ssh_ok(worker, BOOT_ID);

    // Killed right after the request, while it waits for the new boot id.
    let watch = Arc::new(Watch::default());
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let req = request(&lab, Mode::Apply, PLAYBOOK);
    let journal_path = lab.journal();
    let task = rt.spawn({
        let watch = watch.clone();
        async move {
            gate.await.unwrap();
            let journal = Journal::open(&journal_path).await.unwrap();
            operation::execute(req, journal, watch).await
        }
    });
    *watch.kill_when_waiting.lock().unwrap() = Some(task.abort_handle());
    go.send(()).unwrap();
    let ended = rt.block_on(task);
    assert!(
        ended.as_ref().is_err_and(|e| e.is_cancelled()),
        "the run was to be killed while waiting, but it ended: {ended:?}"
    );
    let (cluster, first_op) = rt.block_on(async {
        let journal = Journal::open(&lab.journal()).await.unwrap();
        let cluster = journal.operations(1).await.unwrap()[0].cluster.clone();
        let pending = journal
            .state(&cluster, "reboot/lab-2/restart")
            .await
            .unwrap()
            .expect("the request is journaled before it is sent");
        let pending: serde_json::Value = serde_json::from_str(&pending).unwrap();
        assert_eq!(pending["bootId"], boot1.as_str());
        (cluster, pending["operation"].as_i64().unwrap())
    });

    // The host reboots without anyone waiting for it.
    let boot2 = wait_new_boot_id(&lab, worker, &boot1, Duration::from_secs(120));

    // Applying again sees the reboot done: it journals it and goes on, rebooting nothing.
    let watch = Arc::new(Watch::default());
    let report = if resume_it {
        rt.block_on(async {
            let journal = Journal::open(&lab.journal()).await.unwrap();
            let marked = journal
                .interrupt_running(&cluster, "killed by the test while it waited")
                .await
                .unwrap();
            assert_eq!(marked, [kubegrid_journal::OperationId(first_op)]);
            resume(&lab, Some(first_op), watch.clone()).await
        })
    } else {
        rt.block_on(apply(&lab, watch.clone()))
    };
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:#?}");
    if resume_it {
        // The phase the killed run finished was carried over, not run again.
        let carried = watch.events.lock().unwrap().iter().any(|e| {
            matches!(e, Progress::TaskFinished { host, phase, task, .. }
                if host == "lab-2" && phase == "before" && task == "resume")
        });
        assert!(carried, "the finished phase `before` was run again");
    }
    assert_eq!(
        lab.ssh_ok(worker, BOOT_ID),
        boot2,
        "lab-2 was rebooted twice"
    );
    assert_eq!(lab.ssh_ok(worker, "cat /var/lib/e2e-after"), boot2);
    let reboot = host_report(&report, "lab-2")
        .reboot
        .clone()
        .expect("reboot report");
    assert_eq!(
        (reboot.old_boot_id.as_str(), reboot.new_boot_id.as_str()),
        (boot1.as_str(), boot2.as_str())
    );
    assert_eq!(reboot.requested_by, first_op);
    assert_eq!(reboot.seconds, None, "nobody waited for this reboot");
    let tasks = watch.reboot_tasks();
    assert!(
        tasks.iter().all(|(_, t, _)| t != "reboot requested"),
        "a second reboot was requested: {tasks:?}"
    );
    assert!(
        tasks
            .iter()
            .any(|(h, t, m)| h == "lab-2" && t == "rebooted" && m.contains("not rebooted again")),
        "{tasks:?}"
    );
    rt.block_on(async {
        let journal = Journal::open(&lab.journal()).await.unwrap();
        assert_eq!(
            journal
                .state(&cluster, "reboot/lab-2/restart")
                .await
                .unwrap(),
            None
        );
    });
}

#[test]
fn a_host_that_comes_back_with_another_host_key_is_refused() {
    let lab = LabGuard::up(1);
    let h = &lab.hosts[0];
    let rt = runtime();
    // The first phase swaps the host's key; the engine's connection is already open, so only
    // the reconnection after the reboot meets the new key.
    let playbook = PLAYBOOK.replace(
        "cat /proc/sys/kernel/random/boot_id > /var/lib/e2e-before",
        "rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key",
    );
    let report = rt.block_on(async {
        let journal = Journal::open(&lab.journal()).await.unwrap();
        let watch = Arc::new(Watch::default());
        operation::execute(request(&lab, Mode::Apply, &playbook), journal, watch)
            .await
            .unwrap()
    });
    assert_eq!(report.outcome, Outcome::Unreachable, "{report:#?}");
    let r = &report.hosts[0];
    assert_eq!(r.failed_phase.as_deref(), Some("restart"));
    let error = r.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("host key") && error.contains("changed"),
        "{error}"
    );
    // The phase after the reboot did not run. The host may still be finishing its boot when
    // the engine gives up on its key, so ssh (which ignores host keys here) is retried while
    // it cannot log in at all (exit 255), until the host answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let out = loop {
        let out = lab.ssh(h, "test -e /var/lib/e2e-after");
        if out.status.code() != Some(255) || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        kubegrid_e2e::describe(&out)
    );
}
