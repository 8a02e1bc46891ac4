//! The leader's own record of its Lease renewals, so it can stop reconciling before its Lease may
//! run out. kube-lease-manager reports only changes of leadership, and a renewal that hangs (an
//! API server that does not answer, a cut network) would hang as long as the client's read timeout
//! (kube's is 295 s) while the controller goes on and a standby takes over: two leaders. So the
//! Lease is reached through a client of its own whose every request is given up after a bound, and
//! which stamps each Lease write the API server accepted with the instant it was sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;

use super::LeaderConfig;

/// When this replica last wrote its Lease and the API server accepted it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Renewals(Arc<Mutex<Option<Instant>>>);

impl Renewals {
    pub(crate) fn last(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, sent: Instant) {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some(last.map_or(sent, |l| l.max(sent)));
    }

    pub(crate) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The election's timings, derived from the Lease duration and grace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timings {
    /// How long after its last accepted renewal the leader still reconciles: the Lease duration
    /// less the grace, so it has stopped `grace` seconds (the clock skew tolerated) before the
    /// Lease may expire and a standby take over.
    pub(crate) renew_deadline: Duration,
    /// The grace given to kube-lease-manager, which renews that long before expiry: it renews
    /// halfway through the renew deadline, leaving the other half for the renewal to be answered.
    pub(crate) library_grace: u64,
    /// The bound on each request about the Lease, so a hung one fails and is retried.
    pub(crate) request_timeout: Duration,
}

impl Timings {
    /// For a validated `config` (duration at least grace + 2).
    pub(crate) fn of(config: &LeaderConfig) -> Self {
        let deadline = config.lease_duration_secs - config.grace_secs;
        let interval = (deadline / 2).max(1);
        Self {
            renew_deadline: Duration::from_secs(deadline),
            library_grace: config.lease_duration_secs - interval,
            request_timeout: Duration::from_secs(deadline),
        }
    }
}

/// `client`, for the Lease alone: each request is given up after `timeout`, and each write the
/// API server accepted (a 2xx answer to a PATCH) is recorded in `renewals` with the instant it
/// was sent, which is no earlier than the renewTime it wrote.
pub(crate) fn lease_client(client: Client, timeout: Duration, renewals: Renewals) -> Client {
    let namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |request: Request<Body>| {
        let (client, renewals) = (client.clone(), renewals.clone());
        async move { send(&client, request, timeout, &renewals).await }
    });
    Client::new(service, namespace)
}

async fn send(
    client: &Client,
    request: Request<Body>,
    timeout: Duration,
    renewals: &Renewals,
) -> Result<Response<Body>, kube::Error> {
    let write = request.method() == Method::PATCH;
    let sent = Instant::now();
    let response = tokio::time::timeout(timeout, client.send(request))
        .await
        .map_err(|_| {
            kube::Error::Service(format!("no answer about the Lease within {timeout:?}").into())
        })??;
    if write && response.status().is_success() {
        renewals.record(sent);
    }
    Ok(response)
}

/// A fake API server holding one Lease, for the election's unit tests: it answers kube-lease-
/// manager's GET, POST and PATCH (a JSON merge of the patch's spec), or hangs every request
/// while `hung`.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use serde_json::{Value, json};

    #[derive(Default)]
    pub(crate) struct FakeLease {
        pub(crate) lease: Mutex<Option<Value>>,
        pub(crate) hung: AtomicBool,
        pub(crate) patches: AtomicUsize,
    }

    impl FakeLease {
        pub(crate) fn holder(&self) -> Option<String> {
            let lease = self.lease.lock().unwrap();
            let holder = lease.as_ref()?.pointer("/spec/holderIdentity")?;
            holder.as_str().map(str::to_owned)
        }

        pub(crate) fn client(self: &Arc<Self>) -> Client {
            let fake = self.clone();
            let service = tower::service_fn(move |request: Request<Body>| {
                let fake = fake.clone();
                async move {
                    if fake.hung.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, std::convert::Infallible>(fake.answer(request).await)
                }
            });
            Client::new(service, "ns")
        }

        async fn answer(&self, request: Request<Body>) -> Response<Body> {
            let method = request.method().clone();
            let body = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut lease = self.lease.lock().unwrap();
            let (code, answer) = match (method, lease.as_mut()) {
                (Method::GET, None) | (Method::PATCH, None) => (404, not_found()),
                (Method::GET, Some(lease)) => (200, lease.clone()),
                (Method::POST, _) => {
                    let mut created = patch;
                    created["metadata"]["resourceVersion"] = json!("1");
                    *lease = Some(created.clone());
                    (201, created)
                }
                (Method::PATCH, Some(lease)) => {
                    self.patches.fetch_add(1, Ordering::SeqCst);
                    merge(&mut lease["spec"], &patch["spec"]);
                    (200, lease.clone())
                }
                (other, _) => panic!("unexpected {other} on the Lease"),
            };
            Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap()
        }
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": "not found", "reason": "NotFound", "code": 404})
    }

    fn merge(into: &mut Value, patch: &Value) {
        let Some(fields) = patch.as_object() else {
            return;
        };
        if !into.is_object() {
            *into = json!({});
        }
        for (key, value) in fields {
            match value {
                Value::Null => drop(into.as_object_mut().unwrap().remove(key)),
                other => drop(
                    into.as_object_mut()
                        .unwrap()
                        .insert(key.clone(), other.clone()),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeLease;
    use super::*;
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, Patch, PatchParams};

    #[test]
    fn renewals_come_halfway_through_the_renew_deadline() {
        let mut config = LeaderConfig::new("lease", "ns");
        let defaults = Timings::of(&config);
        assert_eq!(defaults.renew_deadline, Duration::from_secs(10));
        // Renewed 5 s after the last renewal, so 5 s are left for it to be answered.
        assert_eq!(defaults.library_grace, 10);
        assert_eq!(defaults.request_timeout, Duration::from_secs(10));
        (config.lease_duration_secs, config.grace_secs) = (4, 2);
        let short = Timings::of(&config);
        assert_eq!(
            (short.renew_deadline, short.library_grace),
            (Duration::from_secs(2), 3)
        );
    }

    #[tokio::test]
    async fn accepted_writes_are_stamped_and_reads_failures_and_hangs_are_not() {
        let fake = std::sync::Arc::new(FakeLease::default());
        let renewals = Renewals::default();
        let client = lease_client(fake.client(), Duration::from_millis(200), renewals.clone());
        let leases: Api<Lease> = Api::namespaced(client, "ns");
        let patch = Patch::Merge(serde_json::json!({"spec": {"holderIdentity": "a"}}));
        let params = PatchParams::default();
        leases
            .patch("lease", &params, &patch)
            .await
            .expect_err("404: no Lease yet");
        assert_eq!(renewals.last(), None, "a refused write is no renewal");
        *fake.lease.lock().unwrap() = Some(serde_json::json!({"metadata": {"name": "lease"}}));
        leases.get("lease").await.unwrap();
        assert_eq!(renewals.last(), None, "a read is no renewal");
        let before = Instant::now();
        leases.patch("lease", &params, &patch).await.unwrap();
        let stamped = renewals.last().expect("an accepted write is a renewal");
        assert!(stamped >= before && stamped <= Instant::now());
        fake.hung.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = leases.patch("lease", &params, &patch).await.unwrap_err();
        assert!(
            err.to_string().contains("no answer about the Lease"),
            "{err}"
        );
        assert_eq!(renewals.last(), Some(stamped), "a hung write is no renewal");
    }
}
