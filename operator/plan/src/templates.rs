//! The tera templates, embedded so the binary is self-contained, and what they are rendered
//! with.

use std::sync::OnceLock;

use kubegrid_agent::facts::Facts;
use serde::Serialize;
use tera::Tera;

use crate::{
    context::{ClusterContext, HostContext, REGISTRY_CONFIG_PATH, RegistryMirror},
    error::{Error, Result, tera_detail},
};

/// An embedded template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Path under the repository's templates/ folder; playbooks name templates by it.
    pub name: &'static str,
    /// The template text.
    pub source: &'static str,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(Template { name: $name, source: include_str!(concat!("../../../templates/", $name)) }),*]
    };
}

/// Every template, by name.
pub const TEMPLATES: &[Template] = templates![
    "containerd/config-v2.toml.tera",
    "containerd/config-v3.toml.tera",
    "containerd/hosts.toml.tera",
    "crictl.yaml.tera",
    "sysctl/kubernetes.conf.tera",
    "modules-load/kubernetes.conf.tera",
];

/// CDI spec directories containerd scans when CDI is on.
const CDI_SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// The template named `name`, or an error listing the known ones.
pub fn template(name: &str) -> Result<&'static Template> {
    TEMPLATES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::UnknownTemplate {
            name: name.to_string(),
            known: TEMPLATES
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Renders template `name` for a host. `mirror` is the registry mirror a certs.d template is
/// rendered for; other templates ignore it.
///
/// Templates see `cluster` (`name`, `containerd.{line,major,minor}`, `runtimes`,
/// `default_runtime`, `sandbox_image`, `registry_config_path`, `registry_mirrors`, `kata` as
/// `[{handler, shim}]`, `nvidia`, `cdi_spec_dirs`), `host` (`name`, `roles`, and `facts` with
/// the wire's camelCase keys, e.g. `host.facts.osId`) and `mirror` (a [`RegistryMirror`] or
/// null). An undefined variable is an error, never an empty string.
pub fn render(
    name: &str,
    cluster: &ClusterContext,
    host: &HostContext,
    mirror: Option<&RegistryMirror>,
) -> Result<String> {
    template(name)?;
    let tera = engine()?;
    let view = View::new(cluster, host, mirror);
    let context = tera::Context::from_serialize(&view).map_err(|e| Error::RenderTemplate {
        template: name.to_string(),
        host: host.name.clone(),
        detail: tera_detail(&e),
    })?;
    tera.render(name, &context)
        .map_err(|e| Error::RenderTemplate {
            template: name.to_string(),
            host: host.name.clone(),
            detail: tera_detail(&e),
        })
}

/// The templates are static, so they are parsed once per process.
fn engine() -> Result<&'static Tera> {
    static ENGINE: OnceLock<Result<Tera, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut tera = Tera::default();
            // Nothing rendered here is HTML; escaping would corrupt TOML and YAML.
            tera.autoescape_on(Vec::new());
            tera.add_raw_templates(TEMPLATES.iter().map(|t| (t.name, t.source)))
                .map_err(|e| tera_detail(&e))?;
            Ok(tera)
        })
        .as_ref()
        .map_err(|detail| Error::LoadTemplates {
            detail: detail.clone(),
        })
}

/// What templates see: `cluster`, `host` (with `host.facts`) and, for certs.d, `mirror`.
#[derive(Serialize)]
struct View<'a> {
    cluster: ClusterView<'a>,
    host: HostView<'a>,
    mirror: Option<&'a RegistryMirror>,
}

#[derive(Serialize)]
struct ClusterView<'a> {
    name: &'a str,
    containerd: ContainerdView,
    runtimes: &'a [String],
    default_runtime: &'a str,
    sandbox_image: &'a str,
    registry_config_path: &'static str,
    registry_mirrors: &'a [RegistryMirror],
    /// Kata handlers, so templates need no string slicing.
    kata: Vec<KataView<'a>>,
    nvidia: bool,
    cdi_spec_dirs: &'static [&'static str],
}

#[derive(Serialize)]
struct ContainerdView {
    /// "1.7"
    line: String,
    major: u64,
    minor: u64,
}

#[derive(Serialize)]
struct KataView<'a> {
    /// Handler name ("kata-qemu").
    handler: &'a str,
    /// Shim name ("qemu").
    shim: &'a str,
}

#[derive(Serialize)]
struct HostView<'a> {
    name: &'a str,
    roles: &'a [String],
    facts: &'a Facts,
}

impl<'a> View<'a> {
    fn new(
        cluster: &'a ClusterContext,
        host: &'a HostContext,
        mirror: Option<&'a RegistryMirror>,
    ) -> Self {
        let kata = cluster
            .runtimes
            .iter()
            .filter_map(|r| {
                r.strip_prefix("kata-").map(|shim| KataView {
                    handler: r.as_str(),
                    shim,
                })
            })
            .collect();
        View {
            cluster: ClusterView {
                name: &cluster.name,
                containerd: ContainerdView {
                    line: format!("{}.{}", cluster.containerd.major, cluster.containerd.minor),
                    major: cluster.containerd.major,
                    minor: cluster.containerd.minor,
                },
                runtimes: &cluster.runtimes,
                default_runtime: &cluster.default_runtime,
                sandbox_image: &cluster.sandbox_image,
                registry_config_path: REGISTRY_CONFIG_PATH,
                registry_mirrors: &cluster.registry_mirrors,
                kata,
                nvidia: cluster.has_runtime("nvidia"),
                cdi_spec_dirs: CDI_SPEC_DIRS,
            },
            host: HostView {
                name: &host.name,
                roles: &host.roles,
                facts: &host.facts,
            },
            mirror,
        }
    }
}
