//! TEST STAND-IN, e2e only and never shipped: makes a lab host look as if the `nouveau` kernel
//! module were loaded at boot, until kubegrid's blacklist file exists.
//!
//! Lab hosts share the build machine's kernel and cannot load modules, so the GPU e2e test
//! fakes the one fact a nouveau blacklist changes. [`install`] puts a oneshot unit into the
//! host and starts it at once; at every boot where
//! `/etc/modprobe.d/kubegrid-blacklist-nouveau.conf` does not exist it makes the module look
//! loaded where the agent's facts look (a module counts as loaded when `/proc/modules` lists
//! it or `/sys/module/<name>` exists):
//!
//! - a directory holding a bind mount of every real entry of `/sys/module` (lab hosts see
//!   none) plus a `nouveau/initstate` reading `live` is bound over `/sys/module`;
//! - `/proc/modules`, where the kernel has one (this build machine's monolithic kernel has
//!   none), is covered by a copy with a `nouveau` line.
//!
//! The mounts live in the host's mount namespace and end with its boot. After kubegrid writes
//! the blacklist and reboots the host, the unit's condition fails and the host sees the real
//! files again: nouveau is "gone", as on a real GPU machine.

use crate::{Host, LabGuard, boot_unit::BootUnit};

/// The blacklist file whose presence turns the stand-in off (written by kubegrid's
/// `gpu-prepare` phase).
pub const BLACKLIST: &str = "/etc/modprobe.d/kubegrid-blacklist-nouveau.conf";

/// The stand-in's unit name inside the host.
pub const UNIT: &str = "kubegrid-e2e-nouveau-standin.service";

/// Where the stand-in's script goes inside the host.
pub const SCRIPT_PATH: &str = "/usr/local/sbin/kubegrid-e2e-nouveau-standin";

/// What the unit runs.
const SCRIPT: &str = r#"#!/bin/sh
# TEST STAND-IN (kubegrid e2e only, never shipped): see e2e/src/nouveau_standin.rs.
set -e
fake=/run/kubegrid-e2e/sys-module
mkdir -p "$fake/nouveau"
echo live > "$fake/nouveau/initstate"
# Every real entry stays visible (lab hosts see none; a kernel with modules would).
for d in /sys/module/*; do
  [ -e "$d" ] || continue
  mkdir -p "$fake/${d##*/}"
  mount --bind "$d" "$fake/${d##*/}"
done
mount --bind "$fake" /sys/module
if [ -e /proc/modules ]; then
  { cat /proc/modules; echo "nouveau 2797568 0 - Live 0x0000000000000000"; } > /run/kubegrid-e2e/modules
  mount --bind /run/kubegrid-e2e/modules /proc/modules
fi
"#;

/// Installs and starts the stand-in on `host`; panics with the ssh output when it fails.
pub fn install(lab: &LabGuard, host: &Host) {
    let conditions = format!("ConditionPathExists=!{BLACKLIST}\n");
    BootUnit {
        name: UNIT,
        description: "nouveau looks loaded until kubegrid blacklists it",
        source: "e2e/src/nouveau_standin.rs",
        conditions: &conditions,
        script_path: SCRIPT_PATH,
        script: SCRIPT,
        stop: "/bin/sh -c 'umount -R /sys/module; if [ -e /run/kubegrid-e2e/modules ]; then umount /proc/modules; fi'",
    }
    .install(lab, host, "test -d /sys/module/nouveau");
}

/// Whether `host` shows nouveau as loaded now.
pub fn nouveau_loaded(lab: &LabGuard, host: &Host) -> bool {
    let out = lab.ssh(
        host,
        "test -d /sys/module/nouveau && exit 0; [ -e /proc/modules ] || exit 1; \
         grep -q '^nouveau ' /proc/modules",
    );
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!(
            "cannot tell whether nouveau is loaded on {}:\n{}",
            host.name,
            crate::describe(&out)
        ),
    }
}
