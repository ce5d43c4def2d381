//! Whether a kernel module can be had. Shared by the facts and the kernel_modules task, so
//! preflight and the task agree about what "present" means.

use std::{fs, path::Path};

use super::{
    ModuleState,
    parse::{module_file_names, module_name_of_file, normalise_module},
};
use crate::fsutil::read_or_empty;

/// Features a module provides that a kernel with the module built in still shows. Monolithic
/// kernels (the lab's, some custom ones) have no /lib/modules and no /proc/modules, and list
/// only built-in modules with parameters under /sys/module.
const FEATURES: [(&str, FeatureProbe); 3] = [
    ("overlay", FeatureProbe::Filesystem("overlay")),
    ("br_netfilter", FeatureProbe::Path("proc/sys/net/bridge")),
    ("nf_conntrack", FeatureProbe::Path("proc/sys/net/netfilter")),
];

enum FeatureProbe {
    /// A filesystem type listed in /proc/filesystems.
    Filesystem(&'static str),
    /// A path that exists when the feature is there (relative to the root).
    Path(&'static str),
}

/// The state of module `name` on kernel `kernel`, from the files under `root`.
pub fn module_state(root: &Path, kernel: &str, name: &str) -> ModuleState {
    let name = normalise_module(name);
    let loaded = read_or_empty(&root.join("proc/modules"))
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name.as_str()));
    let sys = root.join("sys/module").join(&name);
    // Only loadable modules have initstate; a built-in one with parameters has the directory.
    if loaded || sys.join("initstate").exists() {
        return ModuleState::Loaded;
    }
    let moddir = root.join("lib/modules").join(kernel);
    if sys.is_dir()
        || module_file_names(&read_or_empty(&moddir.join("modules.builtin"))).contains(&name)
        || feature_present(root, &name)
    {
        return ModuleState::Builtin;
    }
    if module_file_names(&read_or_empty(&moddir.join("modules.dep"))).contains(&name)
        || find_module_file(&moddir, &name)
    {
        return ModuleState::Loadable;
    }
    ModuleState::Missing
}

fn feature_present(root: &Path, name: &str) -> bool {
    FEATURES
        .iter()
        .filter(|(m, _)| *m == name)
        .any(|(_, probe)| match probe {
            FeatureProbe::Filesystem(fs) => read_or_empty(&root.join("proc/filesystems"))
                .lines()
                .any(|l| l.split_whitespace().last() == Some(fs)),
            FeatureProbe::Path(p) => root.join(p).exists(),
        })
}

/// Walks the module tree for `<name>.ko*`, for hosts whose modules.dep was not generated.
fn find_module_file(dir: &Path, name: &str) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(kind) = e.file_type() else {
            return false;
        };
        if kind.is_dir() {
            find_module_file(&e.path(), name)
        } else {
            module_name_of_file(&e.file_name().to_string_lossy()).as_deref() == Some(name)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::tree;

    #[test]
    fn classifies_modules_on_a_modular_kernel() {
        let k = "6.1.0-13-amd64";
        let root = tree(&[
            (
                "proc/modules",
                "overlay 163840 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\n",
            ),
            ("sys/module/vxlan/initstate", "live\n"),
            (
                "lib/modules/6.1.0-13-amd64/modules.builtin",
                "kernel/fs/ext4/ext4.ko\n",
            ),
            (
                "lib/modules/6.1.0-13-amd64/modules.dep",
                "kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko\n",
            ),
            (
                "lib/modules/6.1.0-13-amd64/kernel/net/ipv4/ipvs/ip_vs.ko.xz",
                "",
            ),
        ]);
        let state = |m| module_state(root.path(), k, m);
        assert_eq!(state("overlay"), ModuleState::Loaded);
        assert_eq!(state("br-netfilter"), ModuleState::Loaded);
        assert_eq!(state("vxlan"), ModuleState::Loaded);
        assert_eq!(state("ext4"), ModuleState::Builtin);
        assert_eq!(state("nf_conntrack"), ModuleState::Loadable);
        // modules.dep does not list it, but the file is there.
        assert_eq!(state("ip_vs"), ModuleState::Loadable);
        assert_eq!(state("kvm_intel"), ModuleState::Missing);
    }

    #[test]
    fn a_monolithic_kernel_counts_features_as_built_in() {
        let root = tree(&[
            ("proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n\text4\n"),
            ("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n"),
            ("proc/sys/net/netfilter/nf_conntrack_max", "262144\n"),
            ("sys/module/bridge/parameters/x", ""),
        ]);
        let state = |m| module_state(root.path(), "4.4.0", m);
        assert_eq!(state("overlay"), ModuleState::Builtin);
        assert_eq!(state("br_netfilter"), ModuleState::Builtin);
        assert_eq!(state("nf_conntrack"), ModuleState::Builtin);
        assert_eq!(state("bridge"), ModuleState::Builtin);
        assert_eq!(state("ip_vs"), ModuleState::Missing);
    }
}
