//! Watch caches of the operator's Jobs and their pods. Every Job change wakes a reconcile that
//! reads the Job, and every hand-off reads the finished pod's termination message: from memory,
//! these cost the API server nothing and the hand-off two round trips. A lookup that misses (an
//! object created a moment ago, or a cache still filling) falls back to the API server. A pod
//! that no node can take also wakes its Workflow, so status can say so.

use std::sync::Arc;

use futures::Stream;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use roiergasias_crd::Workflow;

/// The label the Job controller puts on its pods.
pub const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// The stores of every watched scope (one per `--namespace`, or one for all).
#[derive(Clone, Default)]
pub struct Cache {
    jobs: Vec<Store<Job>>,
    pods: Vec<Store<Pod>>,
}

impl Cache {
    pub fn job(&self, namespace: &str, name: &str) -> Option<Arc<Job>> {
        let key = ObjectRef::new(name).within(namespace);
        self.jobs.iter().find_map(|store| store.get(&key))
    }

    /// The pods the Job with `job_uid` created, as far as the cache has seen them.
    pub fn pods_of(&self, namespace: &str, job_uid: &str) -> Vec<Arc<Pod>> {
        self.pods
            .iter()
            .flat_map(|store| store.state())
            .filter(|pod| {
                pod.namespace().as_deref() == Some(namespace)
                    && pod.labels().get(JOB_UID_LABEL).map(String::as_str) == Some(job_uid)
            })
            .collect()
    }

    /// Caches the objects of `jobs` and `pods` matching `config`. Returns the Job events and the
    /// pod events that should wake their Workflow (the store is updated before each is yielded),
    /// with the map from a pod to its Workflow.
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &mut self,
        jobs: Api<Job>,
        pods: Api<Pod>,
        config: &watcher::Config,
    ) -> (
        impl Stream<Item = Result<Job, watcher::Error>> + Send + 'static,
        impl Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
        impl Fn(Pod) -> Option<ObjectRef<Workflow>> + Send + Sync + 'static,
    ) {
        let (job_store, job_writer) = reflector::store();
        let (pod_store, pod_writer) = reflector::store();
        self.jobs.push(job_store.clone());
        self.pods.push(pod_store);
        let job_events = watcher(jobs, config.clone())
            .default_backoff()
            .modify(slim_job)
            .reflect(job_writer)
            .touched_objects();
        // A pod matters to its Workflow only when it becomes (un)schedulable: its Job reports
        // the rest.
        let pod_events = watcher(pods, config.clone())
            .default_backoff()
            .modify(slim_pod)
            .reflect(pod_writer)
            .touched_objects()
            .predicate_filter(scheduling, PredicateConfig::default());
        let workflow_of = move |pod: Pod| workflow_of(&pod, &job_store);
        (job_events, pod_events, workflow_of)
    }
}

/// The Workflow that controls the Job that controls `pod`.
fn workflow_of(pod: &Pod, jobs: &Store<Job>) -> Option<ObjectRef<Workflow>> {
    let namespace = pod.namespace()?;
    let job = controller_named(pod, "Job")?;
    let job = jobs.get(&ObjectRef::new(&job).within(&namespace))?;
    let workflow = controller_named(job.as_ref(), "Workflow")?;
    Some(ObjectRef::new(&workflow).within(&namespace))
}

fn controller_named<K: Resource>(object: &K, kind: &str) -> Option<String> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == kind)
        .map(|r| r.name.clone())
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
                writer.apply_watcher_event(&Event::Apply(pod));
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

    #[test]
    fn slim_drops_managed_fields_only() {
        let mut pod = pod("a", "p", "u");
        pod.metadata.managed_fields = Some(vec![Default::default()]);
        slim(&mut pod);
        assert_eq!(pod, self::pod("a", "p", "u"));
    }
}
