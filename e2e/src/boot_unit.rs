//! The boot unit the e2e TEST STAND-INS install in a lab host: a oneshot service that runs
//! the stand-in's script early at every boot and undoes its mounts first thing at shutdown.

use crate::{Host, LabGuard};

/// One stand-in's unit and script.
pub struct BootUnit<'a> {
    /// The unit's file name, e.g. `kubegrid-e2e-gpu-standin.service`.
    pub name: &'a str,
    /// What the stand-in makes the host look like, for `Description=` and the header.
    pub description: &'a str,
    /// The source file that explains it.
    pub source: &'a str,
    /// Extra `[Unit]` lines (e.g. a `ConditionPathExists=`), each ending in a newline.
    pub conditions: &'a str,
    /// Where the script goes in the host.
    pub script_path: &'a str,
    /// The script, run with /bin/sh.
    pub script: &'a str,
    /// `ExecStop=`: the command that undoes the script's mounts.
    pub stop: &'a str,
}

impl BootUnit<'_> {
    fn unit_text(&self) -> String {
        format!(
            "# TEST STAND-IN (kubegrid e2e only, never shipped): {description}.
# See {source}.
[Unit]
Description=kubegrid e2e stand-in: {description}
{conditions}DefaultDependencies=no
After=local-fs.target
Before=sysinit.target ssh.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh {script_path}
# Undone first thing at shutdown: stacked mounts over /sys and /proc left to systemd's own
# unmounting kept a rebooting host from finishing its shutdown.
ExecStop={stop}

[Install]
WantedBy=sysinit.target
",
            description = self.description,
            source = self.source,
            conditions = self.conditions,
            script_path = self.script_path,
            stop = self.stop,
        )
    }

    /// Writes the script and the unit into `host`, enables and starts the unit, then runs
    /// `check` there; panics with the ssh output when any of it fails.
    pub fn install(&self, lab: &LabGuard, host: &Host, check: &str) {
        let script = format!(
            "cat > {path} <<'KUBEGRID_EOF'\n{script}KUBEGRID_EOF\n\
             cat > /etc/systemd/system/{name} <<'KUBEGRID_EOF'\n{unit}KUBEGRID_EOF\n\
             systemctl daemon-reload && systemctl enable --now {name} && {check}",
            path = self.script_path,
            script = self.script,
            name = self.name,
            unit = self.unit_text(),
        );
        lab.ssh_ok(host, &script);
    }
}
