//! `roiergasias-operator`: runs the Workflow controller, its metrics/health server and,
//! optionally, leader election. KUBECONFIG (or the in-cluster config) selects the cluster.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, Parser, ValueEnum};
use futures::FutureExt;
use kube::Client;
use kube::runtime::events::Reporter;
use roiergasias_controller::context::Settings;
use roiergasias_controller::controllers::{self, Shutdown};
use roiergasias_controller::crash::CrashPoints;
use roiergasias_controller::leader::{self, LeaderConfig};
use roiergasias_controller::policy::{self, JobTemplates, Policy};
use roiergasias_controller::{http, telemetry::Metrics};
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

    /// Reconciles running at once; 0: no limit. Each holds an API request or two in flight, and
    /// each request in flight is an HTTP/1.1 connection with its TLS session and buffers (about
    /// 30 KB): a limit bounds memory, at the cost of queueing hand-offs behind a burst (1000
    /// workflows created at once: peak 86 MiB without a limit; see README Performance).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_reconciles: u16,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    one_malloc_arena();
    let args = Args::parse();
    if let Err(e) = init_tracing(&args) {
        eprintln!(
            "roiergasias-operator: --log-level {:?}: {e}",
            args.log_level
        );
        return ExitCode::from(2);
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates an arena of its own; for an I/O-bound process on two
/// workers the extra arenas are mostly fragmentation (200 workflows: peak 42 MiB with one arena,
/// 47 to 50 MiB without, in one bench session). `MALLOC_ARENA_MAX`, when set, still decides.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first in main, before any other thread exists; mallopt only sets a
        // parameter of the allocator.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// The work is I/O-bound: two workers suffice (the chart's pod has two cores; tokio's default of
/// one per core of the node would only add threads). Blocking threads run spec planning, itself
/// limited to one per core; each thread that allocates can get its own malloc arena, so their
/// number is kept near that limit rather than tokio's 512.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.min(2))
        .max_blocking_threads(cores.clamp(2, 4))
        .enable_all()
        .build()
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
    // The controllers publish Events as this reporter (see api/events.rs).
    let recorder = reporter;
    let settings = Arc::new(Settings {
        runner_image: args.runner_image.clone(),
        metrics: metrics.clone(),
        crash: CrashPoints::from_env(),
        policy: Policy {
            job_templates: args.job_templates,
            allowed_service_accounts: args.allowed_service_accounts.iter().cloned().collect(),
        },
    });
    let (ready_tx, ready_rx) = watch::channel(false);

    let server = tokio::spawn(http::serve(
        args.metrics_addr,
        metrics.clone(),
        ready_rx,
        shutdown.clone(),
    ));
    let namespaces = (args.namespaces.clone(), args.max_reconciles);
    let direct = (client.clone(), recorder.clone(), settings.clone());
    let controllers = {
        let (shutdown, client) = (shutdown.clone(), client.clone());
        move || {
            let (client, recorder, settings) = (client.clone(), recorder.clone(), settings.clone());
            let (namespaces, shutdown) = (namespaces.clone(), shutdown.clone());
            async move {
                controllers::run(client, recorder, &settings, namespaces, shutdown.clone()).await;
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
        let (client, recorder, settings) = direct;
        let namespaces = (args.namespaces.clone(), args.max_reconciles);
        controllers::run(client, recorder, &settings, namespaces, shutdown.clone()).await;
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
