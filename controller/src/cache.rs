//! Watch caches of the operator's Jobs and their pods. Every Job change wakes a reconcile that
//! reads the Job, and every hand-off reads the finished pod's termination message: from memory,
//! these cost the API server nothing and the hand-off two round trips. A lookup that misses (an
//! object created a moment ago, or a cache still filling) falls back to the API server. A pod
//! that no node can take also wakes its Workflow, so status can say so.
//!
//! A Workflow that has finished (Succeeded or Failed) needs none of this: its Jobs and pods are
//! dropped from the caches when its Workflow is seen finished, and kept out when a watch lists
//! them again. A finished Workflow's later reconcile (a retry, say) reads them from the API
//! server, as any miss does. At 5000 three-split workflows this is the difference between
//! 15 000 Jobs and 15 000 pods held to the end and only those of the running workflows.

use std::sync::Arc;

use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use roiergasias_crd::{Phase, Workflow};

mod pod_index;
mod refusals;

use pod_index::PodIndex;

/// The label the Job controller puts on its pods.
pub const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// The label the operator puts on its Jobs and pods: the Workflow's name (cut to 63 characters).
const WORKFLOW_LABEL: &str = crate::build::WORKFLOW_LABEL;

/// The stores of every watched scope (one per `--namespace`, or one for all).
#[derive(Clone, Default)]
pub struct Cache {
    jobs: Vec<Store<Job>>,
    pods: Vec<Store<Pod>>,
    /// Per scope, where to send the deletions that drop a finished Workflow's Jobs and pods.
    forget: Vec<(Forget<Job>, Forget<Pod>)>,
    /// Per scope, the Job controller's FailedCreate Events (see [`refusals`]).
    refusals: Vec<Store<k8s_openapi::api::core::v1::Event>>,
    /// Every scope's pods by Job.
    pod_index: PodIndex,
}

type Forget<K> = UnboundedSender<Result<watcher::Event<K>, watcher::Error>>;

impl Cache {
    pub fn job(&self, namespace: &str, name: &str) -> Option<Arc<Job>> {
        let key = ObjectRef::new(name).within(namespace);
        self.jobs.iter().find_map(|store| store.get(&key))
    }

    /// The pods the Job with `job_uid` created, as far as the cache has seen them.
    pub fn pods_of(&self, namespace: &str, job_uid: &str) -> Vec<Arc<Pod>> {
        self.pod_index
            .of_job(job_uid)
            .iter()
            .filter(|key| key.namespace.as_deref() == Some(namespace))
            .filter_map(|key| self.pods.iter().find_map(|store| store.get(key)))
            .filter(|pod| pod.labels().get(JOB_UID_LABEL).map(String::as_str) == Some(job_uid))
            .collect()
    }

    /// Drops the Jobs `workflow` controls, and their pods, from the caches if it has finished.
    /// The deletions go through each watch stream, so the store's own writer applies them.
    pub fn forget_if_finished(&self, workflow: &Workflow) {
        let (Some(namespace), Some(uid)) = (workflow.namespace(), workflow.uid()) else {
            return;
        };
        if !finished(workflow) {
            return;
        }
        for (jobs, (forget_jobs, forget_pods)) in self.jobs.iter().zip(&self.forget) {
            let owned: Vec<Arc<Job>> = jobs
                .state()
                .into_iter()
                .filter(|job| {
                    job.namespace().as_deref() == Some(namespace.as_str())
                        && controller_uid(job.as_ref()) == Some(uid.as_str())
                })
                .collect();
            for job_uid in owned.iter().filter_map(|j| j.uid()) {
                for pod in self.pods_of(&namespace, &job_uid) {
                    let _ = forget_pods.unbounded_send(Ok(watcher::Event::Delete(stub(&*pod))));
                }
            }
            for job in owned {
                let _ = forget_jobs.unbounded_send(Ok(watcher::Event::Delete(stub(&*job))));
            }
        }
    }

    /// Caches the objects of `jobs` and `pods` matching `config`. Returns the Job events and the
    /// pod events that should wake their Workflow (the store is updated before each is yielded),
    /// with the map from a pod to its Workflow.
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &mut self,
        (jobs, pods): (Api<Job>, Api<Pod>),
        config: &watcher::Config,
        workflows: Store<Workflow>,
    ) -> (
        impl Stream<Item = Result<Job, watcher::Error>> + Send + 'static,
        impl Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
        impl Fn(Pod) -> Option<ObjectRef<Workflow>> + Send + Sync + 'static,
    ) {
        let jobs = watcher(jobs, config.clone()).default_backoff();
        let pods = watcher(pods, config.clone()).default_backoff();
        self.scope((jobs, pods), workflows)
    }

    /// One scope's caches over its Job and pod watches.
    #[allow(clippy::type_complexity)]
    fn scope(
        &mut self,
        (jobs, pods): (impl WatchEvents<Job>, impl WatchEvents<Pod>),
        workflows: Store<Workflow>,
    ) -> (
        impl Stream<Item = Result<Job, watcher::Error>> + Send + 'static,
        impl Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
        impl Fn(Pod) -> Option<ObjectRef<Workflow>> + Send + Sync + 'static,
    ) {
        let (job_store, job_writer) = reflector::store();
        let (pod_store, pod_writer) = reflector::store();
        let (forget_jobs, forgotten_jobs) = unbounded();
        let (forget_pods, forgotten_pods) = unbounded();
        self.jobs.push(job_store.clone());
        self.pods.push(pod_store.clone());
        self.forget.push((forget_jobs, forget_pods));
        let done = workflows.clone();
        let jobs = jobs
            .modify(slim_job)
            .filter(move |event| std::future::ready(!of_succeeded(event, &done, job_workflow)));
        let job_events = futures::stream::select(jobs.boxed(), forgotten_jobs)
            .reflect(job_writer)
            .touched_objects();
        let pods = pods.modify(slim_pod).filter(move |event| {
            std::future::ready(!of_succeeded(event, &workflows, pod_workflow))
        });
        // A pod matters to its Workflow only when it becomes (un)schedulable: its Job reports
        // the rest.
        let index = self.pod_index.clone();
        let pod_events = futures::stream::select(pods.boxed(), forgotten_pods)
            .reflect(pod_writer)
            .inspect(move |event| {
                if let Ok(event) = event {
                    index.follow(event, &pod_store);
                }
            })
            .touched_objects()
            .predicate_filter(scheduling, PredicateConfig::default());
        let workflow_of = move |pod: Pod| workflow_of(&pod, &job_store);
        (job_events, pod_events, workflow_of)
    }
}

/// A watch's events, as `watcher` gives them.
trait WatchEvents<K>:
    Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
{
}
impl<K, S> WatchEvents<K> for S where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
{
}

/// Whether the Workflow is done with its Jobs: Succeeded or Failed.
fn finished(workflow: &Workflow) -> bool {
    matches!(
        workflow.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Succeeded | Phase::Failed)
    )
}

fn succeeded(workflow: &Workflow) -> bool {
    workflow.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
}

/// True for a listed or changed object whose Workflow the cache `workflows` holds as Succeeded:
/// such an object is not stored (a watch that lists again would bring back every finished
/// Workflow's Jobs and pods), nor does it wake the Workflow. Only Succeeded, which is final: a
/// Failed Workflow may be retried, and its retry's Jobs must reach the reconcile. Deletions, and
/// objects of unknown Workflows, pass.
fn of_succeeded<K: Resource>(
    event: &Result<watcher::Event<K>, watcher::Error>,
    workflows: &Store<Workflow>,
    workflow_of: fn(&K) -> Option<WorkflowId>,
) -> bool {
    let Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) = event else {
        return false;
    };
    let (Some(namespace), Some((name, uid))) =
        (object.meta().namespace.as_deref(), workflow_of(object))
    else {
        return false;
    };
    workflows
        .get(&ObjectRef::new(&name).within(namespace))
        .is_some_and(|w| succeeded(&w) && (uid.is_none() || w.uid() == uid))
}

/// A Workflow's name, and its uid when known.
type WorkflowId = (String, Option<String>);

/// A Job's controlling Workflow: its name and uid.
fn job_workflow(job: &Job) -> Option<WorkflowId> {
    let owner = controller(job, "Workflow")?;
    Some((owner.name.clone(), Some(owner.uid.clone())))
}

/// A pod's Workflow, by the label its Job's template gives it (a name cut to fit the label
/// finds no Workflow, and the pod is kept).
fn pod_workflow(pod: &Pod) -> Option<WorkflowId> {
    Some((pod.labels().get(WORKFLOW_LABEL)?.clone(), None))
}

/// The uid of the object's controller.
fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// An object with only the name and namespace of `object`: what a store's deletion needs. It
/// names no owner, so its deletion wakes no Workflow.
fn stub<K: Resource + Default>(object: &K) -> K {
    let mut stub = K::default();
    stub.meta_mut().name = object.meta().name.clone();
    stub.meta_mut().namespace = object.meta().namespace.clone();
    stub
}

/// The Workflow that controls the Job that controls `pod`.
fn workflow_of(pod: &Pod, jobs: &Store<Job>) -> Option<ObjectRef<Workflow>> {
    workflow_of_job(&pod.namespace()?, &controller_named(pod, "Job")?, jobs)
}

/// The Workflow that controls Job `job` of `namespace`, if the Job is cached.
fn workflow_of_job(namespace: &str, job: &str, jobs: &Store<Job>) -> Option<ObjectRef<Workflow>> {
    let job = jobs.get(&ObjectRef::new(job).within(namespace))?;
    let workflow = controller_named(job.as_ref(), "Workflow")?;
    Some(ObjectRef::new(&workflow).within(namespace))
}

fn controller_named<K: Resource>(object: &K, kind: &str) -> Option<String> {
    controller(object, kind).map(|r| r.name.clone())
}

fn controller<'a, K: Resource>(
    object: &'a K,
    kind: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == kind)
}

/// A hash of the pod's scheduling condition, for the predicate filter.
fn scheduling(pod: &Pod) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")?;
    let mut hasher = DefaultHasher::new();
    (&condition.status, &condition.reason, &condition.message).hash(&mut hasher);
    Some(hasher.finish())
}

/// Managed fields are the bulk of an object and never read here.
fn slim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Of a Job, the reconcile reads its owner, uid and conditions; its pod template is the bulk.
fn slim_job(job: &mut Job) {
    slim(job);
    job.metadata.annotations = None;
    job.spec = None;
}

/// A finished Job's pods stay until the Job goes: keep only what choosing a pod, reading its
/// termination message and seeing it unschedulable need (labels, owner, phase, creation time,
/// the scheduling condition, container names and states).
fn slim_pod(pod: &mut Pod) {
    slim(pod);
    pod.metadata.annotations = None;
    if let Some(spec) = &mut pod.spec {
        let containers = std::mem::take(&mut spec.containers);
        *spec = PodSpec {
            containers: containers
                .into_iter()
                .map(|c| Container {
                    name: c.name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
    }
    if let Some(status) = &mut pod.status {
        let scheduled = status
            .conditions
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.type_ == "PodScheduled")
            .collect();
        *status = PodStatus {
            phase: status.phase.take(),
            conditions: Some(scheduled),
            container_statuses: status.container_statuses.take(),
            ..Default::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn pod(namespace: &str, name: &str, job_uid: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some(namespace.into());
        pod.metadata.name = Some(name.into());
        pod.metadata.labels = Some([(JOB_UID_LABEL.to_owned(), job_uid.to_owned())].into());
        pod
    }

    #[test]
    fn lookups_search_every_scope_and_match_namespace_and_job() {
        let mut cache = Cache::default();
        for (namespace, pods) in [
            ("a", vec![pod("a", "p1", "u1"), pod("a", "p2", "u2")]),
            ("b", vec![pod("b", "p3", "u1")]),
        ] {
            let (store, mut writer) = reflector::store();
            for pod in pods {
                let event = Event::Apply(pod);
                writer.apply_watcher_event(&event);
                cache.pod_index.follow(&event, &store);
            }
            cache.pods.push(store);
            let (store, mut writer) = reflector::store::<Job>();
            let mut job = Job::default();
            job.metadata.namespace = Some(namespace.into());
            job.metadata.name = Some("j".into());
            writer.apply_watcher_event(&Event::Apply(job));
            cache.jobs.push(store);
        }
        let names = |pods: Vec<Arc<Pod>>| {
            let mut names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
            names.sort();
            names
        };
        assert_eq!(names(cache.pods_of("a", "u1")), ["p1"]);
        assert_eq!(names(cache.pods_of("b", "u1")), ["p3"]);
        assert!(cache.pods_of("a", "u3").is_empty());
        assert_eq!(
            cache.job("b", "j").unwrap().namespace().as_deref(),
            Some("b")
        );
        assert!(cache.job("c", "j").is_none());
    }

    #[test]
    fn a_slim_pod_still_gives_its_termination_message() {
        let mut pod = pod("a", "p", "u");
        pod.metadata.annotations = Some([("big".to_owned(), "x".repeat(1000))].into());
        pod.spec = Some(PodSpec {
            containers: ["sidecar", "roiergasias"]
                .map(|name| Container {
                    name: name.into(),
                    image: Some("image".into()),
                    command: Some(vec!["run".into()]),
                    ..Default::default()
                })
                .into(),
            node_name: Some("node1".into()),
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            container_statuses: Some(vec![crate::observe::tests::terminated(
                "roiergasias",
                "{\"A\":\"1\"}",
            )]),
            message: Some("m".into()),
            ..Default::default()
        });
        slim_pod(&mut pod);
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(
            pod.labels().get(JOB_UID_LABEL).map(String::as_str),
            Some("u")
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.containers.len(), 2);
        assert_eq!(
            (spec.containers[1].name.as_str(), &spec.containers[1].image),
            ("roiergasias", &None)
        );
        assert_eq!(spec.node_name, None);
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Succeeded")
        );
        assert_eq!(pod.status.as_ref().unwrap().message, None);
        assert_eq!(
            crate::observe::termination_message(&pod).as_deref(),
            Some("{\"A\":\"1\"}")
        );
    }

    #[test]
    fn a_pod_maps_to_the_workflow_of_its_job() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let owner = |kind: &str, name: &str, controller: bool| OwnerReference {
            kind: kind.into(),
            name: name.into(),
            controller: Some(controller),
            ..Default::default()
        };
        let (store, mut writer) = reflector::store::<Job>();
        let mut job = Job::default();
        job.metadata.namespace = Some("ns".into());
        job.metadata.name = Some("wf-1-node1".into());
        job.metadata.owner_references = Some(vec![owner("Workflow", "wf", true)]);
        writer.apply_watcher_event(&Event::Apply(job));

        let mut p = pod("ns", "wf-1-node1-abcde", "u");
        p.metadata.owner_references = Some(vec![owner("Job", "wf-1-node1", true)]);
        assert_eq!(
            workflow_of(&p, &store),
            Some(ObjectRef::new("wf").within("ns"))
        );
        p.metadata.namespace = Some("other".into());
        assert_eq!(workflow_of(&p, &store), None, "Jobs are per namespace");
        let mut p = pod("ns", "x", "u");
        p.metadata.owner_references = Some(vec![owner("Job", "wf-1-node1", false)]);
        assert_eq!(workflow_of(&p, &store), None, "not its controller");
        assert_eq!(workflow_of(&pod("ns", "x", "u"), &store), None);
    }

    #[test]
    fn scheduling_changes_only_with_the_scheduling_condition() {
        use k8s_openapi::api::core::v1::PodCondition;
        let with = |phase: &str, status: &str, message: &str| {
            let mut p = pod("ns", "p", "u");
            p.status = Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: status.into(),
                    message: Some(message.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            p
        };
        assert_eq!(scheduling(&pod("ns", "p", "u")), None);
        assert_eq!(
            scheduling(&with("Pending", "True", "")),
            scheduling(&with("Succeeded", "True", "")),
            "a phase change alone wakes nobody"
        );
        assert_ne!(
            scheduling(&with("Pending", "False", "0/3 nodes")),
            scheduling(&with("Pending", "True", ""))
        );
        assert_ne!(
            scheduling(&with("Pending", "False", "0/3 nodes")),
            scheduling(&with("Pending", "False", "0/4 nodes"))
        );
    }

    fn owned_by(
        mut object_meta: kube::api::ObjectMeta,
        kind: &str,
        name: &str,
        uid: &str,
    ) -> kube::api::ObjectMeta {
        object_meta.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                kind: kind.into(),
                name: name.into(),
                uid: uid.into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        object_meta
    }

    fn job_of(workflow: &str, name: &str) -> Job {
        let mut job = Job::default();
        job.metadata.namespace = Some("ns".into());
        job.metadata.name = Some(name.into());
        job.metadata.uid = Some(format!("uid-{name}"));
        job.metadata = owned_by(
            job.metadata,
            "Workflow",
            workflow,
            &format!("uid-{workflow}"),
        );
        job
    }

    fn pod_of(workflow: &str, job: &str) -> Pod {
        let mut p = pod("ns", &format!("{job}-pod"), &format!("uid-{job}"));
        p.metadata
            .labels
            .get_or_insert_default()
            .insert(WORKFLOW_LABEL.into(), workflow.into());
        p.metadata = owned_by(p.metadata, "Job", job, &format!("uid-{job}"));
        p
    }

    fn workflow(name: &str, phase: Phase) -> Workflow {
        let mut wf = Workflow::new(name, Default::default());
        wf.metadata.namespace = Some("ns".into());
        wf.metadata.uid = Some(format!("uid-{name}"));
        wf.status = Some(roiergasias_crd::WorkflowStatus {
            phase: Some(phase),
            ..Default::default()
        });
        wf
    }

    #[tokio::test]
    async fn a_finished_workflow_s_jobs_and_pods_leave_the_cache_and_stay_out() {
        let (workflows, mut workflow_writer) = reflector::store::<Workflow>();
        for wf in [workflow("a", Phase::Running), workflow("b", Phase::Running)] {
            workflow_writer.apply_watcher_event(&Event::Apply(wf));
        }
        let (job_tx, job_rx) = unbounded();
        let (pod_tx, pod_rx) = unbounded();
        let mut cache = Cache::default();
        let (jobs, pods, _) = cache.scope((job_rx, pod_rx), workflows);
        let (mut jobs, mut pods) = (jobs.boxed(), pods.boxed());
        for (wf, job) in [("a", "a-1"), ("b", "b-1")] {
            job_tx
                .unbounded_send(Ok(Event::Apply(job_of(wf, job))))
                .unwrap();
            pod_tx
                .unbounded_send(Ok(Event::Apply(pod_of(wf, job))))
                .unwrap();
            jobs.next().await.unwrap().unwrap();
            pods.next().await.unwrap().unwrap();
        }
        assert!(cache.job("ns", "a-1").is_some());
        assert_eq!(cache.pods_of("ns", "uid-a-1").len(), 1);

        cache.forget_if_finished(&workflow("b", Phase::Running));
        let done = workflow("a", Phase::Succeeded);
        workflow_writer.apply_watcher_event(&Event::Apply(done.clone()));
        cache.forget_if_finished(&done);
        let forgotten = jobs.next().await.unwrap().unwrap();
        assert!(
            forgotten.metadata.owner_references.is_none(),
            "wakes nobody"
        );
        pods.next().await.unwrap().unwrap();
        assert!(cache.job("ns", "a-1").is_none(), "a's Job is dropped");
        assert!(cache.pods_of("ns", "uid-a-1").is_empty(), "and its pod");
        assert!(cache.job("ns", "b-1").is_some(), "b still runs");
        assert_eq!(cache.pods_of("ns", "uid-b-1").len(), 1);

        // A watch that lists again brings a's objects back: they are kept out, b's go in.
        for (wf, job) in [("a", "a-1"), ("b", "b-2")] {
            job_tx
                .unbounded_send(Ok(Event::Apply(job_of(wf, job))))
                .unwrap();
            pod_tx
                .unbounded_send(Ok(Event::Apply(pod_of(wf, job))))
                .unwrap();
        }
        assert_eq!(
            jobs.next().await.unwrap().unwrap().metadata.name.as_deref(),
            Some("b-2")
        );
        assert_eq!(
            pods.next().await.unwrap().unwrap().metadata.name.as_deref(),
            Some("b-2-pod")
        );
        assert!(cache.job("ns", "a-1").is_none());
        assert!(cache.pods_of("ns", "uid-a-1").is_empty());
    }

    #[test]
    fn only_a_succeeded_workflow_keeps_its_objects_out() {
        let (workflows, mut writer) = reflector::store::<Workflow>();
        writer.apply_watcher_event(&Event::Apply(workflow("s", Phase::Succeeded)));
        writer.apply_watcher_event(&Event::Apply(workflow("f", Phase::Failed)));
        let apply = |job: Job| Ok(Event::Apply(job));
        assert!(of_succeeded(
            &apply(job_of("s", "s-1")),
            &workflows,
            job_workflow
        ));
        assert!(
            !of_succeeded(&apply(job_of("f", "f-1-retry2")), &workflows, job_workflow),
            "a Failed workflow's retry Job must reach it"
        );
        assert!(
            !of_succeeded(&apply(job_of("x", "x-1")), &workflows, job_workflow),
            "unknown"
        );
        let mut other = job_of("s", "s-1");
        other.metadata = owned_by(other.metadata, "Workflow", "s", "another-uid");
        assert!(
            !of_succeeded(&apply(other), &workflows, job_workflow),
            "a new s"
        );
        assert!(!of_succeeded(
            &Ok(Event::Delete(job_of("s", "s-1"))),
            &workflows,
            job_workflow
        ));
        let pod = |p: Pod| Ok(Event::Apply(p));
        assert!(of_succeeded(
            &pod(pod_of("s", "s-1")),
            &workflows,
            pod_workflow
        ));
        assert!(!of_succeeded(
            &pod(pod_of("f", "f-1")),
            &workflows,
            pod_workflow
        ));
    }

    #[test]
    fn slim_drops_managed_fields_only() {
        let mut pod = pod("a", "p", "u");
        pod.metadata.managed_fields = Some(vec![Default::default()]);
        slim(&mut pod);
        assert_eq!(pod, self::pod("a", "p", "u"));
    }
}
