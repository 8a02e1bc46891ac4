//! An in-memory stand-in for the API server and the Job controller, for the operator's logic
//! tests: it keeps one Workflow with its ConfigMaps, Jobs, pods and Events, answers as the API
//! server does (409 on a name taken, a conflict on a stale resourceVersion), injects errors, and
//! can crash after any write, so a restart at every point between two writes can be tested.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerState, ContainerStateTerminated, ContainerStatus, Event as CoreEvent, Node,
    ObjectReference, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use roiergasias_crd::{Workflow, WorkflowStatus};

use super::Cluster;
use crate::cache::JOB_UID_LABEL;
use crate::error::Error;
use crate::workflow::{Created, Note, Object};

/// What the fake holds; tests read and change it through [`FakeCluster::state`].
#[derive(Default)]
pub(crate) struct State {
    pub(crate) workflow: Option<Workflow>,
    pub(crate) config_maps: BTreeMap<String, ConfigMap>,
    pub(crate) jobs: BTreeMap<String, Job>,
    pub(crate) pods: Vec<Pod>,
    pub(crate) nodes: BTreeMap<String, Node>,
    pub(crate) failed_creates: Vec<CoreEvent>,
    /// Events published, in order.
    pub(crate) events: Vec<Note>,
    /// Every successful status write, in order.
    pub(crate) status_writes: Vec<WorkflowStatus>,
    /// The Jobs suspended, one entry per patch, in order.
    pub(crate) suspended_jobs: Vec<String>,
    /// The uids of the Workflows deleted, in order.
    pub(crate) deleted: Vec<String>,
    /// Errors injected: the next call named so (`create ConfigMap`, `create Job`, `write status`,
    /// `get Job`, `list pods`) fails with it.
    pub(crate) faults: Vec<(&'static str, Fault)>,
    /// After this many more writes (creates and status writes), the operator "crashes": that
    /// write is made, and every later call fails without reaching the cluster.
    pub(crate) crash_after: Option<usize>,
    pub(crate) crashed: bool,
    counter: u64,
}

/// An injected error.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// The API server answers 500.
    Unavailable,
    /// It refuses the object: 422 with this message.
    Invalid(String),
    /// It never answers (hung, or cut off).
    Hang,
}

#[derive(Clone, Default)]
pub(crate) struct FakeCluster(Arc<Mutex<State>>);

impl FakeCluster {
    pub(crate) fn with(workflow: Workflow) -> Self {
        let fake = FakeCluster::default();
        fake.state().workflow = Some(workflow);
        fake
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Workflow as stored now, as a reconcile would get it.
    pub(crate) fn workflow(&self) -> Workflow {
        self.state().workflow.clone().expect("a workflow")
    }

    pub(crate) fn status(&self) -> WorkflowStatus {
        self.workflow().status_or_default()
    }

    /// The Job controller: Job `name` ended (Complete when `succeeded`), its pod with `message`.
    pub(crate) fn finish_job(&self, name: &str, succeeded: bool, message: Option<&str>) {
        let mut state = self.state();
        let job = state.jobs.get_mut(name).expect("the Job exists");
        let type_ = if succeeded { "Complete" } else { "Failed" };
        job.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: type_.into(),
                status: "True".into(),
                reason: (!succeeded).then(|| "BackoffLimitExceeded".into()),
                message: (!succeeded).then(|| "Job has reached the specified backoff limit".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let uid = job.uid().unwrap_or_default();
        let phase = if succeeded { "Succeeded" } else { "Failed" };
        let pod = pod_of(&uid, name, phase, message);
        state
            .pods
            .retain(|p| p.labels().get(JOB_UID_LABEL) != Some(&uid));
        state.pods.push(pod);
    }

    /// The Job controller: Job `name` has a running pod.
    pub(crate) fn start_pod(&self, name: &str) {
        let mut state = self.state();
        let uid = state.jobs[name].uid().unwrap_or_default();
        state.pods.push(pod_of(&uid, name, "Running", None));
    }

    /// Names of the ConfigMaps and Jobs, in creation order of their names.
    pub(crate) fn objects(&self) -> (Vec<String>, Vec<String>) {
        let state = self.state();
        let cms = state.config_maps.keys().cloned().collect();
        let jobs = state.jobs.keys().cloned().collect();
        (cms, jobs)
    }

    /// Never returns while a [`Fault::Hang`] is set for the call `name`.
    async fn hang_if(&self, name: &str) {
        let hung = {
            self.state()
                .faults
                .iter()
                .any(|(n, f)| *n == name && matches!(f, Fault::Hang))
        };
        if hung {
            std::future::pending::<()>().await;
        }
    }

    /// Counts a write; `Err` once the operator has crashed, or for an injected fault.
    fn call(&self, name: &str, writes: bool) -> Result<MutexGuard<'_, State>, Error> {
        let mut state = self.state();
        if state.crashed {
            return Err(api_error(503, "the operator crashed"));
        }
        if let Some(i) = state.faults.iter().position(|(n, _)| *n == name) {
            let (_, fault) = state.faults.remove(i);
            return Err(match fault {
                Fault::Unavailable => api_error(500, "etcdserver: request timed out"),
                Fault::Invalid(message) => api_error(422, &message),
                // hang_if comes first and never returns for it.
                Fault::Hang => api_error(504, "no answer"),
            });
        }
        if writes && let Some(left) = state.crash_after.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                state.crash_after = None;
                state.crashed = true;
            }
        }
        Ok(state)
    }
}

/// Creates `object` in `objects` as the API server would: a name taken gives the object there.
fn create_in<K: kube::Resource + Clone>(
    objects: &mut BTreeMap<String, K>,
    object: &K,
    counter: &mut u64,
) -> ObjectMeta {
    let name = object.meta().name.clone().unwrap_or_default();
    if let Some(existing) = objects.get(&name) {
        return existing.meta().clone();
    }
    *counter += 1;
    let mut object = object.clone();
    let meta = object.meta_mut();
    meta.uid = Some(format!("{name}-uid-{counter}"));
    meta.creation_timestamp = Some(now());
    meta.resource_version = Some("1".into());
    let meta = meta.clone();
    objects.insert(name, object);
    meta
}

/// A crash is noticed after the write was made: the operator never saw its answer.
fn after_crash<T>(state: &State, value: T) -> Result<T, Error> {
    match state.crashed {
        true => Err(api_error(503, "the operator crashed")),
        false => Ok(value),
    }
}

fn api_error(code: u16, message: &str) -> Error {
    let status = kube::core::Status::failure(message, "Fake").with_code(code);
    Error::Kube(kube::Error::Api(status.boxed()))
}

fn pod_of(job_uid: &str, job: &str, phase: &str, message: Option<&str>) -> Pod {
    let terminated = (phase != "Running").then(|| ContainerState {
        terminated: Some(ContainerStateTerminated {
            message: message.map(Into::into),
            ..Default::default()
        }),
        ..Default::default()
    });
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{job}-pod")),
            labels: Some([(JOB_UID_LABEL.to_owned(), job_uid.to_owned())].into()),
            creation_timestamp: Some(now()),
            ..Default::default()
        },
        status: Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: crate::build::RUNNER_CONTAINER.into(),
                state: terminated,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl Cluster for FakeCluster {
    async fn job(&self, _namespace: &str, name: &str) -> Result<Option<Arc<Job>>, Error> {
        self.hang_if("get Job").await;
        let state = self.call("get Job", false)?;
        Ok(state.jobs.get(name).cloned().map(Arc::new))
    }

    fn cached_pods(&self, _namespace: &str, job_uid: &str) -> Vec<Arc<Pod>> {
        let state = self.state();
        let of_job = |p: &&Pod| p.labels().get(JOB_UID_LABEL).map(String::as_str) == Some(job_uid);
        state
            .pods
            .iter()
            .filter(of_job)
            .cloned()
            .map(Arc::new)
            .collect()
    }

    async fn list_pods(&self, namespace: &str, job_uid: &str) -> Result<Vec<Pod>, Error> {
        self.hang_if("list pods").await;
        drop(self.call("list pods", false)?);
        let pods = self.cached_pods(namespace, job_uid);
        Ok(pods.iter().map(|p| (**p).clone()).collect())
    }

    async fn node(&self, name: &str) -> Result<Option<Node>, Error> {
        self.hang_if("get Node").await;
        let state = self.call("get Node", false)?;
        Ok(state.nodes.get(name).cloned())
    }

    async fn failed_creates(&self, _namespace: &str, job: &str) -> Result<Vec<CoreEvent>, Error> {
        self.hang_if("list events").await;
        let state = self.call("list events", false)?;
        let about = |e: &&CoreEvent| e.involved_object.name.as_deref() == Some(job);
        Ok(state.failed_creates.iter().filter(about).cloned().collect())
    }

    async fn jobs_labelled(&self, _ns: &str, selector: &str) -> Result<Vec<ObjectMeta>, Error> {
        self.hang_if("list Jobs").await;
        let state = self.call("list Jobs", false)?;
        let wanted: Vec<(&str, &str)> = selector
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let matches = |meta: &ObjectMeta| {
            let labels = meta.labels.clone().unwrap_or_default();
            wanted
                .iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        };
        let metas = state.jobs.values().map(|j| j.metadata.clone());
        Ok(metas.filter(matches).collect())
    }

    async fn create(&self, _namespace: &str, object: &Object) -> Result<Created, Error> {
        let call = match object {
            Object::ConfigMap(_) => "create ConfigMap",
            Object::Job(_) => "create Job",
        };
        self.hang_if(call).await;
        let mut state = match self.call(call, true) {
            // As over kube: an object the API server refuses is an answer, not an error.
            Err(Error::Kube(kube::Error::Api(status))) if status.code == 422 => {
                return Ok(Created::Rejected(status.message));
            }
            other => other?,
        };
        let State {
            config_maps,
            jobs,
            counter,
            ..
        } = &mut *state;
        let created = match object {
            Object::ConfigMap(cm) => create_in(config_maps, cm, counter),
            Object::Job(job) => create_in(jobs, job, counter),
        };
        after_crash(&state, Created::Exists(Box::new(created)))
    }

    async fn write_status(&self, workflow: &Workflow, new: &WorkflowStatus) -> Result<(), Error> {
        self.hang_if("write status").await;
        let mut state = self.call("write status", true)?;
        let stored = state.workflow.as_mut().expect("a workflow");
        if stored.resource_version() != workflow.resource_version() {
            return Err(Error::Conflict);
        }
        stored.status = Some(new.clone());
        let rv: u64 = stored
            .resource_version()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        stored.metadata.resource_version = Some((rv + 1).to_string());
        state.status_writes.push(new.clone());
        after_crash(&state, ())
    }

    async fn suspend_job(&self, _namespace: &str, name: &str) -> Result<(), Error> {
        self.hang_if("patch Job").await;
        let mut state = self.call("patch Job", true)?;
        if let Some(job) = state.jobs.get_mut(name) {
            job.spec.get_or_insert_with(Default::default).suspend = Some(true);
            state.suspended_jobs.push(name.to_owned());
        }
        after_crash(&state, ())
    }

    async fn delete_workflow(&self, workflow: &Workflow) -> Result<(), Error> {
        self.hang_if("delete Workflow").await;
        let mut state = self.call("delete Workflow", true)?;
        let stored_uid = state.workflow.as_ref().and_then(|w| w.uid());
        // As the uid precondition: a re-created Workflow (another uid) is left alone.
        if stored_uid.is_some() && stored_uid == workflow.uid() {
            state.workflow = None;
            state.deleted.extend(stored_uid);
        }
        after_crash(&state, ())
    }

    fn publish(&self, _workflow: &Workflow, note: &Note) {
        let mut state = self.state();
        if !state.crashed {
            state.events.push(note.clone());
        }
    }
}

/// A FailedCreate Event of the Job controller for Job `job` with `uid`.
pub(crate) fn failed_create(job: &str, uid: &str, message: &str) -> CoreEvent {
    CoreEvent {
        involved_object: ObjectReference {
            kind: Some("Job".into()),
            name: Some(job.into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        reason: Some("FailedCreate".into()),
        message: Some(message.into()),
        last_timestamp: Some(now()),
        ..Default::default()
    }
}
