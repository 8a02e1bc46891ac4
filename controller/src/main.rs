//! `roiergasias-operator`: runs the Workflow controller, its metrics/health server and,
//! optionally, leader election. KUBECONFIG (or the in-cluster config) selects the cluster.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, watcher};
use roiergasias_controller::build::{MANAGED_BY, MANAGED_BY_LABEL};
use roiergasias_controller::cache::Cache;
use roiergasias_controller::crash::CrashPoints;
use roiergasias_controller::leader::{self, LeaderConfig};
use roiergasias_controller::policy::{self, JobTemplates, Policy};
use roiergasias_controller::reconcile::{Context, error_policy, reconcile};
use roiergasias_controller::{http, telemetry::Metrics};
use roiergasias_crd::Workflow;
use tokio::sync::watch;
use tracing::{error, info, warn};

#[derive(Parser, Debug)]
#[command(name = "roiergasias-operator", version, about)]
struct Args {
    /// Namespace whose Workflows to reconcile; repeat for several. Default: all namespaces.
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,

    /// Image of the default runner container, used when a Workflow has no jobTemplate containers.
    #[arg(
        long,
        env = "ROIERGASIAS_RUNNER_IMAGE",
        default_value = "roiergasias:0.2.0"
    )]
    runner_image: String,

    /// Reconcile only while holding a Lease, so replicas never reconcile at once.
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = ArgAction::Set)]
    leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "roiergasias-operator")]
    leader_election_lease: String,

    /// Namespace of the leader-election Lease (in a pod: its own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, default_value = "info")]
    log_level: String,

    /// Whether a Workflow may bring its own jobTemplate (pod template, image, ServiceAccount...):
    /// allow (the original's behaviour) or refuse (only the default runner).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = JobTemplates::Allow)]
    job_templates: JobTemplates,

    /// ServiceAccounts a Workflow's jobTemplate may run its pods as, comma-separated or repeated;
    /// `default` is always allowed. Unset: any.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',',
          value_parser = policy::parse_service_account)]
    allowed_service_accounts: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

type Shutdown = Shared<BoxFuture<'static, ()>>;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_tracing(&args) {
        eprintln!(
            "roiergasias-operator: --log-level {:?}: {e}",
            args.log_level
        );
        return ExitCode::from(2);
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match args.log_format {
        Text => builder.try_init().map_err(|e| e.to_string())?,
        // Span fields (namespace, workflow) go on every line.
        Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .map_err(|e| e.to_string())?,
    }
    Ok(())
}
use LogFormat::{Json, Text};

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // Listening from the first instant, so a SIGTERM during start-up is graceful too.
    let shutdown: Shutdown = shutdown_signal(tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ))
    .boxed()
    .shared();
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (KUBECONFIG or in-cluster config): {e}"))?;
    let metrics = Arc::new(Metrics::new());
    let reporter = Reporter {
        controller: "roiergasias-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            args.runner_image.clone(),
            Recorder::new(client.clone(), reporter),
            metrics.clone(),
            CrashPoints::from_env(),
        )
        .with_policy(Policy {
            job_templates: args.job_templates,
            allowed_service_accounts: args.allowed_service_accounts.iter().cloned().collect(),
        }),
    );
    let (ready_tx, ready_rx) = watch::channel(false);

    let server = tokio::spawn(http::serve(
        args.metrics_addr,
        metrics.clone(),
        ready_rx,
        shutdown.clone(),
    ));
    let namespaces = args.namespaces.clone();
    let (direct_ctx, direct_namespaces) = (ctx.clone(), namespaces.clone());
    let controllers = {
        let shutdown = shutdown.clone();
        move || {
            let (ctx, namespaces, shutdown) = (ctx.clone(), namespaces.clone(), shutdown.clone());
            async move {
                run_controllers(ctx, namespaces, shutdown.clone()).await;
                if shutdown.peek().is_some() {
                    // Drained after SIGTERM: let the leader elector see the shutdown itself
                    // (and release the Lease) rather than a controller that quit on its own.
                    futures::future::pending::<()>().await;
                }
            }
        }
    };
    info!(
        namespaces = ?args.namespaces,
        runner_image = %args.runner_image,
        leader_election = args.leader_election,
        job_templates = ?args.job_templates,
        allowed_service_accounts = ?args.allowed_service_accounts,
        "starting"
    );
    if args.leader_election {
        let config =
            LeaderConfig::new(&args.leader_election_lease, &args.leader_election_namespace);
        leader::run_while_leading(client, &config, &ready_tx, shutdown.clone(), controllers)
            .await?;
    } else {
        ready_tx.send_replace(true);
        run_controllers(direct_ctx, direct_namespaces, shutdown.clone()).await;
    }
    ready_tx.send_replace(false);
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("metrics server on {}: {e}", args.metrics_addr).into()),
        Err(e) => return Err(format!("metrics server task: {e}").into()),
    }
    info!("stopped");
    Ok(())
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl+C: finish running reconciles, then stop.
async fn shutdown_signal(term: std::io::Result<tokio::signal::unix::Signal>) {
    let mut term = match term {
        Ok(term) => term,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM; only Ctrl+C stops the operator");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; shutting down gracefully"),
        _ = tokio::signal::ctrl_c() => info!("interrupt received; shutting down gracefully"),
    }
}

/// One controller per watched namespace (or one for all), until shutdown.
async fn run_controllers(ctx: Arc<Context>, namespaces: Vec<String>, shutdown: Shutdown) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    // Jobs, ConfigMaps and pod templates carry this label: only the operator's own are watched.
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    let mut cache = Cache::default();
    for scope in scopes {
        let client = ctx.client.clone();
        let (workflows, jobs, pods): (Api<Workflow>, Api<Job>, Api<Pod>) = match &scope {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client),
            ),
        };
        // Owned Jobs drive progress, through the cache the reconciles read; their pods wake a
        // Workflow when no node can take them. ConfigMaps are not watched: nothing in them
        // changes what the controller does next.
        let (job_events, pod_events, workflow_of) = cache.watch(jobs, pods, &owned);
        let controller = Controller::new(workflows, watcher::Config::default())
            .owns_stream(job_events)
            .watches_stream(pod_events, workflow_of)
            .graceful_shutdown_on(shutdown.clone());
        stores.push(controller.store());
        runs.push(
            controller
                .run(reconcile, error_policy, ctx.clone())
                .for_each(|result| async move {
                    match result {
                        // Already logged, with the workflow's name, by error_policy.
                        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                        Err(e) => warn!(error = %e, "controller"),
                        Ok(_) => {}
                    }
                }),
        );
    }
    ctx.set_cache(cache);
    let gauges = report_phases(ctx.clone(), stores.clone());
    tokio::select! {
        _ = futures::future::join_all(runs) => {}
        _ = gauges => {}
        _ = stopped_before_ready(shutdown, stores) => {
            info!("stopped before the Workflow cache was filled: no reconcile had started");
        }
    }
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

/// Keeps the workflows-by-phase gauge current from the controllers' caches.
async fn report_phases(ctx: Arc<Context>, stores: Vec<Store<Workflow>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let phases: Vec<Option<String>> = stores
            .iter()
            .flat_map(|s| s.state())
            .map(|w| {
                w.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .map(|p| format!("{p:?}"))
            })
            .collect();
        ctx.metrics
            .set_phase_counts(phases.iter().map(|p| p.as_deref()));
    }
}
