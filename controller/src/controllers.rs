//! One run of the operator's controllers (one per watched namespace, or one for all), while it
//! leads: their watches and caches are made first, then the context the reconciles share.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use roiergasias_crd::Workflow;
use tracing::{info, warn};

use crate::api::KubeCluster;
use crate::build::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::cache::Cache;
use crate::context::{Context, Settings};
use crate::reconcile::{error_policy, reconcile};

/// Resolves when the operator is asked to stop.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Runs the controllers for `namespaces` (all when empty) until `shutdown`, each running at most
/// `max_reconciles` reconciles at once (0: no limit).
pub async fn run(
    client: Client,
    reporter: Reporter,
    settings: &Settings,
    (namespaces, max_reconciles): (Vec<String>, u16),
    shutdown: Shutdown,
) {
    let scopes: Vec<Option<String>> = match namespaces.is_empty() {
        true => vec![None],
        false => namespaces.into_iter().map(Some).collect(),
    };
    let mut cache = Cache::default();
    let controllers: Vec<Controller<Workflow>> = scopes
        .iter()
        .map(|scope| {
            controller_for(&client, scope.as_deref(), &mut cache, &shutdown)
                .with_config(controller::Config::default().concurrency(max_reconciles))
        })
        .collect();
    let stores: Vec<Store<Workflow>> = controllers.iter().map(Controller::store).collect();
    let cluster = KubeCluster::new(client, cache, reporter, settings.metrics.clone());
    let ctx = Arc::new(Context::new(cluster, settings));
    let runs = controllers.into_iter().map(|controller| {
        let ctx = ctx.clone();
        controller
            .run(reconcile, error_policy, ctx.clone())
            .for_each(move |result| {
                match result {
                    // Already logged, with the workflow's name, by error_policy.
                    Err(controller::Error::ReconcilerFailed(..)) => {}
                    // Deleted: nothing of it is remembered any more.
                    Err(controller::Error::ObjectNotFound(gone)) => {
                        let key = format!("{}/{}", gone.namespace.unwrap_or_default(), gone.name);
                        ctx.forget_unless(|k| k != key);
                    }
                    Err(e) => warn!(error = %e, "controller"),
                    Ok(_) => {}
                }
                futures::future::ready(())
            })
    });
    let runs: Vec<_> = runs.collect();
    let gauges = report_phases(ctx.clone(), stores.clone());
    tokio::select! {
        _ = futures::future::join_all(runs) => {}
        _ = gauges => {}
        _ = stopped_before_ready(shutdown, stores) => {
            info!("stopped before the Workflow cache was filled: no reconcile had started");
        }
    }
}

/// The controller of one scope. Owned Jobs drive progress, through the cache the reconciles read;
/// their pods wake a Workflow when no node can take them, and the Job controller's FailedCreate
/// Events when admission refuses its pod. ConfigMaps are not watched: nothing in them changes
/// what the controller does next.
fn controller_for(
    client: &Client,
    scope: Option<&str>,
    cache: &mut Cache,
    shutdown: &Shutdown,
) -> Controller<Workflow> {
    fn api<K>(client: &Client, scope: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    // Jobs, ConfigMaps and pod templates carry this label: only the operator's own are watched.
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let jobs: Api<Job> = api(client, scope);
    let pods: Api<Pod> = api(client, scope);
    let (store, writer) = reflector::store();
    let (job_events, pod_events, workflow_of) = cache.watch((jobs, pods), &owned, store.clone());
    let (refusals, refused_workflow) = cache.watch_refusals(api(client, scope));
    // A Workflow seen finished drops its Jobs and pods from the caches.
    let forget = cache.clone();
    let workflows = watcher(api::<Workflow>(client, scope), watcher::Config::default())
        .default_backoff()
        .modify(slim_workflow)
        .reflect(writer)
        .applied_objects()
        .inspect(move |workflow| {
            if let Ok(workflow) = workflow {
                forget.forget_if_finished(workflow);
            }
        });
    Controller::for_stream(workflows, store)
        .owns_stream(job_events)
        .watches_stream(pod_events, workflow_of)
        .watches_stream(refusals, refused_workflow)
        .graceful_shutdown_on(shutdown.clone())
}

/// The cached Workflow keeps what the reconcile reads: never its managed fields or annotations
/// (`kubectl apply` keeps a second copy of the whole spec in one).
fn slim_workflow(workflow: &mut Workflow) {
    workflow.metadata.managed_fields = None;
    workflow.metadata.annotations = None;
}

/// Resolves on a shutdown that comes before every Workflow cache is filled. kube holds reconciles
/// until then, and a graceful shutdown stops the watch that would fill it: the controllers would
/// wait for each other forever.
async fn stopped_before_ready(shutdown: Shutdown, stores: Vec<Store<Workflow>>) {
    shutdown.await;
    let ready = stores
        .iter()
        .all(|s| s.wait_until_ready().now_or_never().is_some());
    if ready {
        futures::future::pending::<()>().await;
    }
}

/// Keeps the workflows-by-phase gauge current from the controllers' caches, and forgets what is
/// remembered of Workflows they no longer hold (a deletion the controller did not report).
async fn report_phases(ctx: Arc<Context<KubeCluster>>, stores: Vec<Store<Workflow>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let workflows: Vec<Arc<Workflow>> = stores.iter().flat_map(|s| s.state()).collect();
        let phases: Vec<Option<String>> = workflows
            .iter()
            .map(|w| {
                w.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .map(|p| format!("{p:?}"))
            })
            .collect();
        ctx.metrics
            .set_phase_counts(phases.iter().map(|p| p.as_deref()));
        let keys: std::collections::HashSet<String> =
            workflows.iter().map(|w| crate::memory::key(w)).collect();
        ctx.forget_unless(|key| keys.contains(key));
    }
}
