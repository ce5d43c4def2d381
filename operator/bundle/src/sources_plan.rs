//! Checking a [`Sources`] and turning it into the downloads of one build.

use kubegrid_plan::{Arch, FileKind, is_sha256_digest, is_sha256_hex};

use crate::{
    Error, Result,
    sources::{
        ArtifactKind, Checksum, ChecksumFormat, DebRootfs, DebSource, SOURCES_VERSION, SourceImage,
        Sources, expand, expand_as,
    },
};

/// The component whose version is the Kubernetes version itself.
pub const KUBERNETES_COMPONENT: &str = "kubernetes";

/// Everything one build fetches, resolved for a Kubernetes version and a set of arches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The Kubernetes version.
    pub kubernetes: String,
    /// The arches asked for.
    pub arches: Vec<Arch>,
    /// Files fetched by URL.
    pub files: Vec<PlannedFile>,
    /// Debian packages, per source and arch.
    pub debs: Vec<PlannedDebs>,
    /// Images, with the arches asked for.
    pub images: Vec<PlannedImage>,
}

/// One file fetched by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// sources.yaml component.
    pub component: String,
    /// Component version.
    pub version: String,
    /// Arch.
    pub arch: Arch,
    /// Bundle name of the file itself; `None` keeps only the extracted members.
    pub name: Option<String>,
    /// Manifest kind of the file itself.
    pub kind: FileKind,
    /// Upstream URL.
    pub url: String,
    /// What the download must hash to, or where to learn it.
    pub checksum: ExpectedChecksum,
    /// (member path, bundle name) pairs taken out of the archive as executables.
    pub extract: Vec<(String, String)>,
    /// A chart's rendering.
    pub render: Option<crate::sources::ChartRender>,
}

/// What a download must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedChecksum {
    /// A sha256 pinned in sources.yaml.
    Pinned(String),
    /// Looked up in an upstream checksum file.
    File {
        /// The checksum file's URL.
        url: String,
        /// Its format.
        format: ChecksumFormat,
        /// The file name to look up (for `sha256sum`).
        entry: String,
    },
}

/// Debian packages for one arch from one [`DebSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDebs {
    /// Where the packages come from, for messages: a component name or `os:<distro>`.
    pub origin: String,
    /// Arch.
    pub arch: Arch,
    /// (index URL, base URL) per repository, in search order.
    pub repos: Vec<(String, String)>,
    /// The packages.
    pub packages: Vec<PlannedDeb>,
    /// The distro an apt repository is generated for (OS packages only).
    pub distro: Option<String>,
}

/// One Debian package to find in the indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDeb {
    /// Package name.
    pub name: String,
    /// Exact Debian version wanted, if pinned.
    pub version: Option<String>,
    /// Manifest component.
    pub component: String,
    /// A root file system to make of the package instead of bundling it.
    pub rootfs: Option<DebRootfs>,
}

/// An image with the arches the bundle keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// Repository without tag.
    pub name: String,
    /// Tag.
    pub tag: String,
    /// Upstream pin, `sha256:<hex>`.
    pub digest: String,
    /// The arches asked for (all served by the pinned index).
    pub arches: Vec<Arch>,
    /// Component.
    pub component: String,
}

impl PlannedImage {
    /// `name:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

const PLACEHOLDERS: [&str; 3] = ["{v}", "{arch}", "{url}"];

impl Sources {
    /// Rules serde cannot express; the message names the component, release or image.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.version != SOURCES_VERSION {
            return Err(format!(
                "version is {}, this kubegrid reads sources version {SOURCES_VERSION}",
                self.version
            ));
        }
        crate::sources_check::check_names(self)?;
        crate::sources_check::check_rootfs(self)?;
        for (name, component) in &self.components {
            let at = format!("component `{name}`");
            if component.artifacts.is_empty() && component.debs.is_none() {
                return Err(format!("{at} has neither `artifacts` nor `debs`"));
            }
            for (i, a) in component.artifacts.iter().enumerate() {
                let at = format!("{at} artifact {} ({})", i + 1, a.url);
                check_pattern(&a.url, &at, false)?;
                check_whole_file(a, &at)?;
                crate::sources_check::check_chart(a, &at)?;
                if a.name.is_none() && a.extract.is_empty() {
                    return Err(format!(
                        "{at} has no `name` and no `extract`, so nothing of it would go into the bundle"
                    ));
                }
                if !a.extract.is_empty() && a.kind != ArtifactKind::Archive {
                    return Err(format!(
                        "{at}: only an `archive` can have `extract` members"
                    ));
                }
                check_checksum(&a.checksum, &at)?;
                crate::sources_check::check_arch_names(&a.arch_names, &at)?;
            }
            if let Some(debs) = &component.debs {
                check_debs(debs, &at)?;
            }
        }
        for (distro, debs) in &self.os_packages {
            check_debs(debs, &format!("osPackages `{distro}`"))?;
        }
        for (k8s, release) in &self.releases {
            let at = format!("release `{k8s}`");
            match release.components.get(KUBERNETES_COMPONENT) {
                Some(v) if v == k8s => {}
                other => {
                    return Err(format!(
                        "{at}: components.{KUBERNETES_COMPONENT} must be `{k8s}`, found {}",
                        other.map_or_else(|| "none".to_string(), |v| format!("`{v}`"))
                    ));
                }
            }
            for (component, version) in &release.components {
                if !self.components.contains_key(component) {
                    return Err(format!(
                        "{at} names component `{component}` {version}, which `components` does not define"
                    ));
                }
            }
            for image in &release.images {
                check_image(image, &at)?;
            }
        }
        Ok(())
    }

    /// The downloads of a bundle for Kubernetes `kubernetes` and `arches`, leaving out the
    /// components in `without`, and adding `os_packages` for that distro when given.
    /// Fails before anything is fetched when a file lacks the sha256 pin it needs.
    pub fn plan(
        &self,
        kubernetes: &str,
        arches: &[Arch],
        os_packages: Option<&str>,
        without: &[String],
    ) -> Result<BuildPlan> {
        let release = self
            .releases
            .get(kubernetes)
            .ok_or_else(|| Error::UnknownRelease {
                version: kubernetes.to_string(),
                known: self.kubernetes_versions().join(", "),
            })?;
        if arches.is_empty() || arches.contains(&Arch::All) {
            return Err(Error::BuildRequest {
                problem: "ask for one or more of amd64, arm64".into(),
            });
        }
        let optional: std::collections::BTreeSet<&str> = release
            .components
            .keys()
            .map(String::as_str)
            .chain(release.images.iter().map(|i| i.component.as_str()))
            .filter(|c| *c != KUBERNETES_COMPONENT)
            .collect();
        for w in without {
            if !optional.contains(w.as_str()) {
                return Err(Error::BuildRequest {
                    problem: format!(
                        "--without {w}: release {kubernetes} has no optional component `{w}`; it has {}",
                        optional.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        let mut plan = BuildPlan {
            kubernetes: kubernetes.to_string(),
            arches: arches.to_vec(),
            files: Vec::new(),
            debs: Vec::new(),
            images: Vec::new(),
        };
        for (name, version) in &release.components {
            if without.contains(name) {
                continue;
            }
            let component = &self.components[name];
            // A chart is one file for every arch.
            for a in component.artifacts.iter().filter(|a| a.render.is_some()) {
                plan.files
                    .push(planned_file(name, version, Arch::All, a.clone())?);
            }
            for &arch in arches {
                for a in component.artifacts.iter().filter(|a| a.render.is_none()) {
                    plan.files
                        .push(planned_file(name, version, arch, a.clone())?);
                }
                if let Some(debs) = &component.debs {
                    plan.debs
                        .push(planned_debs(debs, name, Some(version), arch, None));
                }
            }
        }
        if let Some(distro) = os_packages {
            let debs = self
                .os_packages
                .get(distro)
                .ok_or_else(|| Error::UnknownDistro {
                    distro: distro.to_string(),
                    known: self
                        .os_packages
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            for &arch in arches {
                let origin = format!("os:{distro}");
                plan.debs
                    .push(planned_debs(debs, &origin, None, arch, Some(distro)));
            }
        }
        for image in &release.images {
            if without.contains(&image.component) {
                continue;
            }
            let missing: Vec<&str> = arches
                .iter()
                .filter(|a| !image.arches.contains(a))
                .map(|a| a.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(Error::ImageArch {
                    image: format!("{}:{}", image.name, image.tag),
                    missing: missing.join(", "),
                    available: image
                        .arches
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            plan.images.push(PlannedImage {
                name: image.name.clone(),
                tag: image.tag.clone(),
                // validate() made sure every image has a digest.
                digest: image.digest.clone().unwrap_or_default(),
                arches: arches.to_vec(),
                component: image.component.clone(),
            });
        }
        Ok(plan)
    }
}

fn planned_file(
    component: &str,
    version: &str,
    arch: Arch,
    a: crate::sources::ArtifactSource,
) -> Result<PlannedFile> {
    let spelt = crate::sources::arch_name(&a.arch_names, arch);
    let expand = |pattern: &str, version: &str, _: Arch| expand_as(pattern, version, spelt);
    let url = expand(&a.url, version, arch);
    let checksum = match &a.checksum {
        Checksum {
            file: Some(file),
            format: Some(format),
            entry,
            ..
        } => ExpectedChecksum::File {
            url: expand(file, version, arch).replace("{url}", &url),
            format: *format,
            entry: entry.as_deref().map_or_else(
                || url.rsplit('/').next().unwrap_or_default().to_string(),
                |e| expand(e, version, arch),
            ),
        },
        Checksum { sha256, .. } => match sha256.get(version).and_then(|m| m.get(&arch)) {
            Some(hex) => ExpectedChecksum::Pinned(hex.clone()),
            None => {
                return Err(Error::MissingPin {
                    component: component.to_string(),
                    version: version.to_string(),
                    arch: arch.as_str().to_string(),
                    url,
                });
            }
        },
    };
    Ok(PlannedFile {
        component: component.to_string(),
        version: version.to_string(),
        arch,
        name: a.name.clone(),
        kind: a.kind.file_kind(),
        url,
        checksum,
        extract: a
            .extract
            .iter()
            .map(|e| (expand(&e.member, version, arch), e.name.clone()))
            .collect(),
        render: a.render.clone(),
    })
}

fn planned_debs(
    debs: &DebSource,
    origin: &str,
    version: Option<&str>,
    arch: Arch,
    distro: Option<&str>,
) -> PlannedDebs {
    let v = version.unwrap_or_default();
    PlannedDebs {
        origin: origin.to_string(),
        arch,
        repos: debs
            .repos
            .iter()
            .map(|r| {
                let spelt = crate::sources::arch_name(&r.arch_names, arch);
                (expand_as(&r.index, v, spelt), expand_as(&r.base, v, spelt))
            })
            .collect(),
        packages: debs
            .packages
            .iter()
            .map(|p| PlannedDeb {
                name: p.name.clone(),
                version: p.version.as_deref().map(|pv| expand(pv, v, arch)),
                component: p.component.clone().unwrap_or_else(|| {
                    if distro.is_some() {
                        p.name.clone()
                    } else {
                        origin.to_string()
                    }
                }),
                rootfs: p.rootfs.clone(),
            })
            .collect(),
        distro: distro.map(str::to_string),
    }
}

/// A URL pattern must be http(s) and use only known placeholders.
fn check_pattern(
    pattern: &str,
    at: &str,
    url_placeholder: bool,
) -> std::result::Result<(), String> {
    let sample = pattern
        .replace("{v}", "1.0.0")
        .replace("{arch}", "amd64")
        .replace("{url}", "https://example.org/x");
    if sample.contains('{') || sample.contains('}') {
        return Err(format!(
            "{at}: `{pattern}` has an unknown placeholder; known: {}",
            PLACEHOLDERS.join(" ")
        ));
    }
    if !url_placeholder && pattern.contains("{url}") {
        return Err(format!(
            "{at}: `{{url}}` is only allowed in a checksum file URL"
        ));
    }
    crate::sources_check::check_https(pattern, &sample, at)?;
    match reqwest::Url::parse(&sample) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(format!("{at}: `{pattern}` is not an http(s) URL")),
    }
}

/// A `deb` or `rootfs` goes into the bundle as the very file fetched, so it needs the name
/// playbooks ask the bundle for; a `deb` must be a `.deb` so hosts can install it.
fn check_whole_file(
    a: &crate::sources::ArtifactSource,
    at: &str,
) -> std::result::Result<(), String> {
    if !matches!(a.kind, ArtifactKind::Deb | ArtifactKind::Rootfs) {
        return Ok(());
    }
    if a.name.is_none() {
        return Err(format!(
            "{at}: a `{}` artifact needs a `name` (the name playbooks ask the bundle for)",
            a.kind.as_str()
        ));
    }
    if a.kind == ArtifactKind::Deb && !a.url.ends_with(".deb") {
        return Err(format!(
            "{at}: a `deb` artifact's URL must end in `.deb`, found `{}`; hint: a tarball is kind `archive` or `rootfs`",
            a.url
        ));
    }
    Ok(())
}

fn check_checksum(c: &Checksum, at: &str) -> std::result::Result<(), String> {
    match (&c.file, c.sha256.is_empty()) {
        (Some(file), true) => {
            check_pattern(file, &format!("{at} checksum file"), true)?;
            if c.format.is_none() {
                return Err(format!(
                    "{at}: a checksum `file` needs a `format` (single or sha256sum)"
                ));
            }
            Ok(())
        }
        (None, false) => {
            if c.format.is_some() || c.entry.is_some() {
                return Err(format!(
                    "{at}: `format` and `entry` describe a checksum file; pins need neither"
                ));
            }
            for (version, arches) in &c.sha256 {
                for (arch, hex) in arches {
                    if !is_sha256_hex(hex) {
                        return Err(format!(
                            "{at}: the sha256 pin for {version} {} is `{hex}`, not 64 lower-case hex digits",
                            arch.as_str()
                        ));
                    }
                }
            }
            Ok(())
        }
        (Some(_), false) => Err(format!(
            "{at}: give either a checksum `file` or `sha256` pins, not both"
        )),
        // A pinned artifact may start with no pins at all: the build then names the
        // missing (version, arch) instead of anyone inventing a hash.
        (None, true) => Ok(()),
    }
}

fn check_debs(debs: &DebSource, at: &str) -> std::result::Result<(), String> {
    if debs.repos.is_empty() || debs.packages.is_empty() {
        return Err(format!(
            "{at}: `debs` needs at least one repo and one package"
        ));
    }
    for r in &debs.repos {
        crate::sources_check::check_arch_names(&r.arch_names, &format!("{at} repo {}", r.index))?;
        check_pattern(&r.index, &format!("{at} repo index"), false)?;
        check_pattern(&r.base, &format!("{at} repo base"), false)?;
    }
    Ok(())
}

fn check_image(image: &SourceImage, at: &str) -> std::result::Result<(), String> {
    let at = format!("{at} image `{}:{}`", image.name, image.tag);
    let last = image.name.rsplit('/').next().unwrap_or_default();
    if image.name.is_empty() || last.contains(':') || image.name.contains('@') {
        return Err(format!(
            "{at}: `name` must be a repository without tag or digest"
        ));
    }
    match &image.digest {
        None => Err(format!(
            "{at} has no `digest`; images are pulled only by a pinned digest; hint: add the digest the registry serves for the tag (`crane digest {}:{}`), or leave the image out",
            image.name, image.tag
        )),
        Some(d) if !is_sha256_digest(d) => Err(format!(
            "{at}: digest `{d}` is not `sha256:` and 64 lower-case hex digits"
        )),
        Some(_) if image.arches.is_empty() || image.arches.contains(&Arch::All) => {
            Err(format!("{at}: `arches` must list amd64 and/or arm64"))
        }
        Some(_) => Ok(()),
    }
}
