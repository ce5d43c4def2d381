//! Rules for sources.yaml that keep a build from starting on an ambiguous or unsafe file:
//! every name defined once, names that are safe as file names in the bundle, and only
//! https:// downloads. Checked by [`crate::Sources::validate`], before anything is fetched.

use std::{collections::BTreeMap, fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{Error as _, MapAccess, Visitor},
};

use crate::sources::Sources;

/// Deserializes a mapping whose keys must be unique: YAML lets a key repeat and serde keeps
/// the last value, so a second component of the same name would silently replace the first.
pub(crate) fn unique_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of names")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(A::Error::custom(format!(
                        "`{}` is defined twice; each name may appear once (the second would silently replace the first)",
                        short(&key)
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique(PhantomData))
}

/// At most this much of a name is quoted back.
const QUOTE_MAX: usize = 60;

fn short(name: &str) -> String {
    let mut s: String = name.chars().take(QUOTE_MAX).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s.escape_debug().to_string()
}

/// Names go into bundle paths (`bin/<arch>/<name>`, `repos/<distro>`) and manifests: plain
/// file names only, no `..`, no slashes, nothing hidden.
pub(crate) fn check_name(name: &str, at: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name != "."
        && !name.contains("..")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '~'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{at}: name `{}` is not a plain file name; use letters, digits and - _ . + ~ (no `..`, no `/`, not starting with a dot)",
            short(name)
        ))
    }
}

/// Downloads must be https: sources.yaml names upstreams on the internet, where plain http
/// can be changed on the way (checksum files included). `--mirror` may still be plain http
/// on a trusted network; that is the build's option, not the file's. `url` is the pattern
/// with its placeholders filled in.
pub(crate) fn check_https(pattern: &str, url: &str, at: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "{at}: `{}` is not an https:// URL; sources.yaml downloads only over https (a local mirror goes in --mirror)",
            short(pattern)
        ))
    }
}

/// Every name that lands in the bundle is defined once across all components, and every
/// name is a plain file name.
pub(crate) fn check_names(sources: &Sources) -> Result<(), String> {
    let mut defined: BTreeMap<&str, String> = BTreeMap::new();
    for (component, c) in &sources.components {
        check_name(component, &format!("component `{}`", short(component)))?;
        for (i, a) in c.artifacts.iter().enumerate() {
            let at = format!("component `{component}` artifact {}", i + 1);
            let names =
                a.name
                    .iter()
                    .map(|n| (n.as_str(), at.clone()))
                    .chain(a.extract.iter().map(|e| {
                        (
                            e.name.as_str(),
                            format!("{at} extract `{}`", short(&e.member)),
                        )
                    }));
            for (name, at) in names {
                check_name(name, &at)?;
                if let Some(first) = defined.get(name) {
                    return Err(format!(
                        "{at}: name `{name}` is already given by {first}; each artifact, extract and rootfs name may appear once, or the bundle would hold two files the playbooks cannot tell apart"
                    ));
                }
                defined.insert(name, at);
            }
        }
        if let Some(debs) = &c.debs {
            for p in &debs.packages {
                let at = format!("component `{component}` debs package `{}`", short(&p.name));
                check_name(&p.name, &at)?;
                if let Some(rootfs) = &p.rootfs {
                    let at = format!("{at} rootfs");
                    check_name(&rootfs.name, &at)?;
                    if let Some(first) = defined.get(rootfs.name.as_str()) {
                        return Err(format!(
                            "{at}: name `{}` is already given by {first}; each artifact, extract and rootfs name may appear once",
                            rootfs.name
                        ));
                    }
                    defined.insert(&rootfs.name, at);
                }
            }
        }
    }
    for (distro, debs) in &sources.os_packages {
        let at = format!("osPackages `{}`", short(distro));
        check_name(distro, &at)?;
        for p in &debs.packages {
            check_name(&p.name, &at)?;
        }
    }
    for version in sources.releases.keys() {
        check_name(version, &format!("release `{}`", short(version)))?;
    }
    Ok(())
}

/// A `rootfs` made of a package lists at least one file, and every path in it is relative
/// and stays inside the root file system; OS packages go into the bundle's apt repository, so
/// they cannot be made into one.
pub(crate) fn check_rootfs(sources: &Sources) -> Result<(), String> {
    for (distro, debs) in &sources.os_packages {
        if let Some(p) = debs.packages.iter().find(|p| p.rootfs.is_some()) {
            return Err(format!(
                "osPackages `{}` package `{}` has a `rootfs`; OS packages go into the bundle's apt repository; hint: make the root file system in a component's `debs`",
                short(distro),
                short(&p.name)
            ));
        }
    }
    for (component, c) in &sources.components {
        let Some(debs) = &c.debs else { continue };
        for p in &debs.packages {
            let Some(rootfs) = &p.rootfs else { continue };
            let at = format!(
                "component `{component}` debs package `{}` rootfs",
                short(&p.name)
            );
            if rootfs.files.is_empty() {
                return Err(format!(
                    "{at}: `files` is empty; list the package's files to take, like bin/busybox"
                ));
            }
            let paths: Vec<&String> = rootfs.files.iter().chain(rootfs.links.keys()).collect();
            for path in &paths {
                check_rootfs_path(path, &at)?;
                if let Some(inside) = paths.iter().find(|p| p.starts_with(&format!("{path}/"))) {
                    return Err(format!(
                        "{at}: `{}` is a file or link, but `{}` is inside it; a path cannot be both",
                        short(path),
                        short(inside)
                    ));
                }
                if paths.iter().filter(|p| p == &path).count() > 1 {
                    return Err(format!(
                        "{at}: `{}` is given twice; each path of the root file system may appear once",
                        short(path)
                    ));
                }
            }
            if let Some((path, _)) = rootfs
                .links
                .iter()
                .find(|(_, target)| target.is_empty() || target.contains('\0'))
            {
                return Err(format!(
                    "{at}: the link `{}` has an empty target; give the path it points to, like busybox",
                    short(path)
                ));
            }
        }
    }
    Ok(())
}

/// A path inside a root file system: relative, plain components, no `..`, fits a tar header.
fn check_rootfs_path(path: &str, at: &str) -> Result<(), String> {
    let plain = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
    if !plain {
        return Err(format!(
            "{at}: `{}` is not a relative path inside the root file system; use a path like bin/busybox (no leading `/`, no `.` or `..`, no empty parts)",
            short(path)
        ));
    }
    // The tar header's name field holds 100 bytes, and the rootfs tar names entries `./<path>`.
    if path.len() > 97 {
        return Err(format!(
            "{at}: `{}` is longer than 97 bytes, which the root file system's tar cannot name",
            short(path)
        ));
    }
    Ok(())
}

/// An `archNames` entry goes into URLs: a plain word, for amd64 or arm64.
pub(crate) fn check_arch_names(
    names: &std::collections::BTreeMap<kubegrid_plan::Arch, String>,
    at: &str,
) -> std::result::Result<(), String> {
    for (arch, name) in names {
        let word = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if *arch == kubegrid_plan::Arch::All || !word {
            return Err(format!(
                "{at}: archNames `{}: {name}` must name amd64 or arm64 and spell it as letters, digits, '_', '-' or '.'",
                arch.as_str()
            ));
        }
    }
    Ok(())
}

/// A `chart` is one file for every arch, rendered at build time: it needs a `name`, a
/// `render`, a URL without `{arch}` and pins under `all`; `render` belongs to charts alone.
pub(crate) fn check_chart(
    a: &crate::sources::ArtifactSource,
    at: &str,
) -> std::result::Result<(), String> {
    use crate::sources::ArtifactKind;
    if a.kind != ArtifactKind::Chart {
        return match a.render {
            Some(_) => Err(format!("{at}: only a `chart` can have `render`")),
            None => Ok(()),
        };
    }
    let Some(render) = &a.render else {
        return Err(format!(
            "{at}: a `chart` needs `render: {{release, namespace}}`, how the build renders it"
        ));
    };
    if a.name.is_none() {
        return Err(format!(
            "{at}: a `chart` needs a `name` (the rendered manifests are found by it)"
        ));
    }
    if a.url.contains("{arch}") || !a.arch_names.is_empty() {
        return Err(format!(
            "{at}: a `chart` serves every arch, so its URL takes no `{{arch}}` and it has no archNames"
        ));
    }
    if let Some((version, arch)) = a.checksum.sha256.iter().find_map(|(v, arches)| {
        arches
            .keys()
            .find(|k| **k != kubegrid_plan::Arch::All)
            .map(|k| (v, k))
    }) {
        return Err(format!(
            "{at}: the pin for {version} is under `{}`; a chart's pin goes under `all`",
            arch.as_str()
        ));
    }
    for (what, value, max) in [
        ("release", &render.release, 53),
        ("namespace", &render.namespace, 63),
    ] {
        let label = !value.is_empty()
            && value.len() <= max
            && !value.starts_with('-')
            && !value.ends_with('-')
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !label {
            return Err(format!(
                "{at}: render.{what} `{}` must be a DNS label of at most {max} lower-case letters, digits and '-'",
                short(value)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
