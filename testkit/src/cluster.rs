//! The test cluster: a client for it, a throwaway namespace per test, its nodes, the chart's CRDs,
//! and the helm and kubectl that talk to it.

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Resource};

use crate::wait::TIMEOUT;

const NO_CLUSTER: &str = "KUBECONFIG is not set, and this is a cluster test: it needs the roiergasias test cluster. \
     Run the suite with `cargo xtask test` (it starts the cluster, runs every test, then removes it), \
     or start one yourself: `export KUBECONFIG=$(cargo xtask cluster up | tail -n1)`.";

/// The workspace root (testkit/ sits in it).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace")
}

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

/// Creates namespace `name` with `annotations` and `labels`, and waits for its default
/// ServiceAccount, which pods need before they can be created.
pub async fn create_namespace(
    client: &Client,
    name: &str,
    annotations: &[(&str, &str)],
    labels: &[(&str, &str)],
) -> anyhow::Result<()> {
    let pairs = |pairs: &[(&str, &str)]| -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string().into()))
            .collect()
    };
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": pairs(labels), "annotations": pairs(annotations) }
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    tokio::time::timeout(
        TIMEOUT,
        await_condition(sa, "default", conditions::is_created()),
    )
    .await
    .with_context(|| format!("no ServiceAccount default in {name} within {TIMEOUT:?}"))??;
    Ok(())
}

/// A namespace of its own for one test, deleted when dropped (also when the test panics).
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `prefix-xxxxxxxx`, its pods on kwok's fake nodes.
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
        let mut all_labels = vec![("roiergasias.io/test", "true")];
        all_labels.extend_from_slice(labels);
        create_namespace(client, &name, annotations, &all_labels)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
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
/// what `cargo xtask tools path` prints (it builds them once if they are missing).
pub fn tools_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("ROIERGASIAS_K8S_BIN").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["xtask", "tools", "path"])
            .current_dir(repo())
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run `cargo xtask tools path`");
        assert!(
            out.status.success(),
            "`cargo xtask tools path` failed: these tests need the helm and kubectl it builds \
             (or ROIERGASIAS_K8S_BIN=DIR holding them)"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        for tool in ["helm", "kubectl"] {
            assert!(
                dir.join(tool).is_file(),
                "{tool} is missing from {}",
                dir.display()
            );
        }
        dir
    })
    .clone()
}

/// Fails (never skips) unless both real nodes are Ready: tests that need real pods must run in CI.
pub async fn require_real_nodes(client: &Client) {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("type=real"))
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

/// Applies the Helm chart's CRDs (helm/roiergasias-operator/crds/*.yaml) and waits until each is
/// Established; returns the names applied. `manager` is the server-side apply field manager.
pub async fn apply_crds(client: &Client, manager: &str) -> anyhow::Result<Vec<String>> {
    let dir = repo().join("helm/roiergasias-operator/crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .with_context(|| format!("{} is not a CRD", file.display()))?;
        let name = crd
            .metadata
            .name
            .clone()
            .with_context(|| format!("{} has no metadata.name", file.display()))?;
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name} from {}", file.display()))?;
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(TIMEOUT, established)
            .await
            .with_context(|| format!("CRD {name} not Established within {TIMEOUT:?}"))??;
        names.push(name);
    }
    Ok(names)
}

/// [`apply_crds`] for tests: fails the test when a CRD cannot be applied.
pub async fn ensure_crds(client: &Client) -> Vec<String> {
    apply_crds(client, "roiergasias-tests")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}
