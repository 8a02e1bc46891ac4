//! Events about Workflows, published as kube's `Recorder` does (events.k8s.io/v1; a repeat of
//! the same reason and action about the same object within 6 minutes becomes one Event with a
//! series), but remembering far less. The Recorder keeps a full copy of every Event it sent
//! for 6 minutes and scans them all at each publish: at 200 workflows 4.4 MiB of the operator's
//! heap, and at 5000 some 35 000 copies. Here a sent Event is remembered by a hash of its key,
//! its name and its count (under 100 bytes), for at most 6 minutes and at most [`MAX_RECENT`]
//! Events: an older repeat is sent as a new Event instead of a series, which is harmless.
//!
//! At most [`SENDING`] Events are sent at once; the rest wait their turn. An Event is published
//! after the write it tells of, by a task of its own, so nothing waits for it; unbounded, a
//! burst of hand-offs opened one more HTTP/1.1 connection to the API server per Event in
//! flight (each some 25 KiB of TLS session and buffers, kept in the client's pool).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

/// How long a sent Event can still gain a repeat (kube's Recorder: 6 minutes).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// Sent Events remembered at most: about 1 MiB.
pub(crate) const MAX_RECENT: usize = 8192;
/// Events sent at once.
const SENDING: usize = 4;

pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
    sending: tokio::sync::Semaphore,
}

/// One Event sent, by the hash of its key.
struct Sent {
    name: String,
    count: i32,
    at: Instant,
}

#[derive(Default)]
struct Recent {
    hasher: RandomState,
    sent: HashMap<u64, Sent>,
    /// (when, key) in the order sent; a key sent again has a later entry, and its earlier one
    /// is skipped when it comes up.
    order: VecDeque<(Instant, u64)>,
}

/// What publishing an Event is to do: create it, or count a repeat of the Event `name`.
#[derive(Debug, PartialEq)]
enum Plan {
    Create,
    Repeat { name: String, count: i32 },
}

impl Recent {
    fn key(&self, event: &Event, regarding: &ObjectReference) -> u64 {
        let kind = match event.type_ {
            EventType::Normal => 0u8,
            EventType::Warning => 1,
        };
        let related = event.secondary.as_ref().map(reference_key);
        self.hasher.hash_one((
            kind,
            &event.action,
            &event.reason,
            reference_key(regarding),
            related,
        ))
    }

    fn expire(&mut self, now: Instant) {
        while self.sent.len() > MAX_RECENT
            || self
                .order
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) >= SERIES_WINDOW)
        {
            let Some((at, key)) = self.order.pop_front() else {
                break;
            };
            if self.sent.get(&key).is_some_and(|s| s.at == at) {
                self.sent.remove(&key);
            }
        }
    }

    /// What to send for `key` now.
    fn plan(&mut self, key: u64, now: Instant) -> Plan {
        self.expire(now);
        match self.sent.get(&key) {
            Some(sent) => Plan::Repeat {
                name: sent.name.clone(),
                count: sent.count + 1,
            },
            None => Plan::Create,
        }
    }

    /// `name` was sent for `key`, `count` times so far.
    fn record(&mut self, key: u64, name: String, count: i32, now: Instant) {
        self.sent.insert(
            key,
            Sent {
                name,
                count,
                at: now,
            },
        );
        self.order.push_back((now, key));
        self.expire(now);
    }
}

fn reference_key(r: &ObjectReference) -> impl Hash + '_ {
    (&r.kind, &r.namespace, &r.name, &r.uid, &r.api_version)
}

impl Events {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Events {
            client,
            reporter,
            recent: Mutex::default(),
            sending: tokio::sync::Semaphore::new(SENDING),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the Event, or counts a repeat of it in its series.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        // Never closed, so acquiring only waits.
        let _turn = self.sending.acquire().await;
        let now = Instant::now();
        let (key, send) = {
            let mut recent = self.recent();
            let key = recent.key(event, regarding);
            (key, recent.plan(key, now))
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let (name, count) = match send {
            Plan::Create => {
                let created = self.event(event, regarding);
                let name = created.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &created).await?;
                (name, 1)
            }
            Plan::Repeat { name, count } => {
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(Timestamp::now()),
                };
                let patch = json!({ "series": series });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                (name, count)
            }
        };
        self.recent().record(key, name, count, now);
        Ok(())
    }

    /// The Event as kube's Recorder makes it.
    fn event(&self, event: &Event, regarding: &ObjectReference) -> K8sEvent {
        let now = Timestamp::now();
        let controller = &self.reporter.controller;
        let name = regarding.name.as_ref().unwrap_or(controller);
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..Default::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            related: event.secondary.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn workflow(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Workflow".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    #[test]
    fn a_repeat_within_the_window_joins_the_series_whatever_its_note() {
        let mut recent = Recent::default();
        let t = Instant::now();
        let key = recent.key(&event("Started", "a"), &workflow("w"));
        assert_eq!(recent.plan(key, t), Plan::Create);
        recent.record(key, "w.1".into(), 1, t);
        assert_eq!(
            recent.key(&event("Started", "b"), &workflow("w")),
            key,
            "kube's key has no note"
        );
        let later = t + Duration::from_secs(60);
        assert_eq!(
            recent.plan(key, later),
            Plan::Repeat {
                name: "w.1".into(),
                count: 2
            }
        );
        recent.record(key, "w.1".into(), 2, later);
        assert_ne!(recent.key(&event("Done", "a"), &workflow("w")), key);
        assert_ne!(recent.key(&event("Started", "a"), &workflow("v")), key);
        // 6 minutes after the repeat, not after the first: the series goes on until then.
        assert!(matches!(
            recent.plan(key, later + SERIES_WINDOW - Duration::from_secs(1)),
            Plan::Repeat { count: 3, .. }
        ));
        assert_eq!(recent.plan(key, later + SERIES_WINDOW), Plan::Create);
        assert!(recent.sent.is_empty() && recent.order.is_empty());
    }

    #[test]
    fn at_most_max_recent_events_are_remembered() {
        let mut recent = Recent::default();
        let t = Instant::now();
        for i in 0..MAX_RECENT + 100 {
            let key = recent.key(&event("Started", ""), &workflow(&format!("w{i}")));
            recent.record(key, format!("w{i}.1"), 1, t);
        }
        assert_eq!(recent.sent.len(), MAX_RECENT);
        let oldest = recent.key(&event("Started", ""), &workflow("w0"));
        assert_eq!(recent.plan(oldest, t), Plan::Create, "the oldest made room");
        let newest = recent.key(
            &event("Started", ""),
            &workflow(&format!("w{}", MAX_RECENT + 99)),
        );
        assert!(matches!(recent.plan(newest, t), Plan::Repeat { .. }));
    }
}
