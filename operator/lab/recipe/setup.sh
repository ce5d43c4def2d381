#!/bin/sh
# Runs once inside the freshly debootstrapped base rootfs (via chroot), before it is
# frozen as the read-only lower layer that every lab host's overlay sits on.
# Anything per-host (hostname, machine-id, SSH host keys, authorized_keys) is left out
# here on purpose: `kubegrid lab up` writes it into each host's own upper layer.
set -eu

# A non-root user with passwordless sudo, so kubegrid's non-root SSH path gets exercised.
useradd --create-home --shell /bin/bash --groups sudo kube
printf 'kube ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/90-kube
chmod 0440 /etc/sudoers.d/90-kube
install -d -m 0700 -o root -g root /root/.ssh
install -d -m 0700 -o kube -g kube /home/kube/.ssh

# Key-only SSH; one host key type, which each host gets fresh at creation.
cat > /etc/ssh/sshd_config.d/10-kubegrid-lab.conf <<'CONF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
CONF
rm -f /etc/ssh/ssh_host_*

# An empty machine-id marks the image as unprovisioned; dbus must follow /etc/machine-id.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id
rm -f /etc/hostname

# Lab hosts have no route out and no DNS server.
printf '# lab hosts have no DNS server and no default route\n' > /etc/resolv.conf

# Units that only cost boot time and memory on a throwaway host with no console user.
for unit in console-getty.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
            e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
systemctl set-default multi-user.target

# The .debs and package lists are not needed at run time; hosts get packages from bundles.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/log/*.log /var/cache/debconf/*-old
