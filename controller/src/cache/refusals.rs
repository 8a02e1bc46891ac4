//! The Job controller's FailedCreate Events about Jobs, watched: a Job with no pod yet is checked
//! for a refusal every few seconds, and a list of Events per check scans every Event of the
//! namespace in the API server (1000 workflows waiting on their first pods: about 100 lists a
//! second, each 0.5 s of API server time, which starved the Job controller). From the watch a
//! check costs nothing, and a refusal wakes its Workflow at once.

use futures::Stream;
use futures::future::FutureExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use roiergasias_crd::Workflow;

use super::{Cache, workflow_of_job};

/// The Events watched: only the Job controller's FailedCreate ones, of any Job in the scope.
pub(crate) const FIELDS: &str = "involvedObject.kind=Job,reason=FailedCreate";

impl Cache {
    /// Watches the FailedCreate Events of `events`' scope; call after [`Cache::watch`] of the
    /// same scope, whose Job cache maps an Event to the Workflow of its Job. Returns the Events
    /// (the store is updated before each is yielded) and that map.
    pub fn watch_refusals(
        &mut self,
        events: Api<CoreEvent>,
    ) -> (
        impl Stream<Item = Result<CoreEvent, watcher::Error>> + Send + 'static,
        impl Fn(CoreEvent) -> Option<ObjectRef<Workflow>> + Send + Sync + 'static,
    ) {
        let config = watcher::Config::default().fields(FIELDS);
        let (store, writer) = reflector::store();
        self.refusals.push(store);
        let events = watcher(events, config)
            .default_backoff()
            .modify(slim_event)
            .reflect(writer)
            .applied_objects();
        let jobs = self.jobs.last().cloned();
        let workflow_of =
            move |event: CoreEvent| workflow_of(&event.involved_object, jobs.as_ref());
        (events, workflow_of)
    }

    /// The FailedCreate Events of Job `job`, once every scope's watch has listed them; `None`
    /// before (the caller asks the API server).
    pub fn failed_creates(&self, namespace: &str, job: &str) -> Option<Vec<CoreEvent>> {
        let ready = |store: &Store<CoreEvent>| store.wait_until_ready().now_or_never().is_some();
        if self.refusals.is_empty() || !self.refusals.iter().all(ready) {
            return None;
        }
        let about = |e: &CoreEvent| {
            e.metadata.namespace.as_deref() == Some(namespace)
                && e.involved_object.name.as_deref() == Some(job)
        };
        let events = self.refusals.iter().flat_map(|s| s.state());
        Some(events.filter(|e| about(e)).map(|e| (*e).clone()).collect())
    }
}

/// The Workflow that controls the Job an Event is about, if the Job is cached.
fn workflow_of(job: &ObjectReference, jobs: Option<&Store<Job>>) -> Option<ObjectRef<Workflow>> {
    let (namespace, name) = (job.namespace.as_deref()?, job.name.as_deref()?);
    workflow_of_job(namespace, name, jobs?)
}

/// What a refusal check reads: the Job it is about, the message and when it was last seen.
fn slim_event(event: &mut CoreEvent) {
    *event = CoreEvent {
        metadata: kube::api::ObjectMeta {
            name: event.metadata.name.take(),
            namespace: event.metadata.namespace.take(),
            ..Default::default()
        },
        involved_object: std::mem::take(&mut event.involved_object),
        message: event.message.take(),
        last_timestamp: event.last_timestamp.take(),
        reason: event.reason.take(),
        ..Default::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::refusal;
    use kube::runtime::watcher::Event;

    fn failed_create(namespace: &str, job: &str, uid: &str, message: &str) -> CoreEvent {
        let mut event = crate::api::fake::failed_create(job, uid, message);
        event.metadata.namespace = Some(namespace.into());
        event.metadata.name = Some(format!("{job}.1"));
        event.involved_object.namespace = Some(namespace.into());
        event.metadata.managed_fields = Some(Vec::new());
        event
    }

    #[test]
    fn a_slim_event_still_gives_its_refusal() {
        let message = "Error creating: pods \"x\" is forbidden: violates PodSecurity";
        let mut event = failed_create("ns", "demo-1", "u1", message);
        event.source = Some(Default::default());
        slim_event(&mut event);
        assert!(event.metadata.managed_fields.is_none() && event.source.is_none());
        assert_eq!(refusal(vec![event], Some("u1")).as_deref(), Some(message));
    }

    #[tokio::test]
    async fn refusals_are_read_from_the_watch_once_it_has_listed() {
        let mut cache = Cache::default();
        let (store, mut writer) = reflector::store::<CoreEvent>();
        cache.refusals.push(store);
        assert!(
            cache.failed_creates("ns", "demo-1").is_none(),
            "not listed yet"
        );
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(failed_create("ns", "demo-1", "u1", "a")));
        writer.apply_watcher_event(&Event::InitApply(failed_create(
            "other", "demo-1", "u2", "b",
        )));
        writer.apply_watcher_event(&Event::InitApply(failed_create("ns", "demo-2", "u3", "c")));
        writer.apply_watcher_event(&Event::InitDone);
        let found = cache.failed_creates("ns", "demo-1").expect("listed");
        let messages: Vec<_> = found.iter().filter_map(|e| e.message.as_deref()).collect();
        assert_eq!(messages, ["a"]);
        assert_eq!(cache.failed_creates("ns", "none"), Some(Vec::new()));
    }

    #[test]
    fn an_event_wakes_the_workflow_of_its_job() {
        let (jobs, mut writer) = reflector::store::<Job>();
        let mut job = Job::default();
        job.metadata.name = Some("demo-1".into());
        job.metadata.namespace = Some("ns".into());
        job.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                kind: "Workflow".into(),
                name: "demo".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        writer.apply_watcher_event(&Event::Apply(job));
        let event = failed_create("ns", "demo-1", "u1", "m");
        let woken = workflow_of(&event.involved_object, Some(&jobs));
        assert_eq!(woken, Some(ObjectRef::new("demo").within("ns")));
        let unknown = failed_create("ns", "not-ours", "u9", "m");
        assert_eq!(workflow_of(&unknown.involved_object, Some(&jobs)), None);
    }
}
