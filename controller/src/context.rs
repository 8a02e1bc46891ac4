//! What every reconcile shares, and the errors a reconcile can end with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use kube::ResourceExt;
use kube::runtime::events::Recorder;
use roiergasias_crd::Workflow;
use tokio::sync::Semaphore;

use crate::cache::Cache;
use crate::crash::CrashPoints;
use crate::policy::Policy;
use crate::telemetry::Metrics;

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub runner_image: String,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Test-only crash points (see [`CrashPoints`]).
    pub crash: CrashPoints,
    /// What a Workflow's jobTemplate may ask for (see [`Policy`]).
    pub policy: Policy,
    /// Consecutive failures per Workflow, for the error back-off.
    pub(crate) failures: Mutex<HashMap<String, u32>>,
    /// Consecutive write conflicts per Workflow, for their own (shorter) back-off.
    pub(crate) conflicts: Mutex<HashMap<String, u32>>,
    /// Parses and plans of specs running at once, on blocking threads: one per core.
    pub(crate) planning: Arc<Semaphore>,
    /// Per Workflow, the resourceVersions our last reconcile's status writes replaced (one per
    /// chained transition): a reconcile handed one of them (the cache has not yet seen our
    /// writes) is skipped, since the writes' own watch events bring the current one. Saves a
    /// doomed conflict, and its delay, per transition.
    pub(crate) superseded: Mutex<HashMap<String, Vec<String>>>,
    /// The running controllers' Job and pod caches; replaced each time they (re)start.
    cache: RwLock<Cache>,
}

impl Context {
    pub fn set_cache(&self, cache: Cache) {
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = cache;
    }

    pub(crate) fn cache(&self) -> Cache {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True when `workflow` is a version our last reconcile's status writes replaced; otherwise
    /// forgets those writes (the cache has caught up).
    pub(crate) fn behind_own_write(&self, workflow: &Workflow) -> bool {
        let mut superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        let key = key(workflow);
        match (superseded.get(&key), workflow.resource_version()) {
            (Some(old), Some(current)) if old.contains(&current) => true,
            (Some(_), _) => {
                superseded.remove(&key);
                false
            }
            (None, _) => false,
        }
    }

    /// The same context, enforcing `policy` (the default allows everything, as the original did).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    pub fn new(
        client: kube::Client,
        runner_image: String,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        crash: CrashPoints,
    ) -> Self {
        Context {
            client,
            runner_image,
            recorder,
            metrics,
            crash,
            policy: Policy::default(),
            failures: Mutex::new(HashMap::new()),
            conflicts: Mutex::new(HashMap::new()),
            planning: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            superseded: Mutex::new(HashMap::new()),
            cache: RwLock::new(Cache::default()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Workflow changed since it was read; reconciling the newer version")]
    Conflict,
    #[error("cannot encode the status: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the Workflow has no {0}")]
    Incomplete(&'static str),
    /// The status to write would not fit under the object limit: the Workflow fails instead.
    #[error("{0}")]
    StatusTooLarge(String),
}

impl Error {
    /// A short, bounded word for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Conflict => "conflict",
            Error::Encode(_) => "encode",
            Error::Incomplete(_) => "incomplete",
            Error::StatusTooLarge(_) => "status_too_large",
        }
    }
}

/// `namespace/name`.
pub(crate) fn key(workflow: &Workflow) -> String {
    format!(
        "{}/{}",
        workflow.namespace().unwrap_or_default(),
        workflow.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use roiergasias_crd::{WorkflowSpec, WorkflowYaml};

    fn context() -> Context {
        // No request is made: a client needs only a URL to exist.
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let recorder = Recorder::new(client.clone(), "test".into());
        Context::new(
            client,
            "runner".into(),
            recorder,
            Arc::new(Metrics::new()),
            CrashPoints::default(),
        )
    }

    fn at_version(rv: &str) -> Workflow {
        let mut wf = Workflow::new(
            "w",
            WorkflowSpec {
                workflow_yaml: WorkflowYaml {
                    name: "w".into(),
                    yaml: "version: 0.1".into(),
                },
                job_template: None,
            },
        );
        wf.metadata.namespace = Some("ns".into());
        wf.metadata.resource_version = Some(rv.into());
        wf
    }

    #[tokio::test]
    async fn a_copy_older_than_our_own_write_is_skipped_until_the_cache_catches_up() {
        let ctx = context();
        assert!(
            !ctx.behind_own_write(&at_version("10")),
            "nothing written yet"
        );
        // One reconcile chained two status writes: over version 10, then over 11.
        ctx.superseded
            .lock()
            .unwrap()
            .insert(key(&at_version("10")), vec!["10".into(), "11".into()]);
        assert!(ctx.behind_own_write(&at_version("10")), "stale copy");
        assert!(ctx.behind_own_write(&at_version("11")), "intermediate copy");
        assert!(ctx.behind_own_write(&at_version("10")), "still stale");
        assert!(!ctx.behind_own_write(&at_version("12")), "caught up");
        // Forgotten once the cache caught up: the map stays bounded.
        assert!(ctx.superseded.lock().unwrap().is_empty());
    }
}
