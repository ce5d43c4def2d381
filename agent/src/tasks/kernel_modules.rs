//! The kernel_modules module: a modules-load.d file, and the modules loaded now.

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    exec,
    facts::{ModuleState, module_state},
    fsutil::{Perms, atomic_write, read_optional, read_or_empty, require_absolute},
    protocol::ModulesArgs,
};

/// Writes the file when it differs and loads every module that is not already present.
/// Every module is classified before anything changes, so a missing one fails the task
/// without a half-done file.
pub fn apply(args: &ModulesArgs, ctx: &Ctx) -> Result<Outcome> {
    require_absolute(&args.file)?;
    let kernel = read_or_empty(&ctx.host("/proc/sys/kernel/osrelease"))
        .trim()
        .to_string();
    let states: Vec<(&str, ModuleState)> = args
        .modules
        .iter()
        .map(|m| (m.as_str(), module_state(&ctx.root, &kernel, m)))
        .collect();
    if let Some((name, _)) = states.iter().find(|(_, s)| *s == ModuleState::Missing) {
        return Err(Error::ModuleMissing {
            name: name.to_string(),
            kernel,
        });
    }
    let mut changes = Vec::new();
    let mut output = String::new();
    if read_optional(&args.file)?.as_deref() != Some(args.content.as_bytes()) {
        changes.push(format!("write {}", args.file.display()));
        if !ctx.check_mode {
            atomic_write(&args.file, args.content.as_bytes(), Perms::mode(0o644))?;
        }
    }
    // Loaded and built-in modules are present; modprobe is only for loadable ones, and
    // would fail on a kernel without module support.
    for (name, _) in states.iter().filter(|(_, s)| *s == ModuleState::Loadable) {
        changes.push(format!("load {name}"));
        if !ctx.check_mode {
            let ran = exec::run(&["modprobe", name])?.ok_or(format!(
                "the module file for kernel {kernel} exists but does not load"
            ))?;
            output.push_str(&ran.tail());
        }
    }
    let present: Vec<&str> = states.iter().map(|(n, _)| *n).collect();
    Ok(Outcome::from_changes(
        &changes,
        &format!("present: {}", present.join(", ")),
        &output,
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testutil::write;

    fn ctx(root: &Path) -> Ctx {
        Ctx {
            root: root.to_path_buf(),
            store_dir: root.join("store"),
            state_dir: root.join("state"),
            check_mode: false,
            verified: Default::default(),
        }
    }

    #[test]
    fn built_in_modules_need_no_modprobe() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A monolithic kernel: no /lib/modules, no /proc/modules, modprobe would fail.
        write(root, "proc/sys/kernel/osrelease", "4.4.0\n");
        write(root, "proc/filesystems", "nodev\toverlay\n");
        write(root, "proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
        let args = ModulesArgs {
            file: root.join("etc/modules-load.d/kubegrid.conf"),
            content: "overlay\nbr_netfilter\n".into(),
            modules: vec!["overlay".into(), "br_netfilter".into()],
        };
        let out = apply(&args, &ctx(root)).unwrap();
        assert_eq!(out.message, format!("write {}", args.file.display()));
        let again = apply(&args, &ctx(root)).unwrap();
        assert!(!again.changed);
        assert_eq!(again.message, "present: overlay, br_netfilter");
    }

    #[test]
    fn a_missing_module_fails_before_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "proc/sys/kernel/osrelease", "6.1.0\n");
        let args = ModulesArgs {
            file: root.join("etc/modules-load.d/kubegrid.conf"),
            content: "vhost_net\n".into(),
            modules: vec!["vhost_net".into()],
        };
        let err = apply(&args, &ctx(root)).unwrap_err().to_string();
        assert!(
            err.starts_with("kernel module vhost_net is not loaded, not built into kernel 6.1.0"),
            "{err}"
        );
        assert!(!args.file.exists());
    }
}
