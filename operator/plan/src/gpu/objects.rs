//! Rendering the cluster objects of GPU Nodes and sandboxed runtimes from
//! templates/gpu-objects/.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value};
use tera::Tera;

use super::{
    GpuContext, GpuImages, ImageRef,
    labels::{CRUN_RUNTIME_LABEL, GPU_PRESENT_LABEL, GVISOR_RUNTIME_LABEL, KATA_RUNTIME_LABEL},
};
use crate::{
    context::ClusterContext,
    error::{Error, Result, tera_detail},
    templates::Template,
};

/// The namespace of the device plugin and the DCGM exporter: kube-system, as NVIDIA's static
/// manifests use, so nothing has to create one first.
pub const GPU_OBJECTS_NAMESPACE: &str = "kube-system";
/// The GPU Operator's chart, for `devicePlugin: gpu-operator`.
pub const GPU_OPERATOR_CHART: &str = "gpu-operator";
/// The Helm repository of [`GPU_OPERATOR_CHART`].
pub const GPU_OPERATOR_CHART_REPO: &str = "https://helm.ngc.nvidia.com/nvidia";
/// The chart version the values are written for. Its device plugin and DCGM exporter are the
/// ones sources.yaml pins for kubegrid's own manifests. sources.yaml has no chart entries, so
/// the chart is not in the bundle.
pub const GPU_OPERATOR_CHART_VERSION: &str = "v26.7.0";

/// The RuntimeClass (and containerd handler) the device plugin and the exporter run under.
const NVIDIA_RUNTIME_CLASS: &str = "nvidia";
/// The DCGM exporter's metrics port.
const DCGM_EXPORTER_PORT: u16 = 9400;

macro_rules! gpu_templates {
    ($($name:literal),* $(,)?) => {
        &[$(Template { name: $name, source: include_str!(concat!("../../../../templates/", $name)) }),*]
    };
}

/// The templates of the GPU cluster objects, by name; rendered only by this module's
/// functions, with their own context.
pub const GPU_OBJECT_TEMPLATES: &[Template] = gpu_templates![
    "gpu-objects/runtime-classes.yaml.tera",
    "gpu-objects/nvidia-device-plugin.yaml.tera",
    "gpu-objects/dcgm-exporter.yaml.tera",
    "gpu-objects/gpu-operator-values.yaml.tera",
];

/// Kata's VM overhead per shim, as kata-deploy's RuntimeClasses declare it
/// (tools/packaging/kata-deploy/runtimeclasses): memory, CPU.
const KATA_OVERHEAD: &[(&str, &str, &str)] = &[
    ("qemu", "160Mi", "250m"),
    ("qemu-runtime-rs", "160Mi", "250m"),
    ("qemu-coco-dev", "160Mi", "250m"),
    ("clh", "130Mi", "250m"),
    ("fc", "130Mi", "250m"),
    ("dragonball", "130Mi", "250m"),
    ("qemu-tdx", "2048Mi", "1"),
    ("qemu-snp", "2048Mi", "1"),
    ("qemu-se", "2048Mi", "1"),
    ("qemu-nvidia-gpu", "98304Mi", "1"),
];

/// What a cluster gets, by [`cluster_objects`]; None where it gets nothing of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuObjects {
    /// [`runtime_classes`].
    pub runtime_classes: Option<String>,
    /// [`device_plugin`], with `devicePlugin: nvidia-device-plugin`.
    pub device_plugin: Option<String>,
    /// [`dcgm_exporter`], unless the GPU Operator runs its own.
    pub dcgm_exporter: Option<String>,
    /// [`gpu_operator_values`], with `devicePlugin: gpu-operator`.
    pub gpu_operator_values: Option<String>,
}

/// Every GPU and runtime object for `cluster`. Without `cluster.gpu`, only RuntimeClasses.
/// With it: `nvidia-device-plugin` gets the device plugin and the DCGM exporter,
/// `gpu-operator` the chart values (the operator runs its own plugin and exporter), `none`
/// nothing more (the user runs the Kubernetes side of the GPU stack). `images` must be given
/// for `nvidia-device-plugin`.
pub fn cluster_objects(cluster: &ClusterContext, images: Option<&GpuImages>) -> Result<GpuObjects> {
    let mut objects = GpuObjects {
        runtime_classes: runtime_classes(cluster)?,
        ..Default::default()
    };
    let Some(gpu) = &cluster.gpu else {
        return Ok(objects);
    };
    gpu.validate()?;
    match gpu.device_plugin.as_str() {
        "gpu-operator" => objects.gpu_operator_values = Some(gpu_operator_values(gpu)?),
        "nvidia-device-plugin" => {
            let images = images.ok_or_else(|| Error::InvalidContext {
                problem: "device plugin `nvidia-device-plugin` needs its image and the DCGM exporter's pinned (the bundle's or sources.yaml's), and none were given".into(),
            })?;
            objects.device_plugin = Some(device_plugin(gpu, &images.device_plugin)?);
            objects.dcgm_exporter = Some(dcgm_exporter(gpu, &images.dcgm_exporter)?);
        }
        _ => {}
    }
    Ok(objects)
}

/// A handler's fixed pod overhead (memory, CPU): Kata's VM per kata-deploy; None for `nvidia`
/// and `crun` (runc-like, no sandbox of their own) and for `gvisor`, whose Sentry and Gofer run
/// inside the pod's own cgroup (gVisor documents no RuntimeClass overhead), so the pod's
/// limits already bound them. An error for a Kata shim kata-deploy gives no overhead for.
pub fn runtime_overhead(handler: &str) -> Result<Option<(&'static str, &'static str)>> {
    let Some(shim) = handler.strip_prefix("kata-") else {
        return Ok(None);
    };
    KATA_OVERHEAD
        .iter()
        .find(|(s, _, _)| *s == shim)
        .map(|(_, memory, cpu)| Some((*memory, *cpu)))
        .ok_or_else(|| Error::InvalidContext {
            problem: format!(
                "runtime `{handler}` has no documented pod overhead, so its RuntimeClass cannot say what its VM costs; kubegrid knows it for kata-{}",
                KATA_OVERHEAD
                    .iter()
                    .map(|(s, _, _)| *s)
                    .collect::<Vec<_>>()
                    .join(", kata-")
            ),
        })
}

#[derive(Serialize)]
struct RuntimeClassView {
    name: String,
    handler: String,
    memory: Option<&'static str>,
    cpu: Option<&'static str>,
    selector_key: Option<&'static str>,
    selector_value: Option<&'static str>,
}

/// One RuntimeClass per enabled handler but runc (which needs none): `nvidia` runs only on
/// GPU Nodes ([`GPU_PRESENT_LABEL`]), `kata-*` only where a VM can start
/// ([`KATA_RUNTIME_LABEL`]) and with the VM's overhead, `gvisor` and `crun` only where their
/// handler was configured ([`GVISOR_RUNTIME_LABEL`], [`CRUN_RUNTIME_LABEL`]). With
/// `devicePlugin: gpu-operator` the operator owns the `nvidia` RuntimeClass (it overwrites
/// one it finds), so it is left out. None when no handler needs one.
pub fn runtime_classes(cluster: &ClusterContext) -> Result<Option<String>> {
    let operator_owns_nvidia = cluster
        .gpu
        .as_ref()
        .is_some_and(|g| g.device_plugin == "gpu-operator");
    let mut classes = Vec::new();
    for handler in &cluster.runtimes {
        let known = matches!(handler.as_str(), "nvidia" | "gvisor" | "crun")
            || handler.starts_with("kata-");
        if handler == "runc"
            || classes
                .iter()
                .any(|c: &RuntimeClassView| &c.handler == handler)
        {
            continue;
        }
        if !known {
            return Err(Error::InvalidContext {
                problem: format!(
                    "runtime `{handler}` has no RuntimeClass kubegrid knows how to write; expected nvidia, gvisor, crun or kata-<shim>"
                ),
            });
        }
        if handler == "nvidia" && operator_owns_nvidia {
            continue;
        }
        let overhead = runtime_overhead(handler)?;
        let selector = match handler.as_str() {
            "nvidia" => Some(GPU_PRESENT_LABEL),
            "gvisor" => Some(GVISOR_RUNTIME_LABEL),
            "crun" => Some(CRUN_RUNTIME_LABEL),
            h if h.starts_with("kata-") => Some(KATA_RUNTIME_LABEL),
            _ => None,
        };
        classes.push(RuntimeClassView {
            name: handler.clone(),
            handler: handler.clone(),
            memory: overhead.map(|o| o.0),
            cpu: overhead.map(|o| o.1),
            selector_key: selector,
            selector_value: selector.map(|_| "true"),
        });
    }
    if classes.is_empty() {
        return Ok(None);
    }
    let mut context = tera::Context::new();
    context.insert("classes", &classes);
    render("gpu-objects/runtime-classes.yaml.tera", &context).map(Some)
}

#[derive(Serialize)]
struct ImageView<'a> {
    reference: String,
    tag: &'a str,
}

/// What the device plugin and the exporter templates share.
fn daemonset_context(image: &ImageRef) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert(
        "image",
        &ImageView {
            reference: image.reference(),
            tag: &image.tag,
        },
    );
    context.insert("namespace", GPU_OBJECTS_NAMESPACE);
    context.insert("runtime_class", NVIDIA_RUNTIME_CLASS);
    context.insert("gpu_label", GPU_PRESENT_LABEL);
    context
}

/// The NVIDIA device plugin DaemonSet on GPU Nodes, under the `nvidia` RuntimeClass, at
/// system-node-critical priority, tolerating `nvidia.com/gpu` taints, with `MIG_STRATEGY`
/// from the spec; with a MIG strategy other than none it also monitors MIG devices (which
/// needs CAP_SYS_ADMIN, as NVIDIA's chart grants it then).
pub fn device_plugin(gpu: &GpuContext, image: &ImageRef) -> Result<String> {
    gpu.validate()?;
    let mut context = daemonset_context(image);
    context.insert("mig_strategy", &gpu.mig_strategy);
    context.insert("mig", &(gpu.mig_strategy != "none"));
    render("gpu-objects/nvidia-device-plugin.yaml.tera", &context)
}

/// The DCGM exporter DaemonSet on GPU Nodes (under the `nvidia` RuntimeClass) and its Service
/// on port 9400.
pub fn dcgm_exporter(gpu: &GpuContext, image: &ImageRef) -> Result<String> {
    gpu.validate()?;
    let mut context = daemonset_context(image);
    context.insert("port", &DCGM_EXPORTER_PORT);
    render("gpu-objects/dcgm-exporter.yaml.tera", &context)
}

/// The GPU Operator's chart values (for [`GPU_OPERATOR_CHART_VERSION`]): kubegrid's
/// (template gpu-objects/gpu-operator-values.yaml.tera), then the user's `operator_values`
/// merged over them (maps key by key, anything else replaced), then `driver.enabled` and
/// `toolkit.enabled` forced to false and `mig.strategy` to the spec's again: kubegrid
/// installs the driver and the toolkit, and the spec's MIG strategy is the one the rest of
/// the cluster is built for.
pub fn gpu_operator_values(gpu: &GpuContext) -> Result<String> {
    gpu.validate()?;
    let name = "gpu-objects/gpu-operator-values.yaml.tera";
    let mut context = tera::Context::new();
    context.insert("mig_strategy", &gpu.mig_strategy);
    let base = render(name, &context)?;
    let mut values: Value =
        serde_yaml::from_str(&base).map_err(|e| Error::RenderClusterObject {
            template: name.to_string(),
            detail: format!("it did not render YAML: {e}"),
        })?;
    if let Some(user) = &gpu.operator_values {
        merge(&mut values, user);
    }
    set(&mut values, &["driver", "enabled"], Value::Bool(false));
    set(&mut values, &["toolkit", "enabled"], Value::Bool(false));
    set(
        &mut values,
        &["mig", "strategy"],
        Value::String(gpu.mig_strategy.clone()),
    );
    let body = serde_yaml::to_string(&values).map_err(|e| Error::RenderClusterObject {
        template: name.to_string(),
        detail: e.to_string(),
    })?;
    let header: String = base
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(format!(
        "# GPU Operator {GPU_OPERATOR_CHART_VERSION} chart values; rendered by kubegrid.\n{header}{body}"
    ))
}

/// `over` merged into `base`: maps key by key, anything else replaces.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// Sets `path` in `values`, turning whatever is in the way into maps.
fn set(values: &mut Value, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *values = value;
        return;
    };
    if !values.is_object() {
        *values = Value::Object(Map::new());
    }
    if let Value::Object(map) = values {
        set(
            map.entry(first.to_string()).or_insert(Value::Null),
            rest,
            value,
        );
    }
}

/// The templates are static, so they are parsed once per process.
fn engine() -> Result<&'static Tera> {
    static ENGINE: OnceLock<Result<Tera, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| crate::templates::load_templates(GPU_OBJECT_TEMPLATES))
        .as_ref()
        .map_err(|detail| Error::LoadTemplates {
            detail: detail.clone(),
        })
}

/// Renders a template; the leading newline its doc comment leaves is dropped.
fn render(name: &str, context: &tera::Context) -> Result<String> {
    engine()?
        .render(name, context)
        .map(|text| text.trim_start().to_string())
        .map_err(|e| Error::RenderClusterObject {
            template: name.to_string(),
            detail: tera_detail(&e),
        })
}
