//! The order of `dpkg -i` runs for a set of .debs installed together.
//!
//! `dpkg -i` unpacks every archive it is given before it configures any of them, but a
//! package's `Pre-Depends` must be *configured* before that package is even unpacked. So
//! one `dpkg -i` of a set where a package pre-depends on another of the same set refuses it
//! ("pre-dependency problem - not installing"), and everything that depends on it is left
//! unconfigured. apt splits such installs into several dpkg runs; so does the agent. Debian's
//! NVIDIA driver packages need it: `nvidia-legacy-check`, `glx-diversions` and
//! `nvidia-kernel-dkms` pre-depend on `nvidia-installer-cleanup`, and `nvidia-alternative`
//! and `libcuda1` on `nvidia-legacy-check`.

use std::collections::BTreeSet;

/// One .deb's name and the package names its `Pre-Depends` and `Depends` fields mention
/// (every alternative, without versions or arch qualifiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebRelations {
    /// `Package`.
    pub name: String,
    /// Names in `Pre-Depends`.
    pub pre_depends: Vec<String>,
    /// Names in `Depends`.
    pub depends: Vec<String>,
}

/// Parses what `dpkg-deb -f FILE Pre-Depends Depends` prints (`Field: value` lines, long
/// values continued on lines that start with a space) for package `name`.
pub fn parse_relations(name: &str, fields: &str) -> DebRelations {
    let mut pre_depends = Vec::new();
    let mut depends = Vec::new();
    let mut current: Option<&mut Vec<String>> = None;
    let mut value = String::new();
    let flush = |target: Option<&mut Vec<String>>, value: &mut String| {
        if let Some(t) = target {
            t.extend(names_in(value));
        }
        value.clear();
    };
    for line in fields.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        flush(current.take(), &mut value);
        let (field, rest) = line.split_once(':').unwrap_or((line, ""));
        current = match field.trim() {
            "Pre-Depends" => Some(&mut pre_depends),
            "Depends" => Some(&mut depends),
            _ => None,
        };
        value.push_str(rest.trim());
    }
    flush(current, &mut value);
    DebRelations {
        name: name.to_string(),
        pre_depends,
        depends,
    }
}

/// The package names a relation field mentions: `a (>= 1) | b:any, c` gives a, b, c.
fn names_in(field: &str) -> Vec<String> {
    field
        .split([',', '|'])
        .filter_map(|alt| alt.split_whitespace().next())
        .map(|n| n.split(':').next().unwrap_or(n).to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The dpkg runs for `debs`, as indices into it, in order. A set without pre-dependencies
/// inside it is one run. Otherwise the packages others pre-depend on (and what they need from
/// the set) come first, each run after the ones its pre-dependencies are in, and everything
/// else goes in one last run. A cycle of pre-dependencies cannot be ordered; its packages go
/// into the last run and dpkg says what it refuses.
pub fn dpkg_runs(debs: &[DebRelations]) -> Vec<Vec<usize>> {
    let names: BTreeSet<&str> = debs.iter().map(|d| d.name.as_str()).collect();
    let in_set = |list: &[String], own: &str| -> BTreeSet<String> {
        list.iter()
            .filter(|n| n.as_str() != own && names.contains(n.as_str()))
            .cloned()
            .collect()
    };
    // What must be configured before something else of the set is unpacked, closed over its
    // own pre-dependencies and dependencies inside the set (it is configured in its run).
    let mut early: BTreeSet<String> = debs
        .iter()
        .flat_map(|d| in_set(&d.pre_depends, &d.name))
        .collect();
    if early.is_empty() {
        return vec![(0..debs.len()).collect()];
    }
    loop {
        let more: BTreeSet<String> = debs
            .iter()
            .filter(|d| early.contains(&d.name))
            .flat_map(|d| {
                let mut need = in_set(&d.pre_depends, &d.name);
                need.extend(in_set(&d.depends, &d.name));
                need
            })
            .filter(|n| !early.contains(n))
            .collect();
        if more.is_empty() {
            break;
        }
        early.extend(more);
    }
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut left: Vec<usize> = (0..debs.len())
        .filter(|&i| early.contains(&debs[i].name))
        .collect();
    while !left.is_empty() {
        let (ready, waiting): (Vec<usize>, Vec<usize>) = left.iter().partition(|&&i| {
            in_set(&debs[i].pre_depends, &debs[i].name)
                .iter()
                .all(|n| done.contains(n))
        });
        if ready.is_empty() {
            break;
        }
        done.extend(ready.iter().map(|&i| debs[i].name.clone()));
        runs.push(ready);
        left = waiting;
    }
    let last: Vec<usize> = (0..debs.len())
        .filter(|&i| !done.contains(&debs[i].name))
        .collect();
    if !last.is_empty() {
        runs.push(last);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(name: &str, pre: &[&str], dep: &[&str]) -> DebRelations {
        DebRelations {
            name: name.into(),
            pre_depends: pre.iter().map(|s| s.to_string()).collect(),
            depends: dep.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn relation_fields_give_every_alternative_without_versions() {
        let r = parse_relations(
            "nvidia-persistenced",
            "Pre-Depends: init-system-helpers (>= 1.54~)\nDepends: libnvidia-cfg1 | libnvidia-tesla-470-cfg1 | libnvidia-cfg.so.1,\n adduser, libc6:any (>= 2.34)\n",
        );
        assert_eq!(r.pre_depends, ["init-system-helpers"]);
        assert_eq!(
            r.depends,
            [
                "libnvidia-cfg1",
                "libnvidia-tesla-470-cfg1",
                "libnvidia-cfg.so.1",
                "adduser",
                "libc6"
            ]
        );
        let none = parse_relations("firmware-nvidia-gsp", "");
        assert!(none.pre_depends.is_empty() && none.depends.is_empty());
    }

    #[test]
    fn a_set_without_pre_dependencies_inside_it_is_one_run() {
        let debs = [
            deb("containerd", &["dpkg"], &["runc"]),
            deb("runc", &[], &["libc6"]),
        ];
        assert_eq!(dpkg_runs(&debs), [vec![0, 1]]);
    }

    /// Debian bookworm's NVIDIA driver packages (their relations as Debian's index has them,
    /// cut to the set): cleanup first, then legacy-check, then the rest in one run.
    #[test]
    fn pre_dependencies_are_configured_in_runs_before_the_rest() {
        let debs = [
            deb(
                "glx-diversions",
                &["nvidia-installer-cleanup"],
                &["glx-alternative-mesa"],
            ),
            deb("glx-alternative-mesa", &["dpkg"], &["update-glx"]),
            deb("update-glx", &["dpkg"], &[]),
            deb(
                "nvidia-alternative",
                &["dpkg", "nvidia-legacy-check"],
                &["glx-alternative-nvidia"],
            ),
            deb(
                "libcuda1",
                &["nvidia-legacy-check"],
                &["nvidia-support", "nvidia-alternative"],
            ),
            deb(
                "nvidia-legacy-check",
                &["debconf", "pciutils", "nvidia-installer-cleanup"],
                &["debconf"],
            ),
            deb("nvidia-installer-cleanup", &[], &["debconf"]),
            deb(
                "nvidia-kernel-dkms",
                &["nvidia-installer-cleanup"],
                &["dkms"],
            ),
            deb(
                "glx-alternative-nvidia",
                &["dpkg"],
                &["update-glx", "glx-diversions"],
            ),
            deb("nvidia-support", &[], &["debconf"]),
        ];
        assert_eq!(
            dpkg_runs(&debs),
            [vec![6], vec![5], vec![0, 1, 2, 3, 4, 7, 8, 9]]
        );
    }

    #[test]
    fn what_an_early_package_depends_on_in_the_set_comes_with_it() {
        let debs = [
            deb("app", &["helper"], &[]),
            deb("helper", &[], &["helper-lib"]),
            deb("helper-lib", &[], &[]),
        ];
        assert_eq!(dpkg_runs(&debs), [vec![1, 2], vec![0]]);
    }

    #[test]
    fn a_cycle_of_pre_dependencies_goes_to_the_last_run_for_dpkg_to_refuse() {
        let debs = [
            deb("a", &["b"], &[]),
            deb("b", &["a"], &[]),
            deb("c", &[], &[]),
        ];
        assert_eq!(dpkg_runs(&debs), [vec![0, 1, 2]]);
    }
}
