//! [`Cluster`] over kube: the watch caches first, then the API server; status as JSON Patch.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Resource, ResourceExt};
use roiergasias_crd::{Workflow, WorkflowStatus};
use serde_json::json;
use tracing::{Instrument, warn};

use super::Cluster;
use super::events::Events;
use crate::cache::{Cache, JOB_UID_LABEL};
use crate::error::Error;
use crate::status_patch::{merge_patch, status_patch};
use crate::telemetry::{ApiWrite, Metrics};
use crate::workflow::{Created, Note, Object};

/// The operator's API calls over kube, reading from the running controllers' watch caches.
pub struct KubeCluster {
    client: kube::Client,
    cache: Cache,
    events: Arc<Events>,
    metrics: Arc<Metrics>,
}

impl KubeCluster {
    pub fn new(
        client: kube::Client,
        cache: Cache,
        reporter: Reporter,
        metrics: Arc<Metrics>,
    ) -> Self {
        KubeCluster {
            events: Arc::new(Events::new(client.clone(), reporter)),
            client,
            cache,
            metrics,
        }
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }
}

impl Cluster for KubeCluster {
    async fn job(&self, namespace: &str, name: &str) -> Result<Option<Arc<Job>>, Error> {
        if let Some(job) = self.cache.job(namespace, name) {
            return Ok(Some(job));
        }
        let jobs: Api<Job> = self.api(namespace);
        Ok(jobs.get_opt(name).await?.map(Arc::new))
    }

    fn cached_pods(&self, namespace: &str, job_uid: &str) -> Vec<Arc<Pod>> {
        self.cache.pods_of(namespace, job_uid)
    }

    async fn node(&self, name: &str) -> Result<Option<Node>, Error> {
        Ok(Api::<Node>::all(self.client.clone()).get_opt(name).await?)
    }

    async fn list_pods(&self, namespace: &str, job_uid: &str) -> Result<Vec<Pod>, Error> {
        let pods: Api<Pod> = self.api(namespace);
        let labels = format!("{JOB_UID_LABEL}={job_uid}");
        Ok(pods
            .list(&ListParams::default().labels(&labels))
            .await?
            .items)
    }

    async fn failed_creates(&self, namespace: &str, job: &str) -> Result<Vec<CoreEvent>, Error> {
        if let Some(events) = self.cache.failed_creates(namespace, job) {
            return Ok(events);
        }
        let events: Api<CoreEvent> = self.api(namespace);
        let fields =
            format!("involvedObject.kind=Job,involvedObject.name={job},reason=FailedCreate");
        Ok(events
            .list(&ListParams::default().fields(&fields))
            .await?
            .items)
    }

    async fn jobs_labelled(
        &self,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<ObjectMeta>, Error> {
        let jobs: Api<Job> = self.api(namespace);
        let list = jobs
            .list_metadata(&ListParams::default().labels(selector))
            .await?;
        Ok(list.items.into_iter().map(|j| j.metadata).collect())
    }

    async fn create(&self, namespace: &str, object: &Object) -> Result<Created, Error> {
        let (created, kind) = match object {
            Object::ConfigMap(cm) => (create(&self.api(namespace), cm).await?, ApiWrite::ConfigMap),
            Object::Job(job) => (create(&self.api(namespace), job).await?, ApiWrite::Job),
        };
        if matches!(created, Created::Exists(_)) {
            self.metrics.count_write(kind);
        }
        Ok(created)
    }

    async fn write_status(&self, workflow: &Workflow, new: &WorkflowStatus) -> Result<(), Error> {
        let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
        let bytes = patch_status(&self.api(&namespace), workflow, new).await?;
        self.metrics.count_write(ApiWrite::Status);
        self.metrics.count_status_patch(bytes);
        Ok(())
    }

    async fn suspend_job(&self, namespace: &str, name: &str) -> Result<(), Error> {
        let jobs: Api<Job> = self.api(namespace);
        let patch = json!({"spec": {"suspend": true}});
        let patched = jobs
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        match patched {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_workflow(&self, workflow: &Workflow) -> Result<(), Error> {
        let namespace = workflow.namespace().ok_or(Error::Incomplete("namespace"))?;
        let api: Api<Workflow> = self.api(&namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(workflow.uid().ok_or(Error::Incomplete("uid"))?),
                resource_version: None,
            }),
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(&workflow.name_any(), &params).await {
            Ok(_) => Ok(()),
            // Gone already, or another Workflow by that name now (the uid precondition).
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn publish(&self, workflow: &Workflow, note: &Note) {
        let event = Event {
            type_: match note.warning {
                true => EventType::Warning,
                false => EventType::Normal,
            },
            reason: note.reason.into(),
            note: Some(crate::transition::truncate(&note.message, 1000)),
            action: note.action.into(),
            secondary: note.job.as_deref().map(|job| job_named(workflow, job)),
        };
        let events = self.events.clone();
        let metrics = self.metrics.clone();
        let regarding = workflow.object_ref(&());
        let reason = note.reason;
        tokio::spawn(
            async move {
                match events.publish(&event, &regarding).await {
                    Ok(()) => metrics.count_write(ApiWrite::Event),
                    Err(error) => warn!(%error, reason, "could not publish an Event"),
                }
            }
            .in_current_span(),
        );
    }
}

/// Creates `object`, or reads it when it exists (409).
async fn create<K>(api: &Api<K>, object: &K) -> Result<Created, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(created) => Ok(Created::Exists(Box::new(created.meta().clone()))),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let name = object.meta().name.clone().unwrap_or_default();
            Ok(Created::Exists(Box::new(
                api.get(&name).await?.meta().clone(),
            )))
        }
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 413 => {
            Ok(Created::Rejected(status.message))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes what changed in the status as one JSON Patch (RFC 6902), conditional on the
/// resourceVersion read (see `crate::status_patch`). A patch that does not apply means either
/// the object moved on (a conflict in disguise), or its stored status differs from what was read
/// (a hand edit): then the status is sent whole. The bytes sent.
async fn patch_status(
    api: &Api<Workflow>,
    workflow: &Workflow,
    new: &WorkflowStatus,
) -> Result<usize, Error> {
    let rv = workflow.resource_version();
    let patch = status_patch(workflow.status.as_ref(), new, rv.as_deref())?;
    let mut bytes = serde_json::to_vec(&patch)?.len();
    let name = workflow.name_any();
    let params = PatchParams::default();
    let mut result = api
        .patch_status(&name, &params, &Patch::Json::<()>(patch))
        .await;
    if let Err(kube::Error::Api(status)) = &result
        && status.code == 422
    {
        if api.get(&name).await?.resource_version() != rv {
            return Err(Error::Conflict);
        }
        let whole = json!({
            "metadata": { "resourceVersion": rv },
            "status": merge_patch(workflow.status.as_ref(), new)?,
        });
        bytes = serde_json::to_vec(&whole)?.len();
        result = api
            .patch_status(&name, &params, &Patch::Merge(&whole))
            .await;
    }
    match result {
        Ok(_) => Ok(bytes),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// A reference to Job `name` in the Workflow's namespace.
fn job_named(workflow: &Workflow, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(name.to_owned()),
        namespace: workflow.namespace(),
        ..Default::default()
    }
}
