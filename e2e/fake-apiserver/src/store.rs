//! The generic object store behind every resource without a special route: objects as JSON,
//! one resourceVersion counter for all of them (as etcd has), and the history of changes
//! that watches replay and follow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::kinds::{Resource, kind_of};

/// How many changes the store keeps for watches to resume from. A watch from an older
/// resourceVersion gets 410 Expired, as from an apiserver whose etcd compacted.
const HISTORY: usize = 20_000;

/// Where one object lives: its resource, namespace (empty when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub resource: Resource,
    pub namespace: String,
    pub name: String,
}

/// What a change did, as a watch event's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One write, kept for watches.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub revision: u64,
    pub kind: ChangeType,
    pub key: ObjectKey,
    pub object: Value,
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The main resource: on resources with a status subresource, `status` is kept.
    Main,
    /// The `/status` subresource: only `status` changes.
    Status,
    /// Everything, for the test hooks that seed objects.
    Whole,
}

/// A refused request, turned into a Kubernetes `Status` body by the routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(key: &ObjectKey) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", key.resource.qualified(), key.name),
        )
    }

    fn conflict(key: &ObjectKey) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                key.resource.qualified(),
                key.name
            ),
        )
    }
}

/// What a delete did.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// The object has finalizers: it got a deletionTimestamp and stays until they are gone.
    Pending(Value),
    /// The object is gone.
    Gone(Value),
}

/// The objects, the counter and the history.
#[derive(Debug)]
pub(crate) struct Store {
    objects: BTreeMap<ObjectKey, Value>,
    history: VecDeque<Change>,
    revision: u64,
    status_subresources: BTreeSet<Resource>,
    /// Bumped on every change (and on partition changes), so watches and waiting tests wake.
    changes: watch::Sender<u64>,
    /// The last server-side apply of each field manager, per object: what a later apply by
    /// the same manager no longer sets is removed, as the API server's field ownership does.
    pub(crate) applied: BTreeMap<(ObjectKey, String), Value>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            // "0" means "any version" to a watch, so real versions start above it.
            revision: 1,
            status_subresources: [
                Resource::new("kubegrid.io", "clusters"),
                Resource::new("kubegrid.io", "nodes"),
            ]
            .into(),
            changes: watch::channel(0).0,
            applied: BTreeMap::new(),
        }
    }
}

impl Store {
    /// The current resourceVersion.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// A receiver that sees every later change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes watches and waiting tests without a write (e.g. a partition changed).
    pub(crate) fn notify(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn has_status(&self, resource: &Resource) -> bool {
        self.status_subresources.contains(resource)
    }

    pub(crate) fn enable_status(&mut self, resource: Resource) {
        self.status_subresources.insert(resource);
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of `resource`, in `namespace` or all of them.
    pub(crate) fn list<'a>(
        &'a self,
        resource: &'a Resource,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |(key, _)| {
                key.resource == *resource && namespace.is_none_or(|ns| key.namespace == ns)
            })
            .map(|(_, object)| object)
    }

    /// Changes after `revision`, or `None` when the history no longer reaches back that far.
    pub(crate) fn changes_since(&self, revision: u64) -> Option<impl Iterator<Item = &Change>> {
        let oldest = self.history.front().map_or(self.revision, |c| c.revision);
        if revision + 1 < oldest {
            return None;
        }
        let start = self.history.partition_point(|c| c.revision <= revision);
        Some(self.history.range(start..))
    }

    /// The oldest resourceVersion a watch can still resume from.
    pub(crate) fn oldest_revision(&self) -> u64 {
        self.history
            .front()
            .map_or(self.revision, |c| c.revision - 1)
    }

    /// POST: stores a new object in `namespace`, naming it from `generateName` when unnamed.
    pub(crate) fn create(
        &mut self,
        resource: &Resource,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, Failure> {
        if !is_object_with_metadata(&object) {
            return Err(Failure::new(400, "BadRequest", NOT_AN_OBJECT));
        }
        let meta = &mut object["metadata"];
        if meta["name"].as_str().is_none_or(str::is_empty) {
            let Some(prefix) = meta["generateName"].as_str().filter(|p| !p.is_empty()) else {
                return Err(Failure::new(
                    422,
                    "Invalid",
                    format!(
                        "{} is invalid: metadata.name: Required value: name or generateName is \
                         required",
                        resource.qualified()
                    ),
                ));
            };
            meta["name"] = json!(format!("{prefix}{}", suffix(self.revision + 1)));
        }
        let key = ObjectKey {
            resource: resource.clone(),
            namespace: namespace.to_owned(),
            name: meta["name"].as_str().unwrap_or_default().to_owned(),
        };
        if self.objects.contains_key(&key) {
            return Err(Failure::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", resource.qualified(), key.name),
            ));
        }
        if !namespace.is_empty() {
            meta["namespace"] = json!(namespace);
        }
        meta["uid"] = json!(uid(self.revision + 1));
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        if let Some(meta) = meta.as_object_mut() {
            meta.remove("deletionTimestamp");
            meta.remove("resourceVersion");
        }
        if self.has_status(resource)
            && let Some(fields) = object.as_object_mut()
        {
            fields.remove("status");
        }
        Ok(self.commit(key, object, ChangeType::Added))
    }

    /// PUT (or the result of a PATCH): replaces `part` of the object, with the
    /// resourceVersion in `incoming` as a precondition when it is set.
    pub(crate) fn update(
        &mut self,
        key: &ObjectKey,
        mut incoming: Value,
        part: Part,
    ) -> Result<Value, Failure> {
        let Some(old) = self.objects.get(key) else {
            return Err(Failure::not_found(key));
        };
        if !is_object_with_metadata(&incoming) {
            return Err(Failure::new(400, "BadRequest", NOT_AN_OBJECT));
        }
        let wanted = incoming["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if !wanted.is_empty() && wanted != old["metadata"]["resourceVersion"] {
            return Err(Failure::conflict(key));
        }
        let mut new = match part {
            Part::Status => {
                let mut new = old.clone();
                set_or_remove(&mut new, "status", incoming.get("status").cloned());
                new
            }
            Part::Main if self.has_status(&key.resource) => {
                set_or_remove(&mut incoming, "status", old.get("status").cloned());
                incoming
            }
            Part::Main | Part::Whole => incoming,
        };
        // The server owns these: a client cannot change them by writing.
        let old_meta = &old["metadata"];
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
        ] {
            if part != Part::Whole || new["metadata"][field].is_null() {
                set_or_remove(&mut new["metadata"], field, old_meta.get(field).cloned());
            }
        }
        for field in ["apiVersion", "kind"] {
            if new[field].is_null() {
                new[field] = old[field].clone();
            }
        }
        let generation = old_meta["generation"].as_i64().unwrap_or(1);
        let bumped = generation + i64::from(old.get("spec") != new.get("spec"));
        new["metadata"]["generation"] = json!(bumped);
        if !old_meta["deletionTimestamp"].is_null() {
            let before = finalizers(old);
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(Failure::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{}\" is invalid: metadata.finalizers: Forbidden: no new \
                         finalizers can be added if the object is being deleted, found new \
                         finalizers [\"{added}\"]",
                        key.resource.qualified(),
                        key.name
                    ),
                ));
            }
            if finalizers(&new).is_empty() {
                // The last finalizer is gone: the pending deletion completes now.
                return Ok(self.commit(key.clone(), new, ChangeType::Deleted));
            }
        }
        // As in the apiserver, a write that changes nothing is a no-op: no new
        // resourceVersion, no watch event (controllers rely on it to settle).
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"].clone();
        if new == *old {
            return Ok(new);
        }
        Ok(self.commit(key.clone(), new, ChangeType::Modified))
    }

    /// DELETE, with `preconditions` (`resourceVersion`, `uid`) from the DeleteOptions body.
    pub(crate) fn delete(
        &mut self,
        key: &ObjectKey,
        preconditions: &Value,
    ) -> Result<Deleted, Failure> {
        let Some(old) = self.objects.get(key) else {
            return Err(Failure::not_found(key));
        };
        for field in ["resourceVersion", "uid"] {
            if let Some(wanted) = preconditions[field].as_str()
                && old["metadata"][field] != wanted
            {
                return Err(Failure::new(
                    409,
                    "Conflict",
                    format!(
                        "Precondition failed: {field} in precondition: {wanted}, {field} in \
                         object meta: {}",
                        old["metadata"][field].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        if finalizers(old).is_empty() {
            let object = old.clone();
            return Ok(Deleted::Gone(self.commit(
                key.clone(),
                object,
                ChangeType::Deleted,
            )));
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Ok(Deleted::Pending(old.clone()));
        }
        let mut object = old.clone();
        object["metadata"]["deletionTimestamp"] = json!(now());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        // kube-apiserver bumps the generation when it sets the deletionTimestamp
        // (`rest.BeforeDelete`), so a controller's observedGeneration falls behind.
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        object["metadata"]["generation"] = json!(generation + 1);
        Ok(Deleted::Pending(self.commit(
            key.clone(),
            object,
            ChangeType::Modified,
        )))
    }

    /// The test hook's upsert: stores `object` whole, filling in what the server sets.
    pub(crate) fn put(&mut self, key: ObjectKey, mut object: Value) -> Value {
        if self.objects.contains_key(&key) {
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
            }
            return self
                .update(&key, object, Part::Whole)
                .unwrap_or_else(|refused| {
                    panic!(
                        "fake: put {} {}/{} refused: {}",
                        key.resource.qualified(),
                        key.namespace,
                        key.name,
                        refused.message
                    )
                });
        }
        let meta = &mut object["metadata"];
        if meta["uid"].is_null() {
            meta["uid"] = json!(uid(self.revision + 1));
        }
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = json!(now());
        }
        if meta["generation"].is_null() {
            meta["generation"] = json!(1);
        }
        self.commit(key, object, ChangeType::Added)
    }

    /// The harness mirror's upsert: stores `object` as given (another server's copy), and
    /// wakes waiters without recording a change or moving the counter.
    pub(crate) fn mirror_put(&mut self, key: ObjectKey, object: Value) {
        self.objects.insert(key, object);
        self.notify();
    }

    /// The harness mirror's removal; returns whether there was a copy.
    pub(crate) fn mirror_remove(&mut self, key: &ObjectKey) -> bool {
        let had = self.objects.remove(key).is_some();
        self.notify();
        had
    }

    /// Stores (or, for `Deleted`, removes) the object under a new resourceVersion and
    /// tells the watches.
    fn commit(&mut self, key: ObjectKey, mut object: Value, kind: ChangeType) -> Value {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        if object["kind"].is_null() {
            object["kind"] = json!(kind_of(&key.resource));
        }
        match kind {
            ChangeType::Deleted => {
                self.objects.remove(&key);
            }
            ChangeType::Added | ChangeType::Modified => {
                self.objects.insert(key.clone(), object.clone());
            }
        }
        self.history.push_back(Change {
            revision: self.revision,
            kind,
            key,
            object: object.clone(),
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.notify();
        object
    }
}

const NOT_AN_OBJECT: &str = "the object is not a JSON object with an object `metadata`";

fn is_object_with_metadata(object: &Value) -> bool {
    object.is_object() && object.get("metadata").is_none_or(Value::is_object)
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn set_or_remove(target: &mut Value, field: &str, value: Option<Value>) {
    match value {
        Some(value) if !value.is_null() => target[field] = value,
        _ => {
            if let Some(fields) = target.as_object_mut() {
                fields.remove(field);
            }
        }
    }
}

/// The current time as the apiserver writes timestamps (RFC 3339, whole seconds).
pub(crate) fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A UUID-shaped uid, unique within the fake.
fn uid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// The five-character suffix `generateName` gets, from the consonants and digits the
/// apiserver uses.
fn suffix(mut n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // Scramble so consecutive objects do not share a visible prefix.
    n = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}
