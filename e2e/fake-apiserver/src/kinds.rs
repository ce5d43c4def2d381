//! Resource names: the `(group, plural)` the store keys objects by, and the kinds they map to.

/// A resource as REST paths name it: `group` (empty for the core group) and `plural`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Resource {
    pub group: String,
    pub plural: String,
}

/// Kinds whose plural is not simply the lowercased kind plus `s`.
const KINDS: &[(&str, &str, &str)] = &[
    ("", "endpoints", "Endpoints"),
    ("", "configmaps", "ConfigMap"),
    ("", "serviceaccounts", "ServiceAccount"),
    ("", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("", "resourcequotas", "ResourceQuota"),
    ("", "limitranges", "LimitRange"),
    ("policy", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io", "clusterroles", "ClusterRole"),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
    ),
    ("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    ("apps", "statefulsets", "StatefulSet"),
    ("apps", "daemonsets", "DaemonSet"),
    ("apps", "replicasets", "ReplicaSet"),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
    ),
    ("monitoring.coreos.com", "servicemonitors", "ServiceMonitor"),
];

impl Resource {
    pub(crate) fn new(group: &str, plural: &str) -> Self {
        Self {
            group: group.to_owned(),
            plural: plural.to_owned(),
        }
    }

    /// The resource of objects of `api_version` and `kind`, e.g. `coordination.k8s.io/v1`
    /// and `Lease`.
    pub(crate) fn of_kind(api_version: &str, kind: &str) -> Self {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        let plural = KINDS
            .iter()
            .find(|(g, _, k)| *g == group && *k == kind)
            .map_or_else(
                || format!("{}s", kind.to_lowercase()),
                |(_, p, _)| (*p).into(),
            );
        Self::new(group, &plural)
    }

    /// `plural.group` (just `plural` for the core group), as apiserver messages name it.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The kind of `resource`'s objects, e.g. `Lease` for `leases`.
pub(crate) fn kind_of(resource: &Resource) -> String {
    if let Some((_, _, kind)) = KINDS
        .iter()
        .find(|(g, p, _)| *g == resource.group && *p == resource.plural)
    {
        return (*kind).into();
    }
    let singular = resource
        .plural
        .strip_suffix('s')
        .unwrap_or(&resource.plural);
    let mut chars = singular.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// `group/version`, or just `version` for the core group.
pub(crate) fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}
