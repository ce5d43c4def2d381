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
                        "{at}: name `{name}` is already given by {first}; each artifact and extract name may appear once, or the bundle would hold two files the playbooks cannot tell apart"
                    ));
                }
                defined.insert(name, at);
            }
        }
        if let Some(debs) = &c.debs {
            for p in &debs.packages {
                check_name(&p.name, &format!("component `{component}` debs"))?;
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

#[cfg(test)]
mod tests;
