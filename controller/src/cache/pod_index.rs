//! Which cached pods each Job made: a reconcile of a running split asks for its Job's pods, and a
//! scan of every cached pod per ask was most of the operator's CPU at 1000 workflows (two in
//! five samples, comparing label keys). The index holds only references; the pods themselves
//! stay in the watch's store, where a lookup finds them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

use super::JOB_UID_LABEL;

#[derive(Clone, Default)]
pub(crate) struct PodIndex(Arc<Mutex<Index>>);

#[derive(Default)]
struct Index {
    by_job: HashMap<String, HashSet<ObjectRef<Pod>>>,
    job_of: HashMap<ObjectRef<Pod>, String>,
}

impl PodIndex {
    /// Follows `event` once `store` has applied it: a pod seen is indexed under its Job's uid, a
    /// pod deleted (or dropped, with no labels) leaves, and at the end of a listing every
    /// reference the store no longer holds leaves (pods deleted while the watch was down).
    pub(crate) fn follow(&self, event: &Event<Pod>, store: &Store<Pod>) {
        let mut index = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            Event::Apply(pod) | Event::InitApply(pod) => index.add(pod),
            Event::Delete(pod) => index.remove(&ObjectRef::from(pod)),
            Event::InitDone => {
                let gone: Vec<ObjectRef<Pod>> = index
                    .job_of
                    .keys()
                    .filter(|r| store.get(r).is_none())
                    .cloned()
                    .collect();
                gone.iter().for_each(|r| index.remove(r));
            }
            Event::Init => {}
        }
    }

    /// The pods indexed under the Job with `job_uid`.
    pub(crate) fn of_job(&self, job_uid: &str) -> Vec<ObjectRef<Pod>> {
        let index = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        index
            .by_job
            .get(job_uid)
            .map(|refs| refs.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Index {
    fn add(&mut self, pod: &Pod) {
        let Some(job_uid) = pod.labels().get(JOB_UID_LABEL) else {
            return;
        };
        let key = ObjectRef::from(pod);
        self.remove(&key);
        self.by_job
            .entry(job_uid.clone())
            .or_default()
            .insert(key.clone());
        self.job_of.insert(key, job_uid.clone());
    }

    fn remove(&mut self, key: &ObjectRef<Pod>) {
        let Some(job_uid) = self.job_of.remove(key) else {
            return;
        };
        if let Some(refs) = self.by_job.get_mut(&job_uid) {
            refs.remove(key);
            if refs.is_empty() {
                self.by_job.remove(&job_uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;

    fn pod(name: &str, job_uid: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.name = Some(name.into());
        pod.metadata.labels =
            job_uid.map(|uid| [(JOB_UID_LABEL.to_owned(), uid.to_owned())].into());
        pod
    }

    fn names(refs: Vec<ObjectRef<Pod>>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn pods_are_indexed_by_job_until_deleted_or_relisted_away() {
        let (store, mut writer) = reflector::store::<Pod>();
        let index = PodIndex::default();
        let mut apply = |event: Event<Pod>| {
            writer.apply_watcher_event(&event);
            index.follow(&event, &store);
        };
        apply(Event::Apply(pod("a", Some("u1"))));
        apply(Event::Apply(pod("b", Some("u1"))));
        apply(Event::Apply(pod("c", Some("u2"))));
        apply(Event::Apply(pod("plain", None)));
        assert_eq!(names(index.of_job("u1")), ["a", "b"]);
        assert_eq!(names(index.of_job("u2")), ["c"]);

        // A deletion names only the pod (a dropped Workflow's stub has no labels).
        apply(Event::Delete(pod("a", None)));
        assert_eq!(names(index.of_job("u1")), ["b"]);

        // The watch lists again; "b" was deleted meanwhile.
        apply(Event::Init);
        apply(Event::InitApply(pod("c", Some("u2"))));
        apply(Event::InitDone);
        assert!(index.of_job("u1").is_empty());
        assert_eq!(names(index.of_job("u2")), ["c"]);
        assert!(
            !index.0.lock().unwrap().by_job.contains_key("u1"),
            "no empty set is kept"
        );
    }
}
