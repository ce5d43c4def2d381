//! The kata-vm check: a Kata Containers handler runs every pod in a VM, so a worker that
//! cannot create one would get a handler that fails each pod asking for it. Refused before
//! anything changes; `--skip-check kata-vm` goes on, and such a host's containerd config
//! then leaves the kata handlers out (reported per host, see `kubegrid_plan::host_runtimes`).

use super::{Check, Finding, Subject, host::each};

pub(super) struct KataVm;
impl Check for KataVm {
    fn name(&self) -> &'static str {
        "kata-vm"
    }
    fn describe(&self) -> &'static str {
        "where the spec enables a kata runtime, every worker can create a VM (/dev/kvm)"
    }
    fn run(&self, hosts: &[Subject<'_>]) -> Vec<Finding> {
        each(hosts, self.name(), |h| {
            let kata: Vec<&str> = h
                .runtimes
                .iter()
                .filter(|r| r.starts_with("kata-"))
                .map(String::as_str)
                .collect();
            if kata.is_empty() || !h.has_role("worker") || kubegrid_plan::vm_capable(h.facts) {
                return None;
            }
            Some((
                format!(
                    "facts.gpu.kvm: {}; runtime {} requested",
                    kubegrid_plan::describe_kvm(&h.facts.gpu.kvm),
                    kata.join(", ")
                ),
                "a worker that can create a VM: /dev/kvm present and usable".into(),
                "kata runs each pod in a VM: on a VM host enable nested virtualisation and make /dev/kvm usable by root (kvm_intel/kvm_amd loaded), drop the kata runtimes from spec.containerRuntime.runtimes, or pass `--skip-check kata-vm` to go on without kata on this host".into(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use kubegrid_agent::facts::{Facts, Kvm};

    use super::*;

    fn findings(kvm: Kvm, roles: &[&str], runtimes: &[&str]) -> Vec<Finding> {
        let mut facts = Facts::default();
        facts.gpu.kvm = kvm;
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let runtimes: Vec<String> = runtimes.iter().map(|r| r.to_string()).collect();
        let subject = Subject {
            name: "w1",
            roles: &roles,
            declared_arch: None,
            facts: &facts,
            clock_offset_ms: 0,
            address: "10.0.0.1",
            kubernetes: None,
            containerd_source: Default::default(),
            containerd_line: (2, 1),
            etcd_version: None,
            gpu: None,
            gpu_node: false,
            gpu_required: false,
            runtimes: &runtimes,
        };
        KataVm.run(&[subject])
    }

    #[test]
    fn a_kata_runtime_is_refused_where_no_vm_can_be_created() {
        for kvm in [
            Kvm::Unknown,
            Kvm::NoDevice,
            Kvm::Unusable("KVM_CREATE_VM: Operation not permitted".into()),
        ] {
            let hits = findings(kvm.clone(), &["worker"], &["runc", "kata-qemu"]);
            assert_eq!(hits.len(), 1, "{kvm:?}: {hits:#?}");
            let f = &hits[0];
            assert_eq!((f.host.as_str(), f.check), ("w1", "kata-vm"));
            assert!(f.seen.contains("facts.gpu.kvm"), "{f}");
            assert!(f.seen.contains("kata-qemu"), "{f}");
            assert!(f.expected.contains("/dev/kvm"), "{f}");
            assert!(f.hint.contains("nested virtualisation"), "{f}");
            assert!(f.hint.contains("--skip-check kata-vm"), "{f}");
        }
        let seen = &findings(Kvm::NoDevice, &["worker"], &["kata-clh"])[0].seen;
        assert!(seen.starts_with("facts.gpu.kvm: no /dev/kvm;"), "{seen}");
        let seen = &findings(Kvm::Unusable("EPERM".into()), &["worker"], &["kata-clh"])[0].seen;
        assert!(seen.contains("(EPERM)"), "{seen}");
    }

    #[test]
    fn a_vm_capable_worker_no_kata_or_no_workload_passes() {
        assert!(findings(Kvm::Usable, &["worker"], &["runc", "kata-qemu", "kata-clh"]).is_empty());
        assert!(findings(Kvm::NoDevice, &["worker"], &["runc", "gvisor"]).is_empty());
        assert!(findings(Kvm::NoDevice, &["control-plane", "etcd"], &["kata-qemu"]).is_empty());
    }
}
