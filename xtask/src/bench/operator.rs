//! `cargo xtask bench operator`: the real operator (release build, a subprocess
//! watching one bench namespace) runs 200 three-split workflows (node1, node2,
//! node2) created at once on the test cluster.
//!
//! Hand-off latency (Job n Complete → Job n+1 created): Kubernetes timestamps
//! have one-second resolution, far too coarse for a 250 ms target, so the bench
//! watches Jobs itself and stamps each event on arrival with a monotonic clock:
//! latency = arrival of Job n+1's first event − arrival of the event in which
//! Job n first shows `Complete=True`. Both events travel the same path
//! (apiserver → watch), so the delivery delay cancels out. The operator's own
//! `roiergasias_split_handoff_seconds` histogram and the second-resolution
//! timestamps are printed beside it as cross-checks.
//!
//! API writes: the API server's `apiserver_request_total` before and after, by
//! resource; only the operator writes ConfigMaps, Jobs (not jobs/status) and
//! Workflow status in the bench namespace; the bench's own 200 Workflow creates
//! are subtracted. Events are shared with the scheduler and job controller, so
//! the operator's are counted from the Events about Workflows.
//!
//! `--workflows N` (or `ROIERGASIAS_BENCH_WORKFLOWS`) changes the 200, up to 5000; `--json PATH`
//! also writes the figures as JSON; `ROIERGASIAS_OPERATOR_BIN` runs that operator binary instead
//! of building one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use roiergasias_crd::{Phase, Workflow, WorkflowSpec, WorkflowYaml};

use prometheus_parse::{Sample, Scrape, Value};
use roiergasias_testkit::{self as testkit, http as local_http};

use super::figures::{self, Figures};
use super::process::{DriverProcess, MemoryNow};
use super::{floor, pods};

use crate::cluster::Cluster;

const SPLITS: usize = 3;
pub(super) const MAX_WORKFLOWS: u64 = 5000;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

pub(super) const WORKFLOW_YAML: &str = r#"version: 0.1
environment:
  - greeting: "hello"
task:
  - node: node1
    sequential:
      - print: ["split 1 on node1: {{env:greeting}}"]
      - environment:
          - first: "from node1"
  - node: node2
    sequential:
      - print: ["split 2 on node2: {{env:first}}"]
  - node: node2
    sequential:
      - print: ["split 3 on node2"]
"#;

#[derive(clap::Args)]
pub struct OperatorArgs {
    /// Three-split workflows created at once (default 200; 20 with --real).
    #[arg(long, env = "ROIERGASIAS_BENCH_WORKFLOWS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_WORKFLOWS))]
    workflows: Option<u64>,
    /// Run on the real nodes (the cluster must have them): real pods of the runner image, and
    /// the gap from pod n's exit to pod n+1's start.
    #[arg(long)]
    real: bool,
    /// End each driver's run after this many minutes and report what it did by then (for
    /// batches the cluster cannot finish in the time at hand).
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(1..=600))]
    time_limit: Option<u64>,
    /// Run the operator only, not the floor after it.
    #[arg(long)]
    no_floor: bool,
    /// Also write the figures as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

pub fn run(args: &OperatorArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        figures::check_writable(path)?;
    }
    let nodes = if args.real { Nodes::Real } else { Nodes::Fake };
    let default = if args.real { 20 } else { 200 };
    let workflows = usize::try_from(args.workflows.unwrap_or(default))?;
    let operator = match std::env::var_os("ROIERGASIAS_OPERATOR_BIN").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => super::release_binary("roiergasias-controller", "roiergasias-operator")?,
    };
    let (kubeconfig, started) = match std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        Some(path) => (PathBuf::from(path), None),
        None => {
            let cluster = Cluster::from_env()?;
            let up = cluster.up(args.real || crate::cluster::real::wanted_by_env())?;
            (up.kubeconfig, (!up.reused).then_some(cluster))
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let plan = Plan {
        count: workflows,
        nodes,
        time_limit: args.time_limit.map(|m| Duration::from_secs(m * 60)),
        floor: !args.no_floor,
    };
    let result = runtime.block_on(bench(&kubeconfig, &operator, plan));
    if let Some(cluster) = started {
        cluster.down()?;
    }
    let (ours, floor) = result?;
    print_report(&ours);
    if let Some(floor) = &floor {
        print_against_floor(&ours.figures(), &floor.figures(), floor);
    }
    if let Some(path) = &args.json {
        run_figures(&ours, floor.as_ref(), &operator).write(path)?;
        println!("Figures written to {}", path.display());
    }
    Ok(())
}

/// What the bench saw of one Job, stamped on arrival.
struct JobSeen {
    workflow: String,
    split: usize,
    first_seen: Instant,
    complete_seen: Option<Instant>,
    created: Option<i64>,
    completed: Option<i64>,
}

struct Report {
    /// `operator` or `floor`.
    driver: &'static str,
    workflows: usize,
    succeeded: usize,
    total: Duration,
    handoffs: Vec<Duration>,
    coarse_handoffs: Vec<i64>,
    /// On real nodes: pod n's exit to pod n+1's start, seen (sorted) and by container times.
    pod_gaps: Vec<Duration>,
    coarse_pod_gaps: Vec<i64>,
    /// Jobs seen Complete: every split, unless the run hit its time limit.
    splits_done: usize,
    /// The operator's reconciles that ended in an error, by kind.
    reconcile_errors: BTreeMap<String, f64>,
    operator_histogram: Option<Histogram>,
    operator_writes: BTreeMap<String, f64>,
    /// Bytes of the status patches the operator sent (its own counter).
    status_patch_bytes: Option<f64>,
    apiserver_writes: BTreeMap<String, f64>,
    apiserver_failed_writes: f64,
    workflow_events: u64,
    peak_rss_kib: Option<u64>,
    /// The operator's resident memory at the end, by kind, and its threads.
    memory_at_end: Option<MemoryNow>,
    namespace: String,
    log: PathBuf,
    /// 1-minute load average before and after: the machine is shared, and latency follows load.
    load: (String, String),
}

impl Report {
    fn splits(&self) -> f64 {
        (self.workflows * SPLITS) as f64
    }

    /// ConfigMaps, Jobs and Workflows written (API server's count; without Events).
    fn operator_writes_total(&self) -> f64 {
        self.apiserver_writes
            .iter()
            .filter(|(key, _)| operator_only(key))
            .map(|(_, n)| n)
            .sum()
    }

    fn status_bytes_per_write(&self) -> Option<f64> {
        let writes = self.operator_writes.get("status").copied().unwrap_or(0.0);
        self.status_patch_bytes
            .filter(|_| writes > 0.0)
            .map(|bytes| (bytes / writes).round())
    }

    fn figures(&self) -> Figures {
        let mut f = Figures::new(self.workflows, self.splits_done, self.total, &self.handoffs);
        f.writes_per_split = (self.operator_writes_total() / self.splits() * 100.0).round() / 100.0;
        f.set_pod_gaps(&self.pod_gaps);
        f.reconcile_errors =
            (self.driver == "operator").then(|| self.reconcile_errors.values().sum::<f64>() as u64);
        if let Some(m) = &self.memory_at_end {
            f.cpu_s = Some((m.cpu.as_secs_f64() * 10.0).round() / 10.0);
            f.sockets_at_end = Some(m.sockets);
        }
        f.status_bytes_per_write = self.status_bytes_per_write();
        f.peak_rss_mib = self
            .peak_rss_kib
            .map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0);
        f
    }
}

fn run_figures(ours: &Report, floor: Option<&Report>, operator: &Path) -> figures::Run {
    let ours_f = ours.figures();
    let floor_f = floor.map(Report::figures);
    figures::Run {
        ratios: floor_f.as_ref().map(|f| figures::Ratios::of(&ours_f, f)),
        operator: ours_f,
        floor: floor_f,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_1m: [
            ours.load.0.clone(),
            floor.map_or(&ours.load.1, |f| &f.load.1).clone(),
        ],
        operator_binary: operator.display().to_string(),
    }
}

/// Resources only the operator writes in the bench namespace (labels of `RequestKey`).
fn operator_only(key: &str) -> bool {
    key.starts_with("configmaps ")
        || key.starts_with("jobs ")
        || key.starts_with("jobs (batch) ")
        || key.starts_with("workflows")
}

/// The operator's run, then the floor's, each in a namespace of its own; both namespaces are
/// deleted at the end (a deletion during the floor's run would add to the writes it counts).
/// What one bench run does.
#[derive(Clone, Copy)]
struct Plan {
    count: usize,
    nodes: Nodes,
    /// Each driver's run ends then, finished or not.
    time_limit: Option<Duration>,
    /// Whether the floor runs after the operator.
    floor: bool,
}

async fn bench(
    kubeconfig: &Path,
    operator: &Path,
    plan: Plan,
) -> anyhow::Result<(Report, Option<Report>)> {
    let Plan { count, nodes, .. } = plan;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &options,
    )
    .await
    .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let client = Client::try_from(config)?;
    testkit::cluster::apply_crds(&client, "roiergasias-bench").await?;
    let mut namespaces = Vec::new();
    let result = async {
        let mut reports = Vec::new();
        let drivers = [Driver::Operator(operator), Driver::Floor];
        for driver in &drivers[..if plan.floor { 2 } else { 1 }] {
            let driver = *driver;
            let namespace = create_namespace(&client, nodes).await?;
            namespaces.push(namespace.clone());
            eprintln!(
                "{}: namespace {namespace}, {count} workflows of {SPLITS} splits",
                driver.name()
            );
            let run = (driver, plan);
            reports.push(measure(&client, kubeconfig, run, &namespace, count).await?);
        }
        let floor = if plan.floor { reports.pop() } else { None };
        let ours = reports.pop().context("the operator's run")?;
        anyhow::Ok((ours, floor))
    }
    .await;
    // Leave nothing behind; the cluster collects the objects in the background.
    for namespace in namespaces {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&namespace, &DeleteParams::background())
            .await;
    }
    result
}

/// What drives the workflows in one run.
#[derive(Clone, Copy)]
enum Driver<'a> {
    /// The operator binary at this path.
    Operator(&'a Path),
    /// The floor (`super::floor`), run as this very binary's `bench floor`.
    Floor,
}

impl Driver<'_> {
    fn name(&self) -> &'static str {
        match self {
            Driver::Operator(_) => "operator",
            Driver::Floor => "floor",
        }
    }
}

async fn measure(
    client: &Client,
    kubeconfig: &Path,
    (driver, plan): (Driver<'_>, Plan),
    namespace: &str,
    count: usize,
) -> anyhow::Result<Report> {
    let jobs: Arc<Mutex<HashMap<String, JobSeen>>> = Arc::default();
    let job_watch = tokio::spawn(watch_jobs(
        Api::namespaced(client.clone(), namespace),
        jobs.clone(),
    ));
    let pods: pods::Seen = Arc::default();
    let nodes = plan.nodes;
    let pod_watch = (nodes == Nodes::Real).then(|| {
        tokio::spawn(pods::watch(
            Api::namespaced(client.clone(), namespace),
            pods.clone(),
        ))
    });
    let phases: Arc<Mutex<HashMap<String, Phase>>> = Arc::default();
    let phase_watch = tokio::spawn(watch_phases(
        Api::namespaced(client.clone(), namespace),
        phases.clone(),
    ));

    let log = std::env::temp_dir().join(format!("{namespace}-{}.log", driver.name()));
    let (mut child, port) = match driver {
        Driver::Operator(operator) => {
            let port = local_http::free_port();
            let mut child = DriverProcess::operator(
                operator,
                kubeconfig,
                namespace,
                port,
                nodes.image(),
                &log,
            )?;
            wait_ready(port, &mut child).await?;
            (child, Some(port))
        }
        Driver::Floor => (
            DriverProcess::floor(kubeconfig, namespace, count, nodes.image(), &log).await?,
            None,
        ),
    };
    eprintln!(
        "{} pid {} ready; log {}",
        driver.name(),
        child.pid(),
        log.display()
    );

    let before = apiserver_writes(client).await?;
    let load_before = loadavg();
    let started = Instant::now();
    match driver {
        Driver::Operator(_) => create_workflows(client, namespace, count).await?,
        Driver::Floor => child.go()?,
    }
    let floor = matches!(driver, Driver::Floor);
    let limit = plan.time_limit;
    let (succeeded, failed) =
        wait_finished((&phases, floor, limit), count, &jobs, &mut child).await?;
    let total = started.elapsed();
    let load_after = loadavg();
    let peak_rss_kib = child.peak_rss_kib();
    let memory_at_end = child.memory_now();
    let metrics = match port {
        Some(port) => local_http::get(port, "/metrics")
            .await
            .map(|(_, body)| body)
            .ok(),
        None => None,
    };
    let after = apiserver_writes(client).await?;
    job_watch.abort();
    phase_watch.abort();
    if let Some(watch) = pod_watch {
        watch.abort();
    }
    child.stop();

    if failed > 0 {
        bail!(
            "{failed} of {count} workflows failed; see `kubectl -n {namespace} get workflow` and {}",
            log.display()
        );
    }

    let workflow_events = operator_event_writes(client, namespace).await?;
    let jobs = std::mem::take(&mut *jobs.lock().unwrap());
    let splits_done = jobs.values().filter(|j| j.complete_seen.is_some()).count();
    let (handoffs, coarse_handoffs) = handoffs(&jobs)?;
    let (pod_gaps, coarse_pod_gaps) = pods::gaps(&std::mem::take(&mut *pods.lock().unwrap()))?;
    let metrics = scrape(&metrics.unwrap_or_default());
    let bench_creates = match driver {
        Driver::Operator(_) => count as f64,
        Driver::Floor => 0.0,
    };
    let (apiserver, apiserver_failed_writes) = write_deltas(&before, &after, bench_creates);

    Ok(Report {
        driver: driver.name(),
        workflows: count,
        succeeded,
        total,
        handoffs,
        coarse_handoffs,
        pod_gaps,
        coarse_pod_gaps,
        splits_done,
        reconcile_errors: labelled_samples(&metrics, "roiergasias_reconcile_errors_total", "kind"),
        operator_histogram: Histogram::find(&metrics, "roiergasias_split_handoff_seconds"),
        operator_writes: labelled_samples(&metrics, "roiergasias_api_writes_total", "kind"),
        status_patch_bytes: scalar(&metrics, "roiergasias_status_patch_bytes_total"),
        apiserver_writes: apiserver,
        apiserver_failed_writes,
        workflow_events,
        peak_rss_kib,
        memory_at_end,
        namespace: namespace.to_owned(),
        log,
        load: (load_before, load_after),
    })
}

/// The bench's Workflows, created 50 at a time.
async fn create_workflows(client: &Client, namespace: &str, count: usize) -> anyhow::Result<()> {
    let workflows: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let workflows = workflows.clone();
            async move {
                let spec = WorkflowSpec {
                    workflow_yaml: WorkflowYaml {
                        name: "bench".into(),
                        yaml: WORKFLOW_YAML.into(),
                    },
                    job_template: None,
                    ..Default::default()
                };
                let wf = Workflow::new(&format!("bench-{i:04}"), spec);
                workflows.create(&PostParams::default(), &wf).await
            }
        })
        .buffer_unordered(50)
        .try_collect::<Vec<_>>()
        .await
        .context("creating the bench workflows")?;
    eprintln!(
        "created {count} workflows in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The API server's writes between two readings, by resource label, less `bench_creates`
/// successful Workflow creates (the bench's own); and the non-2xx writes.
fn write_deltas(
    before: &BTreeMap<RequestKey, f64>,
    after: &BTreeMap<RequestKey, f64>,
    mut bench_creates: f64,
) -> (BTreeMap<String, f64>, f64) {
    let mut apiserver = BTreeMap::new();
    let mut failed = 0.0;
    for (key, after_value) in after {
        let mut delta = after_value - before.get(key).copied().unwrap_or(0.0);
        if !key.code.starts_with('2') {
            failed += delta;
        }
        // The bench's own (successful) creates are not the operator's.
        if key.resource == "workflows"
            && key.subresource.is_empty()
            && key.verb == "POST"
            && key.code.starts_with('2')
        {
            let own = delta.min(bench_creates);
            delta -= own;
            bench_creates -= own;
        }
        if delta > 0.0 {
            *apiserver.entry(key.resource_label()).or_insert(0.0) += delta;
        }
    }
    (apiserver, failed)
}

async fn create_namespace(client: &Client, nodes: Nodes) -> anyhow::Result<String> {
    let name = testkit::unique_name("roiergasias-bench");
    testkit::cluster::create_namespace(client, &name, nodes.annotations(), &[]).await?;
    Ok(name)
}

/// Where the pods run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Nodes {
    /// kwok's fake nodes (whether real nodes run or not): pods "run" at once.
    Fake,
    /// The real kubelets (`--real`): real containers of the runner image.
    Real,
}

impl Nodes {
    fn image(self) -> &'static str {
        match self {
            Nodes::Fake => "roiergasias:bench",
            Nodes::Real => testkit::RUNNER_IMAGE,
        }
    }

    fn annotations(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Nodes::Fake => testkit::ON_FAKE_NODES,
            Nodes::Real => testkit::ON_REAL_NODES,
        }
    }
}

fn loadavg() -> String {
    use procfs::Current;
    procfs::LoadAverage::current().map_or_else(|_| "?".into(), |l| l.one.to_string())
}

async fn wait_ready(port: u16, child: &mut DriverProcess) -> anyhow::Result<()> {
    testkit::wait::try_until(
        "the operator to answer 200 on /readyz",
        READY_TIMEOUT,
        || {
            let exited = child.exited();
            async move {
                if let Some(status) = exited {
                    panic!("the operator exited ({status}) before becoming ready");
                }
                match local_http::get(port, "/readyz").await {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await?;
    Ok(())
}

async fn watch_jobs(api: Api<Job>, seen: Arc<Mutex<HashMap<String, JobSeen>>>) {
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let now = Instant::now();
        let job = match event {
            Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => job,
            Ok(_) => continue,
            Err(error) => {
                eprintln!("job watch: {error} (retrying)");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(name) = job.metadata.name.clone() else {
            continue;
        };
        let complete = complete_since(&job);
        let mut seen = seen.lock().unwrap();
        let entry = seen.entry(name.clone()).or_insert_with(|| {
            let workflow = chain_of(&job).unwrap_or_default();
            JobSeen {
                split: split_index(&name, &workflow).unwrap_or(0),
                workflow,
                first_seen: now,
                complete_seen: None,
                created: job
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second()),
                completed: None,
            }
        });
        if let Some(since) = complete
            && entry.complete_seen.is_none()
        {
            entry.complete_seen = Some(now);
            entry.completed = since;
        }
    }
}

/// The Workflow that owns `job`, or the floor's chain it belongs to.
fn chain_of(job: &Job) -> Option<String> {
    let owner = job
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|o| o.kind == "Workflow"))
        .map(|o| o.name.clone());
    owner.or_else(|| {
        job.metadata
            .labels
            .as_ref()?
            .get(floor::CHAIN_LABEL)
            .cloned()
    })
}

/// `Some(lastTransitionTime in seconds)` once the Job has `Complete=True`.
fn complete_since(job: &Job) -> Option<Option<i64>> {
    let condition = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Complete" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map(|t| t.0.as_second()),
    )
}

/// Job names are `<workflow>-<n>-<node>` for node splits.
fn split_index(job: &str, workflow: &str) -> Option<usize> {
    let rest = job.strip_prefix(workflow)?.strip_prefix('-')?;
    rest.split('-').next()?.parse().ok()
}

/// The phase of each bench Workflow, from a watch: listing 5000 Workflows every half second
/// would load the API server whose speed the bench measures.
async fn watch_phases(api: Api<Workflow>, phases: Arc<Mutex<HashMap<String, Phase>>>) {
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = stream.next().await {
        let Ok(workflow) = event else {
            continue;
        };
        if let (Some(name), Some(phase)) = (
            workflow.metadata.name,
            workflow.status.and_then(|s| s.phase),
        ) {
            phases.lock().unwrap().insert(name, phase);
        }
    }
}

/// Half an hour, or longer for a batch big enough to need it (a third of a second per workflow).
fn finish_timeout(count: usize) -> Duration {
    Duration::from_secs(1800).max(Duration::from_millis(count as u64 * 333))
}

/// The floor's chains whose last Job was seen Complete.
fn last_splits_complete(jobs: &HashMap<String, JobSeen>) -> usize {
    jobs.values()
        .filter(|j| j.split == SPLITS && j.complete_seen.is_some())
        .count()
}

/// Waits until every Workflow (or, for the floor, every chain) has finished.
async fn wait_finished(
    (phases, floor, limit): (&Mutex<HashMap<String, Phase>>, bool, Option<Duration>),
    count: usize,
    jobs: &Mutex<HashMap<String, JobSeen>>,
    child: &mut DriverProcess,
) -> anyhow::Result<(usize, usize)> {
    let timeout = limit.unwrap_or_else(|| finish_timeout(count));
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        if let Some(status) = child.exited() {
            bail!("the driver exited ({status}) during the bench");
        }
        let (succeeded, failed) = match floor {
            // The floor has no Workflows: a chain is done when its last Job is Complete.
            true => (last_splits_complete(&jobs.lock().unwrap()), 0),
            false => {
                let phases = phases.lock().unwrap();
                let count = |phase| phases.values().filter(|p| **p == phase).count();
                (count(Phase::Succeeded), count(Phase::Failed))
            }
        };
        if succeeded + failed == count {
            return Ok((succeeded, failed));
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            let jobs = jobs.lock().unwrap();
            let complete = jobs.values().filter(|j| j.complete_seen.is_some()).count();
            eprintln!(
                "  {succeeded} succeeded, {failed} failed of {count}; jobs: {} created, {complete} complete",
                jobs.len()
            );
            last_report = Instant::now();
        }
        if Instant::now() > deadline && limit.is_some() {
            eprintln!("  time limit {timeout:?} reached: {succeeded} succeeded, {failed} failed");
            return Ok((succeeded, failed));
        }
        if Instant::now() > deadline {
            bail!(
                "not all workflows finished within {timeout:?}: {succeeded} succeeded, {failed} failed"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Per hand-off: the precise (watch arrival) latency, and the coarse one from
/// the objects' second-resolution timestamps. Fails if Job n+1 existed before
/// Job n was seen Complete: the operator must never run splits out of order.
fn handoffs(jobs: &HashMap<String, JobSeen>) -> anyhow::Result<(Vec<Duration>, Vec<i64>)> {
    let by_split: HashMap<(&str, usize), &JobSeen> = jobs
        .values()
        .map(|j| ((j.workflow.as_str(), j.split), j))
        .collect();
    let mut precise = Vec::new();
    let mut coarse = Vec::new();
    for job in jobs.values() {
        let Some(next) = by_split.get(&(job.workflow.as_str(), job.split + 1)) else {
            continue;
        };
        let Some(complete) = job.complete_seen else {
            bail!(
                "job {} of workflow {} was never seen Complete, yet split {} has a Job",
                job.split,
                job.workflow,
                job.split + 1
            );
        };
        let latency = next
            .first_seen
            .checked_duration_since(complete)
            .with_context(|| {
                format!(
                    "workflow {}: Job {} appeared before Job {} was Complete",
                    job.workflow,
                    job.split + 1,
                    job.split
                )
            })?;
        precise.push(latency);
        if let (Some(done), Some(created)) = (job.completed, next.created) {
            coarse.push(created - done);
        }
    }
    precise.sort();
    coarse.sort();
    Ok((precise, coarse))
}

/// Nearest-rank percentile of sorted values.
pub(super) fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// `apiserver_request_total` series of write verbs, keyed by their labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RequestKey {
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    code: String,
}

impl RequestKey {
    fn resource_label(&self) -> String {
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.group)
        };
        format!("{resource}{group} {}", self.verb)
    }
}

async fn apiserver_writes(client: &Client) -> anyhow::Result<BTreeMap<RequestKey, f64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client
        .request_text(request)
        .await
        .context("reading the API server's /metrics")?;
    Ok(parse_apiserver_writes(&text))
}

/// The samples of a Prometheus (or OpenMetrics) text; lines it cannot read are left out.
fn scrape(text: &str) -> Vec<Sample> {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .map(|scrape| scrape.samples)
        .unwrap_or_default()
}

/// A counter's, gauge's or untyped sample's number (OpenMetrics counters end in `_total`, a name
/// the parser does not match to their `# TYPE`, so they come untyped).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        Value::Histogram(_) | Value::Summary(_) => None,
    }
}

/// The number of the first sample named `name`.
fn scalar(samples: &[Sample], name: &str) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.metric == name)
        .find_map(|s| number(&s.value))
}

fn parse_apiserver_writes(text: &str) -> BTreeMap<RequestKey, f64> {
    let mut out = BTreeMap::new();
    for sample in scrape(text) {
        if sample.metric != "apiserver_request_total" {
            continue;
        }
        let get = |k: &str| sample.labels.get(k).unwrap_or_default().to_owned();
        let verb = get("verb");
        let (true, Some(value)) = (WRITE_VERBS.contains(&verb.as_str()), number(&sample.value))
        else {
            continue;
        };
        let key = RequestKey {
            verb,
            group: get("group"),
            resource: get("resource"),
            subresource: get("subresource"),
            code: get("code"),
        };
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

/// Samples `name{label="x"} v`, by the label's value.
fn labelled_samples(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| s.metric == name)
        .filter_map(|s| Some((s.labels.get(label)?.to_owned(), number(&s.value)?)))
        .collect()
}

/// A classic histogram read back from the operator's /metrics.
#[derive(Debug, PartialEq)]
struct Histogram {
    count: f64,
    sum: f64,
    /// (upper bound, cumulative count), ascending.
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    fn find(samples: &[Sample], name: &str) -> Option<Self> {
        let mut buckets: Vec<(f64, f64)> = samples.iter().find_map(|s| match &s.value {
            Value::Histogram(counts) if s.metric == name => {
                Some(counts.iter().map(|c| (c.less_than, c.count)).collect())
            }
            _ => None,
        })?;
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Self {
            count: scalar(samples, &format!("{name}_count"))?,
            sum: scalar(samples, &format!("{name}_sum"))?,
            buckets,
        })
    }

    /// The upper bound of the bucket holding quantile `q`.
    fn quantile_bound(&self, q: f64) -> Option<f64> {
        let target = q * self.count;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= target && self.count > 0.0)
            .map(|(le, _)| *le)
    }
}

async fn operator_event_writes(client: &Client, namespace: &str) -> anyhow::Result<u64> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Workflow"))
        // A repeated event is one create and then one patch per repeat.
        .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1) as u64))
        .sum())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn print_report(r: &Report) {
    let splits = r.splits_done.max(1) as f64;
    println!();
    println!(
        "Operator bench: {} workflows × {SPLITS} splits (node1, node2, node2) created at once; {} succeeded.",
        r.workflows, r.succeeded
    );
    println!();
    println!("| Measurement | Result |");
    println!("|---|---|");
    println!(
        "| Total time, first create → all Succeeded | {:.1} s ({:.0} splits per minute) |",
        r.total.as_secs_f64(),
        r.figures().splits_per_min
    );
    let show = |q: f64| {
        percentile(&r.handoffs, q)
            .map(ms)
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "| Hand-off Job n Complete → Job n+1 created, watch arrival ({} hand-offs) | median {}, p99 {}, max {} |",
        r.handoffs.len(),
        show(0.5),
        show(0.99),
        show(1.0)
    );
    if let Some(h) = &r.operator_histogram {
        let bound = |q| {
            h.quantile_bound(q)
                .map(|b| format!("≤ {:.0} ms", b * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        let mean = if h.count > 0.0 {
            h.sum / h.count * 1000.0
        } else {
            0.0
        };
        println!(
            "| Hand-off, operator's histogram ({} observed) | mean {mean:.1} ms, median {}, p99 {} |",
            h.count,
            bound(0.5),
            bound(0.99)
        );
    } else {
        println!("| Hand-off, operator's histogram | not exported by this operator build |");
    }
    if !r.pod_gaps.is_empty() {
        println!(
            "| Pod n exit → pod n+1 start, watch arrival ({} gaps) | median {}, p99 {}, max {} |",
            r.pod_gaps.len(),
            percentile(&r.pod_gaps, 0.5).map_or("-".into(), ms),
            percentile(&r.pod_gaps, 0.99).map_or("-".into(), ms),
            percentile(&r.pod_gaps, 1.0).map_or("-".into(), ms),
        );
        println!(
            "| Pod n exit → pod n+1 start, container times (1 s resolution) | median {} s, p99 {} s |",
            percentile(&r.coarse_pod_gaps, 0.5).map_or("-".into(), |v| v.to_string()),
            percentile(&r.coarse_pod_gaps, 0.99).map_or("-".into(), |v| v.to_string())
        );
    }
    println!(
        "| Hand-off, Kubernetes timestamps (1 s resolution) | median {} s, p99 {} s |",
        percentile(&r.coarse_handoffs, 0.5).map_or("-".into(), |v| v.to_string()),
        percentile(&r.coarse_handoffs, 0.99).map_or("-".into(), |v| v.to_string())
    );
    let mut operator_total = 0.0;
    for (key, n) in &r.apiserver_writes {
        if operator_only(key) && *n > 0.0 {
            operator_total += n;
            println!(
                "| API writes: {key} (API server) | {n} ({:.2} per split) |",
                n / splits
            );
        }
    }
    println!(
        "| API writes: Events about Workflows | {} ({:.2} per split) |",
        r.workflow_events,
        r.workflow_events as f64 / splits
    );
    println!(
        "| **API writes per split** (ConfigMaps, Jobs, Workflows; + Events) | **{:.2}**; {:.2} with Events |",
        operator_total / splits,
        (operator_total + r.workflow_events as f64) / splits
    );
    if r.apiserver_failed_writes > 0.0 {
        println!(
            "| API writes refused (non-2xx, all clients) | {} |",
            r.apiserver_failed_writes
        );
    }
    if !r.operator_writes.is_empty() {
        let parts: Vec<String> = r
            .operator_writes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "| API writes, operator's own counter | {} |",
            parts.join(", ")
        );
    }
    let status_writes = r.operator_writes.get("status").copied().unwrap_or(0.0);
    if let Some(bytes) = r.status_patch_bytes
        && status_writes > 0.0
    {
        println!(
            "| status_bytes_per_write (operator's status patches) | {:.0} B ({status_writes} writes, {bytes} B) |",
            bytes / status_writes
        );
    }
    let errors: Vec<String> = r
        .reconcile_errors
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "| Reconcile errors (operator's counter) | {} |",
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        }
    );
    print_memory(r);
    println!();
    let others: Vec<String> = r
        .apiserver_writes
        .iter()
        .filter(|(k, n)| !operator_only(k) && **n > 0.0)
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    println!(
        "Writes by the rest of the cluster (scheduler, job controller, kwok) in the same window: {}",
        others.join("; ")
    );
    println!(
        "Machine: {} CPUs, 1-minute load average {} at the start, {} at the end.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.load.0,
        r.load.1
    );
    println!(
        "Namespace {} (deleted); operator log {}",
        r.namespace,
        r.log.display()
    );
}

fn print_against_floor(ours: &Figures, floor_figures: &Figures, floor: &Report) {
    println!();
    println!(
        "Against the floor (ConfigMap and Job n+1 created when Job n is Complete, no status; \
         same cluster, run after the operator, {} succeeded):",
        floor.succeeded
    );
    println!();
    print!("{}", figures::against_floor(ours, floor_figures));
    print_memory(floor);
    println!(
        "Floor namespace {}; floor log {}",
        floor.namespace,
        floor.log.display()
    );
}

fn print_memory(r: &Report) {
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    println!(
        "| {} peak memory (VmHWM) | {} |",
        r.driver,
        r.peak_rss_kib.map_or("-".into(), mib)
    );
    if let Some(m) = &r.memory_at_end {
        println!(
            "| {} memory at the end: anonymous (heap, stacks) / file-backed (binary) | {} / {}, {} threads |",
            r.driver,
            mib(m.anon_kib),
            mib(m.file_kib),
            m.threads
        );
        println!(
            "| {} at the end: open sockets (API connections) / CPU time used | {} / {:.1} s |",
            r.driver,
            m.sockets,
            m.cpu.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }

    #[test]
    fn split_index_comes_from_the_job_name() {
        assert_eq!(split_index("bench-007-2-node2", "bench-007"), Some(2));
        assert_eq!(split_index("bench-007-12-node1", "bench-007"), Some(12));
        assert_eq!(split_index("other-1-node1", "bench-007"), None);
    }

    #[test]
    fn apiserver_write_counters_are_parsed_by_resource() {
        let text = r#"
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 12
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 99
apiserver_request_total{code="200",component="apiserver",dry_run="",group="batch.ankursoni.github.io",resource="workflows",scope="resource",subresource="status",verb="PATCH",version="v1"} 5
apiserver_request_total{code="409",component="apiserver",dry_run="",group="batch",resource="jobs",scope="resource",subresource="",verb="POST",version="v1"} 1
"#;
        let writes = parse_apiserver_writes(text);
        assert_eq!(writes.len(), 3, "GET is not a write: {writes:?}");
        let labels: Vec<(String, f64)> = writes
            .iter()
            .map(|(k, v)| (k.resource_label(), *v))
            .collect();
        assert!(
            labels.contains(&("configmaps POST".into(), 12.0)),
            "{labels:?}"
        );
        assert!(
            labels.contains(&(
                "workflows/status (batch.ankursoni.github.io) PATCH".into(),
                5.0
            )),
            "{labels:?}"
        );
        assert!(
            labels.contains(&("jobs (batch) POST".into(), 1.0)),
            "{labels:?}"
        );
    }

    #[test]
    fn histogram_and_counters_are_read_from_openmetrics() {
        let text = "\
# HELP roiergasias_api_writes Writes to the API server.
# TYPE roiergasias_api_writes counter
roiergasias_api_writes_total{kind=\"job\"} 3
roiergasias_api_writes_total{kind=\"status\"} 4
# TYPE roiergasias_split_handoff_seconds histogram
roiergasias_split_handoff_seconds_sum 1.5
roiergasias_split_handoff_seconds_count 100
roiergasias_split_handoff_seconds_bucket{le=\"0.01\"} 40
roiergasias_split_handoff_seconds_bucket{le=\"0.05\"} 98
roiergasias_split_handoff_seconds_bucket{le=\"0.25\"} 100
roiergasias_split_handoff_seconds_bucket{le=\"+Inf\"} 100
# EOF
";
        let samples = scrape(text);
        let writes = labelled_samples(&samples, "roiergasias_api_writes_total", "kind");
        assert_eq!(
            writes,
            BTreeMap::from([("job".into(), 3.0), ("status".into(), 4.0)])
        );
        let h = Histogram::find(&samples, "roiergasias_split_handoff_seconds").unwrap();
        assert_eq!((h.count, h.sum), (100.0, 1.5));
        assert_eq!(h.quantile_bound(0.5), Some(0.05));
        assert_eq!(h.quantile_bound(0.4), Some(0.01));
        assert_eq!(h.quantile_bound(0.99), Some(0.25));
        assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 100.0)));
        assert_eq!(Histogram::find(&scrape(""), "x"), None);
    }

    fn seen(workflow: &str, split: usize, first: Instant, complete: Option<Instant>) -> JobSeen {
        JobSeen {
            workflow: workflow.into(),
            split,
            first_seen: first,
            complete_seen: complete,
            created: Some(100),
            completed: complete.map(|_| 101),
        }
    }

    #[test]
    fn handoffs_pair_each_job_with_the_next_split() {
        let t = Instant::now();
        let at = |ms| t + Duration::from_millis(ms);
        let jobs = HashMap::from([
            ("w-1-node1".to_string(), seen("w", 1, at(0), Some(at(10)))),
            ("w-2-node2".to_string(), seen("w", 2, at(15), Some(at(30)))),
            ("w-3-node2".to_string(), seen("w", 3, at(42), Some(at(50)))),
        ]);
        let (precise, coarse) = handoffs(&jobs).unwrap();
        assert_eq!(
            precise,
            vec![Duration::from_millis(5), Duration::from_millis(12)]
        );
        assert_eq!(coarse, vec![-1, -1]);
    }

    #[test]
    fn a_job_before_its_predecessor_completed_is_an_error() {
        let t = Instant::now();
        let jobs = HashMap::from([
            (
                "w-1-node1".to_string(),
                seen("w", 1, t, Some(t + Duration::from_millis(50))),
            ),
            (
                "w-2-node2".to_string(),
                seen("w", 2, t + Duration::from_millis(20), None),
            ),
        ]);
        let err = handoffs(&jobs).unwrap_err().to_string();
        assert!(err.contains("appeared before Job 1 was Complete"), "{err}");
    }
}
