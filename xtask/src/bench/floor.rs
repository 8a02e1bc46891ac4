//! The floor: the least a driver of three-split chains can do on Kubernetes. It creates ConfigMap
//! n+1 and Job n+1 of a chain the moment its Job watch shows Job n `Complete`, and writes no
//! status, keeps no Workflow and reads no pod. What it reaches is what the Job controller, the
//! scheduler and the nodes allow; the operator bench reports the operator against it.
//!
//! It runs as its own process (`cargo xtask bench floor`, started by `bench operator`), so its
//! memory is measured like the operator's. It prints `ready` once its watch has listed the
//! namespace, waits for a line on stdin, then creates every chain's first split (50 at a time, as
//! the bench creates Workflows), prints `done` when every chain's last Job is Complete, and exits
//! at the next line or the end of stdin.

use std::collections::HashSet;
use std::io::BufRead;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, EmptyDirVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::{Api, Client};
use roiergasias_crd::runner;

/// The label that names a floor Job's chain (a Workflow's counterpart).
pub(crate) const CHAIN_LABEL: &str = "bench.roiergasias/chain";
/// Node splits select nodes by this label, as the operator's do.
const NODE_LABEL: &str = "node.roiergasias";
/// The workflow's name: its file in the ConfigMap, as the operator names it.
const NAME: &str = "bench";

#[derive(clap::Args)]
pub struct FloorArgs {
    /// The namespace to run the chains in.
    #[arg(long)]
    namespace: String,
    /// Chains of three splits to run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=super::operator::MAX_WORKFLOWS))]
    chains: u64,
    /// The image of the runner container.
    #[arg(long, default_value = "roiergasias:bench")]
    runner_image: String,
}

/// One split of the bench workflow: its node and its workflow text (what the operator's
/// ConfigMap holds for it).
#[derive(Clone)]
pub(crate) struct SplitText {
    pub node: String,
    pub text: String,
}

/// The splits of `yaml`, as the operator would write them (no outputs carried).
pub(crate) fn split_texts(yaml: &str) -> anyhow::Result<Vec<SplitText>> {
    let workflow = roiergasias_engine::parse(yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    roiergasias_engine::split(&workflow)
        .into_iter()
        .map(|s| {
            Ok(SplitText {
                node: s
                    .node
                    .context("the bench workflow's splits all name a node")?,
                text: s.workflow.to_yaml(),
            })
        })
        .collect()
}

pub fn run(args: &FloorArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let chains = usize::try_from(args.chains)?;
    runtime.block_on(async {
        let client = Client::try_default()
            .await
            .context("the floor reads KUBECONFIG")?;
        let floor = Floor {
            configmaps: Api::namespaced(client.clone(), &args.namespace),
            jobs: Api::namespaced(client, &args.namespace),
            splits: split_texts(super::operator::WORKFLOW_YAML)?,
            image: args.runner_image.clone(),
        };
        drive(Arc::new(floor), chains).await
    })
}

struct Floor {
    configmaps: Api<ConfigMap>,
    jobs: Api<Job>,
    splits: Vec<SplitText>,
    image: String,
}

/// What one watch event asks of the floor.
#[derive(Debug, PartialEq)]
enum Step {
    /// Create split `.1` of chain `.0`.
    Start(String, usize),
    /// Chain `.0` is done.
    Done(String),
    Nothing,
}

/// The next step for `job`, seen now; `started` holds the splits already asked for.
fn step(job: &Job, splits: usize, started: &mut HashSet<(String, usize)>) -> anyhow::Result<Step> {
    let labels = job.metadata.labels.as_ref();
    let (Some(chain), Some(split)) = (
        labels.and_then(|l| l.get(CHAIN_LABEL)),
        labels
            .and_then(|l| l.get(SPLIT_LABEL))
            .and_then(|s| s.parse::<usize>().ok()),
    ) else {
        return Ok(Step::Nothing);
    };
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let has = |kind: &str| {
        conditions.is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
    };
    if has("Failed") {
        bail!("floor Job {chain} split {split} failed");
    }
    if !has("Complete") {
        return Ok(Step::Nothing);
    }
    if split >= splits {
        return Ok(Step::Done(chain.clone()));
    }
    Ok(match started.insert((chain.clone(), split + 1)) {
        true => Step::Start(chain.clone(), split + 1),
        false => Step::Nothing,
    })
}

/// The label that gives a floor Job's (and pod's) split.
pub(crate) const SPLIT_LABEL: &str = "bench.roiergasias/split";

async fn drive(floor: Arc<Floor>, chains: usize) -> anyhow::Result<()> {
    let config = watcher::Config::default().labels(CHAIN_LABEL);
    let mut events = watcher(floor.jobs.clone(), config).boxed();
    let mut started: HashSet<(String, usize)> = HashSet::new();
    let mut done: HashSet<String> = HashSet::new();
    while let Some(event) = events.next().await {
        let job = match event {
            Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => job,
            Ok(watcher::Event::InitDone) if started.is_empty() => {
                wait_for_go().await?;
                for i in 0..chains {
                    started.insert((chain_name(i), 1));
                }
                tokio::spawn(start_all(floor.clone(), chains));
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                eprintln!("floor: job watch: {e} (retrying)");
                continue;
            }
        };
        match step(&job, floor.splits.len(), &mut started)? {
            Step::Start(chain, split) => {
                let floor = floor.clone();
                tokio::spawn(async move { report(floor.start(&chain, split).await) });
            }
            Step::Done(chain) => {
                done.insert(chain);
                if done.len() == chains {
                    // Alive until the bench has read its peak memory and closes stdin.
                    println!("done");
                    return wait_for_line().await;
                }
            }
            Step::Nothing => {}
        }
    }
    bail!("the floor's Job watch ended")
}

/// Says `ready`, then waits for the bench's line on stdin.
async fn wait_for_go() -> anyhow::Result<()> {
    println!("ready");
    wait_for_line().await
}

/// A line, or the end, of stdin.
async fn wait_for_line() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(drop)
    })
    .await?
    .context("reading the go line from stdin")
}

async fn start_all(floor: Arc<Floor>, chains: usize) {
    futures::stream::iter(0..chains)
        .for_each_concurrent(50, |i| {
            let floor = floor.clone();
            async move { report(floor.start(&chain_name(i), 1).await) }
        })
        .await;
}

fn report(result: anyhow::Result<()>) {
    if let Err(e) = result {
        // The chain stalls; the bench times out and names the floor's log.
        eprintln!("floor: {e:#}");
    }
}

pub(crate) fn chain_name(i: usize) -> String {
    format!("floor-{i:04}")
}

impl Floor {
    /// ConfigMap then Job of split `split` (1-based) of `chain`, as the operator creates them.
    async fn start(&self, chain: &str, split: usize) -> anyhow::Result<()> {
        let s = self
            .splits
            .get(split - 1)
            .with_context(|| format!("no split {split}"))?;
        let name = format!("{chain}-{split}-{}", s.node);
        let params = PostParams::default();
        self.configmaps
            .create(&params, &config_map(&name, chain, split, &s.text))
            .await
            .with_context(|| format!("creating ConfigMap {name}"))?;
        self.jobs
            .create(&params, &job(&name, chain, split, &s.node, &self.image))
            .await
            .with_context(|| format!("creating Job {name}"))?;
        Ok(())
    }
}

fn meta(name: &str, chain: &str, split: usize) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(
            [
                (CHAIN_LABEL.to_owned(), chain.to_owned()),
                (SPLIT_LABEL.to_owned(), split.to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

fn config_map(name: &str, chain: &str, split: usize, text: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, chain, split),
        data: Some([(format!("{NAME}.yaml"), text.to_owned())].into()),
        ..Default::default()
    }
}

/// The pod the operator's default runner gets: the same container, volumes, security and node
/// selector, so scheduling and the nodes do the same work.
fn job(name: &str, chain: &str, split: usize, node: &str, image: &str) -> Job {
    let meta = meta(name, chain, split);
    let pod = PodSpec {
        containers: vec![runner::default_container(NAME, image)],
        restart_policy: Some("Never".into()),
        node_selector: Some([(NODE_LABEL.to_owned(), node.to_owned())].into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(runner::RUNNER_UID),
            run_as_group: Some(runner::RUNNER_UID),
            seccomp_profile: Some(runner::runtime_default()),
            ..Default::default()
        }),
        volumes: Some(vec![
            Volume {
                name: runner::VOLUME.into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: name.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: runner::SCRATCH_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Job {
        metadata: meta.clone(),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: meta.labels,
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn with(chain: &str, split: usize, condition: Option<&str>) -> Job {
        let mut job = job("n", chain, split, "node1", "img");
        job.status = condition.map(|c| JobStatus {
            conditions: Some(vec![JobCondition {
                type_: c.into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        job
    }

    #[test]
    fn a_complete_job_starts_the_next_split_once() {
        let mut started = HashSet::new();
        let done = with("c", 1, Some("Complete"));
        assert_eq!(
            step(&done, 3, &mut started).unwrap(),
            Step::Start("c".into(), 2)
        );
        assert_eq!(step(&done, 3, &mut started).unwrap(), Step::Nothing);
        assert_eq!(
            step(&with("c", 2, None), 3, &mut started).unwrap(),
            Step::Nothing,
            "not complete yet"
        );
        assert_eq!(
            step(&with("c", 3, Some("Complete")), 3, &mut started).unwrap(),
            Step::Done("c".into())
        );
        let err = step(&with("c", 2, Some("Failed")), 3, &mut started).unwrap_err();
        assert!(err.to_string().contains("c split 2 failed"), "{err}");
        let mut unlabelled = with("c", 1, Some("Complete"));
        unlabelled.metadata.labels = None;
        assert_eq!(step(&unlabelled, 3, &mut started).unwrap(), Step::Nothing);
    }

    #[test]
    fn the_floor_s_pod_is_the_operator_s_default_runner_on_the_split_s_node() {
        let splits = split_texts(super::super::operator::WORKFLOW_YAML).unwrap();
        let nodes: Vec<&str> = splits.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(nodes, ["node1", "node2", "node2"]);
        assert!(splits[1].text.contains("from node1"), "{}", splits[1].text);
        let job = job("floor-0001-2-node2", "floor-0001", 2, "node2", "img");
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.node_selector.unwrap()[NODE_LABEL], "node2");
        assert_eq!(pod.containers[0].image.as_deref(), Some("img"));
        let volumes = pod.volumes.unwrap();
        assert_eq!(
            volumes[0].config_map.as_ref().unwrap().name,
            "floor-0001-2-node2"
        );
        let cm = config_map("floor-0001-2-node2", "floor-0001", 2, "text");
        assert_eq!(cm.data.unwrap()["bench.yaml"], "text");
        assert_eq!(cm.metadata.labels.unwrap()[SPLIT_LABEL], "2");
    }
}
