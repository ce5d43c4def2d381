//! TEST STAND-IN, e2e only and never shipped: makes a lab host look like a GPU Node to
//! kubegrid's facts, which read the host's files.
//!
//! Lab hosts share the build machine's kernel: they have no GPU, no kernel headers and cannot
//! load modules. [`install`] gives one host
//!
//! - **an NVIDIA L4 on its PCI bus** (device 0x27b8, class 0x0302, at [`ADDRESS`]): a oneshot
//!   unit binds, at every boot, a directory over `/sys/bus/pci/devices` that holds a link to
//!   every real entry plus the fixture device's `vendor`, `device` and `class` files;
//! - **nouveau loaded until kubegrid blacklists it and the host reboots**
//!   ([`crate::nouveau_standin`]);
//! - **kernel headers that cannot build anything**: `/lib/modules/$(uname -r)/build` with an
//!   `include/` directory and a Makefile that fails, saying it is a stand-in. The kernel-headers
//!   preflight sees headers, and the NVIDIA driver package's DKMS build starts and fails at
//!   the module build, which is as far as a host without a GPU can take it.
//!
//! Everything else kubegrid does to the host (the blacklist, the reboot, the driver packages,
//! dkms) is real.

use crate::{Host, LabGuard, boot_unit::BootUnit};

/// The fixture GPU's PCI address.
pub const ADDRESS: &str = "0000:00:1e.0";

/// The stand-in's unit name inside the host.
pub const UNIT: &str = "kubegrid-e2e-gpu-standin.service";

/// Where the stand-in's script goes inside the host.
pub const SCRIPT_PATH: &str = "/usr/local/sbin/kubegrid-e2e-gpu-standin";

/// What the unit runs at every boot.
const SCRIPT: &str = r#"#!/bin/sh
# TEST STAND-IN (kubegrid e2e only, never shipped): see e2e/src/gpu_standin.rs.
set -e
fake=/run/kubegrid-e2e/pci-devices
mkdir -p "$fake"
# The real devices stay visible, as links to where sysfs keeps them.
for d in /sys/bus/pci/devices/*; do
  [ -e "$d" ] || continue
  ln -sfn "$(readlink -f "$d")" "$fake/${d##*/}"
done
gpu="$fake/0000:00:1e.0"
mkdir -p "$gpu"
echo 0x10de > "$gpu/vendor"
echo 0x27b8 > "$gpu/device"
echo 0x030200 > "$gpu/class"
mount --bind "$fake" /sys/bus/pci/devices
"#;

/// The stand-in headers' Makefile: any target fails, naming what it is.
const HEADERS_MAKEFILE: &str = "# TEST STAND-IN (kubegrid e2e only): no kernel to build against.
%:
\t@echo 'kubegrid e2e: TEST STAND-IN kernel headers (e2e/src/gpu_standin.rs); lab hosts cannot build or load modules' >&2; exit 2
all:
\t@echo 'kubegrid e2e: TEST STAND-IN kernel headers (e2e/src/gpu_standin.rs); lab hosts cannot build or load modules' >&2; exit 2
";

/// Installs and starts the GPU, nouveau and kernel-headers stand-ins on `host`; panics with
/// the ssh output when any fails.
pub fn install(lab: &LabGuard, host: &Host) {
    BootUnit {
        name: UNIT,
        description: "an NVIDIA L4 on the PCI bus",
        source: "e2e/src/gpu_standin.rs",
        conditions: "",
        script_path: SCRIPT_PATH,
        script: SCRIPT,
        stop: "/bin/umount /sys/bus/pci/devices",
    }
    .install(
        lab,
        host,
        &format!("test \"$(cat /sys/bus/pci/devices/{ADDRESS}/vendor)\" = 0x10de"),
    );
    let headers = format!(
        "set -e\n\
         b=/lib/modules/$(uname -r)/build\n\
         mkdir -p $b/include\n\
         echo 'TEST STAND-IN kernel headers (kubegrid e2e only): e2e/src/gpu_standin.rs' > $b/include/KUBEGRID-TEST-STANDIN\n\
         cat > $b/Makefile <<'KUBEGRID_EOF'\n{HEADERS_MAKEFILE}KUBEGRID_EOF\n"
    );
    lab.ssh_ok(host, &headers);
    crate::nouveau_standin::install(lab, host);
}
