//! The install and reset playbooks' safety corners, compiled for the fixture cluster: etcd
//! members restart one at a time, the files holding join secrets go in cleanups that always
//! run, a retried init or join never resets a running control plane, and reset removes
//! kubegrid's external etcd.

use kubegrid_agent::protocol::{Action, Task};
use kubegrid_plan::{Batch, Bundle, Module, PhasePlan, Playbook, compile};

use crate::{
    common::write_bundle,
    k8s_fixtures::{k8s_cluster, k8s_host, variant},
};

/// The install playbook without the tasks that need real bundle files or issued
/// certificates (their own tests cover them), compiled for `host` of the external-etcd
/// variant.
fn compiled(host: &str) -> Vec<PhasePlan> {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let mut playbook = Playbook::builtin("install").unwrap();
    for phase in &mut playbook.phases {
        phase.tasks.retain(|t| {
            !matches!(
                t.module,
                Module::Binaries(_)
                    | Module::PkiFiles(_)
                    | Module::Archive(_)
                    | Module::Packages(_)
            ) && !matches!(&t.module, Module::Check(_) if t.name == "runc runs a container")
        });
    }
    let cluster = k8s_cluster(variant("v1.31-external-lb"));
    compile(&playbook, &cluster, &k8s_host(host), &bundle).unwrap()
}

fn phase<'a>(phases: &'a [PhasePlan], name: &str) -> &'a PhasePlan {
    phases
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no phase {name}"))
}

fn command(task: &Task) -> String {
    match &task.action {
        Action::Command(c) => c.argv.join(" "),
        other => panic!("{} is not a command: {other:?}", task.name),
    }
}

#[test]
fn etcd_members_start_together_but_restart_one_at_a_time_each_waiting_for_health() {
    let playbook = Playbook::builtin("install").unwrap();
    let together = playbook.phase("etcd").unwrap();
    assert_eq!(
        together.batch, None,
        "a new cluster's members start together"
    );
    let rolling = playbook.phase("etcd-restart").unwrap();
    assert_eq!(rolling.batch, Some(Batch::Hosts(1)));
    let names: Vec<&str> = playbook.phases.iter().map(|p| p.name.as_str()).collect();
    let at = |n: &str| names.iter().position(|p| *p == n).unwrap();
    assert_eq!(at("etcd-restart"), at("etcd") + 1);

    let phases = compiled("cp-2");
    let unit = |p: &PhasePlan| {
        p.tasks
            .iter()
            .find_map(|t| match &t.action {
                Action::SystemdUnit(u) if u.name == "etcd.service" => Some(u.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no etcd unit in {}", p.name))
    };
    let start = unit(phase(&phases, "etcd"));
    let restart = unit(phase(&phases, "etcd-restart"));
    assert!(
        !start.restart,
        "the parallel phase never restarts a running member"
    );
    assert!(restart.restart);
    // The same inputs, so the start's stamp is the restart's: a member started in the
    // first phase is not restarted again in the second.
    assert_eq!(start.content, restart.content);
    assert_eq!(start.watch, restart.watch);
    assert!(
        restart
            .watch
            .iter()
            .any(|w| w.to_str() == Some("/etc/etcd/pki/server.crt"))
    );
    // The next member goes down only once this one serves through the quorum again.
    let rolling = phase(&phases, "etcd-restart");
    let last = rolling.tasks.last().unwrap();
    let Action::Check(check) = &last.action else {
        panic!("etcd-restart ends with {last:?}, not a health check")
    };
    let health = format!("{check:?}");
    assert!(health.contains("endpoint health"), "{health}");
}

#[test]
fn join_secret_files_go_in_cleanups_that_always_run() {
    let init = compiled("cp-1");
    let cp = compiled("cp-2");
    let worker = compiled("worker-1");
    for (phases, phase_name, files) in [
        (
            &init,
            "control-plane-init",
            &[
                "/etc/kubernetes/kubegrid/kubeadm-init.yaml",
                "/etc/kubernetes/kubegrid/kubeadm-refresh.yaml",
            ][..],
        ),
        (
            &cp,
            "control-plane-join",
            &["/etc/kubernetes/kubegrid/kubeadm-join.yaml"][..],
        ),
        (
            &worker,
            "worker-join",
            &["/etc/kubernetes/kubegrid/kubeadm-join.yaml"][..],
        ),
    ] {
        let p = phase(phases, phase_name);
        let cleanup = p
            .tasks
            .iter()
            .find(|t| t.name == "join secrets cleanup")
            .unwrap_or_else(|| panic!("no cleanup in {phase_name}"));
        assert!(cleanup.always, "{phase_name}: the cleanup must always run");
        let argv = command(cleanup);
        for f in files {
            assert!(argv.contains(f), "{phase_name}: {argv} leaves {f}");
        }
        // The secrets are written before the cleanup, and nothing but it runs after a failure.
        let at = p.tasks.iter().position(|t| t.always).unwrap();
        let writes_secret = p.tasks.iter().position(|t| {
            matches!(&t.action, Action::File(f) if files.iter().any(|x| f.path.to_str() == Some(*x)))
        });
        assert!(writes_secret.is_some_and(|w| w < at), "{phase_name}");
        assert_eq!(
            p.tasks.iter().filter(|t| t.always).count(),
            1,
            "{phase_name}: only the cleanup runs after a failure"
        );
    }
    let everything_else = init
        .iter()
        .chain(&cp)
        .chain(&worker)
        .flat_map(|p| &p.tasks)
        .filter(|t| t.always && t.name != "join secrets cleanup")
        .count();
    assert_eq!(everything_else, 0);
}

#[test]
fn a_retried_init_or_control_plane_join_refuses_to_reset_a_running_control_plane() {
    let init = compiled("cp-1");
    let cp = compiled("cp-2");
    for (phases, phase_name, task) in [
        (&init, "control-plane-init", "kubeadm init"),
        (&cp, "control-plane-join", "kubeadm join"),
    ] {
        let p = phase(phases, phase_name);
        let script = command(p.tasks.iter().find(|t| t.name == task).unwrap());
        let reset = script
            .find("kubeadm reset --force")
            .expect("a retry resets");
        let guard = script
            .find("grep -qsx kube-apiserver /proc/[0-9]*/comm")
            .expect("the retry checks for a running API server");
        assert!(guard < reset, "{script}");
        let stacked_etcd = script
            .find("/etc/kubernetes/manifests/etcd.yaml && grep -qsx etcd /proc/[0-9]*/comm")
            .expect("the retry checks for kubeadm's running etcd");
        assert!(stacked_etcd < reset, "{script}");
        let refusal = &script[guard..reset];
        assert!(refusal.contains("exit 1"), "{refusal}");
        assert!(
            refusal.contains("will not run kubeadm reset over a live control plane"),
            "{refusal}"
        );
    }
}

#[test]
fn reset_stops_and_removes_kubegrids_external_etcd() {
    let playbook = Playbook::builtin("reset").unwrap();
    let tasks = &playbook.phase("reset").unwrap().tasks;
    let argv = |name: &str| match &tasks.iter().find(|t| t.name == name).unwrap().module {
        Module::Command(c) => (c.argv.join(" "), c.unless.clone().unwrap().join(" ")),
        other => panic!("{name}: {other:?}"),
    };
    let (stop, stop_unless) = argv("external etcd stopped");
    assert_eq!(stop, "systemctl disable --now etcd.service");
    assert!(stop_unless.contains("Written by kubegrid"), "{stop_unless}");
    let (remove, remove_unless) = argv("external etcd data, certificates and unit");
    for path in [
        "/var/lib/etcd",
        "/etc/etcd/pki",
        "/etc/systemd/system/etcd.service",
    ] {
        assert!(remove.contains(path), "{remove} leaves {path}");
    }
    // The unit goes last, so a reset cut short still finds kubegrid's etcd and goes on.
    assert!(remove.find("/var/lib/etcd") < remove.find("/etc/systemd/system/etcd.service"));
    assert!(
        remove_unless.contains("Written by kubegrid"),
        "only kubegrid's etcd is removed: {remove_unless}"
    );
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("external etcd stopped") < at("external etcd data, certificates and unit"));
}
