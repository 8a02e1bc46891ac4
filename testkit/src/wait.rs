//! Waits on conditions: kube's `await_condition` for one object, one small poller for everything
//! else (Events, logs, files, HTTP answers, listings), and a watch that records every change.

use std::fmt::{Debug, Display};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::wait::{Condition, await_condition};
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// How long a wait lasts before the test fails; kwok moves pods at once, so this is generous.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How often [`until`] looks again.
const POLL: Duration = Duration::from_millis(100);

/// A poll that never saw its condition: what was awaited, for how long, and the last state seen.
#[derive(Debug)]
pub struct Timeout {
    pub what: String,
    pub within: Duration,
    pub last: String,
}

impl Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}; last seen: {}",
            self.within, self.what, self.last
        )
    }
}

impl std::error::Error for Timeout {}

/// Calls `check` until it returns `Ok`, at most `within`; `Err` carries the state seen, for the
/// report. A check that must fail at once (say, the process it waits on exited) panics instead.
pub async fn try_until<T, E, F, Fut>(
    what: &str,
    within: Duration,
    mut check: F,
) -> Result<T, Timeout>
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(last) if tokio::time::Instant::now() >= deadline => {
                return Err(Timeout {
                    what: what.to_owned(),
                    within,
                    last: format!("{last:#?}"),
                });
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// [`try_until`] for tests: fails the test on timeout.
pub async fn until<T, E, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    try_until(what, within, check)
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}"))
}

/// Waits until `cond` holds for the object `name`, failing the test after [`TIMEOUT`] with `what`
/// and the last state seen.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> K
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    wait_for_within(api, name, what, TIMEOUT, cond).await
}

/// [`wait_for`] with its own time bound.
pub async fn wait_for_within<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> K
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("waiting for {what}: {name} does not exist"),
        Ok(Err(e)) => panic!("waiting for {what}: {e}"),
        Err(_) => {
            let last = api.get_opt(name).await;
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:#?}")
        }
    }
}

/// Waits until `name` is gone (deleted, or never there).
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, what: &str)
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    let gone = |obj: Option<&K>| obj.is_none();
    match tokio::time::timeout(TIMEOUT, await_condition(api.clone(), name, gone)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("waiting for {what} to be deleted: {e}"),
        Err(_) => panic!(
            "timed out after {TIMEOUT:?} waiting for {what} to be deleted; still there: {:#?}",
            api.get_opt(name).await
        ),
    }
}

/// Watches `api`, sending `seen(object)` for every version the watch delivers. Returns once the
/// watch is established, so nothing that happens afterwards is missed.
pub async fn watch_from_now<K, T>(
    api: Api<K>,
    seen: impl Fn(K) -> T + Send + 'static,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<T>,
)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready, watching) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready);
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                    let _ = tx.send(seen(obj));
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                _ => {}
            }
        }
    });
    watching.await.expect("the watch started");
    (task, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn until_returns_the_first_ok_and_reports_the_last_state_on_timeout() {
        let mut n = 0;
        let got = until("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let now = n;
            async move { if now >= 3 { Ok(now) } else { Err(now) } }
        })
        .await;
        assert_eq!(got, 3);

        let timeout = try_until("never", Duration::from_millis(250), || async {
            Err::<(), _>("still waiting")
        })
        .await
        .unwrap_err();
        assert_eq!(timeout.what, "never");
        assert!(
            timeout
                .to_string()
                .contains("waiting for never; last seen: \"still waiting\""),
            "{timeout}"
        );
    }
}
