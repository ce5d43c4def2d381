#!/bin/sh
# Written by kubegrid for cluster gpu-prod; local edits are replaced on the next apply.
# containerd's runc shim runs this as the OCI runtime of the `gvisor` handler (its BinaryName):
# Debian's runsc package has no containerd-shim-runsc-v1, and the runc shim passes no flags of
# its own beyond runc's, so gVisor's are set here (docs/runtimes.md):
#   --platform=systrap  gVisor's default, named so it stays: it needs no /dev/kvm and runs
#                       in VMs and containers alike (the lab's systemd-nspawn hosts too).
#   --network=host      Debian's runsc (release 20240729) refuses every network namespace on
#                       kernels that give each namespace its own net.core.rmem_default
#                       ("cannot run with network enabled in root network namespace"; fixed
#                       upstream after that release). With host, the sandbox uses the
#                       network namespace it is started in (the pod's own, under CRI)
#                       through the host kernel's stack; system calls stay in gVisor.
exec /usr/bin/runsc --platform=systrap --network=host "$@"
