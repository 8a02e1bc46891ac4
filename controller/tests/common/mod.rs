//! Shared helpers for cluster tests (tests/*.rs): a client for the test cluster, a throwaway namespace per
//! test, the Workflow CRD, and waits with timeouts. Run cluster tests with `cargo xtask test`.

// Each test file compiles its own copy and uses only some helpers.
#![allow(dead_code)]

use std::fmt::Debug;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// How long a wait lasts before the test fails; kwok moves pods at once, so this is generous.
pub const TIMEOUT: Duration = Duration::from_secs(60);

const NO_CLUSTER: &str = "KUBECONFIG is not set, and this is a cluster test: it needs the roiergasias test cluster. \
     Run the suite with `cargo xtask test` (it starts the cluster, runs every test, then removes it), \
     or start one yourself: `export KUBECONFIG=$(cargo xtask cluster up | tail -n1)`.";

/// A client for the test cluster named by KUBECONFIG; fails the test (never skips it) when there is none.
pub async fn client() -> Client {
    let path = std::env::var_os("KUBECONFIG")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| panic!("{NO_CLUSTER}"));
    let client = Client::try_default().await.unwrap_or_else(|e| {
        panic!(
            "cannot build a client from KUBECONFIG={}: {e}",
            PathBuf::from(&path).display()
        )
    });
    if let Err(e) = client.apiserver_version().await {
        panic!(
            "the cluster in KUBECONFIG={} does not answer ({e}); is it up? `cargo xtask cluster status` says",
            PathBuf::from(&path).display()
        );
    }
    client
}

/// A unique name: `prefix-` then 8 hex digits (distinct across tests, test binaries and runs).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = RandomState::new().hash_one((std::process::id(), n, std::time::SystemTime::now()));
    format!("{prefix}-{:08x}", salt as u32)
}

/// A namespace of its own for one test, deleted when dropped (also when the test panics).
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

/// Pins a namespace's pods to kwok's fake nodes: they tolerate the fake nodes' taint (set while real
/// nodes run) and select `type=kwok` (the API server's PodNodeSelector and PodTolerationRestriction
/// admission plugins add both to every pod created in it).
pub const ON_FAKE_NODES: &[(&str, &str)] = &[
    ("scheduler.alpha.kubernetes.io/node-selector", "type=kwok"),
    (
        "scheduler.alpha.kubernetes.io/defaultTolerations",
        r#"[{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]"#,
    ),
];

/// Pins a namespace's pods to the real kubelet nodes.
pub const ON_REAL_NODES: &[(&str, &str)] =
    &[("scheduler.alpha.kubernetes.io/node-selector", "type=real")];

impl TestNamespace {
    /// Creates `prefix-xxxxxxxx`, its pods on kwok's fake nodes, and waits for its default
    /// ServiceAccount, which pods need before they can be created.
    pub async fn create(client: &Client, prefix: &str) -> Self {
        Self::create_with(client, prefix, ON_FAKE_NODES, &[]).await
    }

    /// A namespace whose pods really run, on the real nodes (`cargo xtask cluster up` starts them).
    pub async fn on_real_nodes(client: &Client, prefix: &str) -> Self {
        require_real_nodes(client).await;
        Self::create_with(client, prefix, ON_REAL_NODES, &[]).await
    }

    /// With extra labels, e.g. `pod-security.kubernetes.io/enforce: restricted`.
    pub async fn create_with(
        client: &Client,
        prefix: &str,
        annotations: &[(&str, &str)],
        labels: &[(&str, &str)],
    ) -> Self {
        let name = unique_name(prefix);
        let mut label_map = serde_json::Map::new();
        label_map.insert("roiergasias.io/test".into(), "true".into());
        for (k, v) in labels {
            label_map.insert(k.to_string(), v.to_string().into());
        }
        let annotation_map: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string().into()))
            .collect();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": label_map, "annotations": annotation_map }
        }))
        .expect("a namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_for(
            &sa,
            "default",
            &format!("ServiceAccount default in {name}"),
            conditions::is_created(),
        )
        .await;
        Self {
            name,
            client: client.clone(),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // The test's runtime may be gone (or going, after a panic): delete from a fresh one on its own thread.
        let name = std::mem::take(&mut self.name);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = Client::try_default().await.ok()?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The directory holding helm and kubectl: `ROIERGASIAS_K8S_BIN` (`cargo xtask test` sets it), else
/// what `cargo xtask tools path --no-build` prints.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROIERGASIAS_K8S_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["xtask", "tools", "path", "--no-build"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("running `cargo xtask tools path`");
    assert!(
        out.status.success(),
        "these tests need the helm and kubectl that `cargo xtask tools` builds: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// Fails (never skips) unless both real nodes are Ready: tests that need real pods must run in CI.
pub async fn require_real_nodes(client: &Client) {
    use k8s_openapi::api::core::v1::Node;
    let nodes = Api::<Node>::all(client.clone())
        .list(&kube::api::ListParams::default().labels("type=real"))
        .await
        .expect("listing nodes");
    let ready = nodes
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    assert!(
        ready >= 2,
        "this test runs real pods and needs the test cluster's two real nodes, but {ready} is Ready. \
         `cargo xtask cluster up` starts them where the host allows (root, cgroups, runc, CNI plugins); \
         it says what is missing when it cannot"
    );
}

/// Waits until `cond` holds for the object `name`, failing the test after [`TIMEOUT`] with `what` and the last state seen.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> K
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    wait_for_within(api, name, what, TIMEOUT, cond).await
}

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

/// The Helm chart's CRDs (helm/roiergasias-operator/crds/*.yaml), applied and Established when the folder exists.
/// Returns the names applied (empty when the chart has no CRDs yet).
pub async fn ensure_crds(client: &Client) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm/roiergasias-operator/crds");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a CRD: {e}", file.display()));
        let name = crd
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| panic!("{} has no metadata.name", file.display()));
        api.patch(
            &name,
            &PatchParams::apply("roiergasias-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name} from {}: {e}", file.display()));
        wait_for(
            &api,
            &name,
            &format!("CRD {name} to be Established"),
            conditions::is_crd_established(),
        )
        .await;
        names.push(name);
    }
    names
}
