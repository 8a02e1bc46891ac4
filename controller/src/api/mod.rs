//! The one seam between the operator's logic and the API server: every call a reconcile makes.
//! [`KubeCluster`] carries them out over kube (with the watch caches); tests use a fake.

mod events;
#[cfg(test)]
pub(crate) mod fake;
mod kube;

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use roiergasias_crd::{Workflow, WorkflowStatus};

pub use self::kube::KubeCluster;
use crate::error::Error;
use crate::workflow::{Created, Note, Object};

/// The operator's API calls. Writes are the only calls that change the cluster.
pub(crate) trait Cluster: Send + Sync + 'static {
    /// Job `name`: from the watch cache, else from the API server (a Job created a moment ago).
    fn job(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Arc<Job>>, Error>> + Send;

    /// The pods of the Job with `job_uid`, as far as the watch cache has seen them.
    fn cached_pods(&self, namespace: &str, job_uid: &str) -> Vec<Arc<Pod>>;

    /// The pods of the Job with `job_uid`, from the API server.
    fn list_pods(
        &self,
        namespace: &str,
        job_uid: &str,
    ) -> impl Future<Output = Result<Vec<Pod>, Error>> + Send;

    /// Node `name`, from the API server (asked only about a running pod that is not Ready).
    fn node(&self, name: &str) -> impl Future<Output = Result<Option<Node>, Error>> + Send;

    /// The Job controller's FailedCreate Events for Job `job`.
    fn failed_creates(
        &self,
        namespace: &str,
        job: &str,
    ) -> impl Future<Output = Result<Vec<CoreEvent>, Error>> + Send;

    /// The metadata of the Jobs matching the label `selector`.
    fn jobs_labelled(
        &self,
        namespace: &str,
        selector: &str,
    ) -> impl Future<Output = Result<Vec<ObjectMeta>, Error>> + Send;

    /// Creates `object`; one that exists already (a 409) is read and returned as it is.
    fn create(
        &self,
        namespace: &str,
        object: &Object,
    ) -> impl Future<Output = Result<Created, Error>> + Send;

    /// Replaces `workflow`'s status by `new`, conditional on `workflow`'s resourceVersion:
    /// [`Error::Conflict`] when the Workflow has moved on.
    fn write_status(
        &self,
        workflow: &Workflow,
        new: &WorkflowStatus,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Suspends Job `name` with the merge patch `{"spec":{"suspend":true}}`: the Job controller
    /// stops its pods and the Job is kept. A Job already gone is not an error.
    fn suspend_job(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Deletes `workflow`, on condition that it is still the one with its uid (a Workflow
    /// re-created under its name is left alone); its ConfigMaps, Jobs and pods follow through
    /// their owner references. One already gone is not an error.
    fn delete_workflow(
        &self,
        workflow: &Workflow,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Publishes an Event on `workflow` without holding up the reconcile; a lost one must not
    /// stop the workflow.
    fn publish(&self, workflow: &Workflow, note: &Note);
}
