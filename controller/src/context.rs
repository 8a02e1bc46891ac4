//! What every reconcile shares, and the errors a reconcile can end with.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::api::Cluster;
use crate::crash::CrashPoints;
use crate::memory::Memory;
use crate::policy::Policy;
use crate::telemetry::Metrics;

/// What the operator is started with, the same for every run of its controllers.
pub struct Settings {
    pub runner_image: String,
    pub metrics: Arc<Metrics>,
    /// Test-only crash points (see [`CrashPoints`]).
    pub crash: CrashPoints,
    /// What a Workflow's jobTemplate may ask for (see [`Policy`]).
    pub policy: Policy,
}

/// Shared by every reconcile of one run of the controllers: their dependencies, and the one
/// per-Workflow [`Memory`].
pub(crate) struct Context<C> {
    pub(crate) cluster: C,
    pub(crate) runner_image: String,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) crash: CrashPoints,
    pub(crate) policy: Policy,
    /// Parses and plans of specs running at once, on blocking threads: one per core.
    pub(crate) planning: Arc<Semaphore>,
    pub(crate) memory: Memory,
}

impl<C: Cluster> Context<C> {
    pub(crate) fn new(cluster: C, settings: &Settings) -> Self {
        Context {
            cluster,
            runner_image: settings.runner_image.clone(),
            metrics: settings.metrics.clone(),
            crash: settings.crash.clone(),
            policy: settings.policy.clone(),
            planning: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            memory: Memory::default(),
        }
    }

    /// Forgets every Workflow for which `exists` is false (deleted ones).
    pub(crate) fn forget_unless(&self, exists: impl Fn(&str) -> bool) {
        self.memory.retain(exists);
    }
}
