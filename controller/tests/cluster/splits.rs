//! The operator on the real control plane (kwok as kubelet): workflows reach Succeeded, splits run
//! one after another on their labelled nodes, and ConfigMaps hold what `roiergasias split`
//! prints plus the outputs earlier pods reported.

use std::time::Duration;

use crate::OPERATOR;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use roiergasias_crd::{MachineState, Phase, Workflow};
use roiergasias_engine::EnvVar;
use roiergasias_testkit::Operator;
use roiergasias_testkit::wait::watch_from_now;
use roiergasias_testkit::workflow::*;
use serde_json::json;

const DONE: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn a_minimal_single_node_workflow_succeeds_with_the_original_names() {
    let (client, ns) = setup("op-single").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    api.create(
        &PostParams::default(),
        &workflow("roiergasias-demo", SINGLE, None),
    )
    .await
    .expect("creating the Workflow");

    let done = wait_phase(&api, "roiergasias-demo", Phase::Succeeded, DONE).await;
    let status = done.status.unwrap();
    assert_eq!(status.state, Some(MachineState::Done));
    assert_eq!(status.progress.as_deref(), Some("1/1"));
    assert_eq!(status.successful_jobs.len(), 1);
    assert!(status.start_time.is_some() && status.completion_time.is_some());

    let (cms, jobs) = owned_names(&client, &ns.name, "roiergasias-demo").await;
    assert_eq!(cms, ["roiergasias-demo-hello-world"]);
    assert_eq!(jobs, ["roiergasias-demo"]);
    assert_eq!(
        config_map_text(&client, &ns.name, "roiergasias-demo-hello-world").await,
        expected_split(SINGLE, 1, &[])
    );
    // The default runner container ran the mounted file, on any node.
    let job = ns.api::<Job>().get("roiergasias-demo").await.unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.invalid/roiergasias/runner:test")
    );
    assert_eq!(pod.node_selector, None);
    let events = wait_events(
        &client,
        &ns.name,
        "roiergasias-demo",
        &["Started", "JobCreated", "Succeeded"],
    )
    .await;
    assert!(events.iter().all(|(r, _)| r != "JobFailed"), "{events:#?}");
}

#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn three_splits_run_in_order_on_their_nodes_carrying_outputs() {
    let (client, ns) = setup("op-three").await;
    let name = "ml";
    // Watch Jobs from before the Workflow exists: the watch delivers changes in the order the
    // API server made them, so "Job n+1 created after Job n Complete" is checked exactly.
    let (watch, mut rx) =
        watch_from_now(ns.api::<Job>(), |job| (job.name_any(), job_complete(&job))).await;
    // And the Workflow: every version the API server stores, to count the status writes.
    let (wf_watch, mut wf_rx) = watch_from_now(ns.api::<Workflow>(), |wf| {
        let status = wf.status.clone().unwrap_or_default();
        (
            wf.resource_version().unwrap_or_default(),
            status.state,
            status.current_split,
        )
    })
    .await;

    let _operator = Operator::start(OPERATOR, &ns.name);
    let api: Api<Workflow> = ns.api();
    let outputs = json!({"kwok.roiergasias.io/termination-message": "{\"MODEL\":\"s3://bucket/model.pkl\",\"FIRST\":\"1\"}"});
    api.create(
        &PostParams::default(),
        &workflow(name, THREE, Some(pod_annotations(outputs))),
    )
    .await
    .expect("creating the Workflow");
    let done = wait_phase(&api, name, Phase::Succeeded, DONE).await;
    watch.abort();
    // One status write per split (it records the split's Job, and the previous split's success
    // and outputs) and one for Done: the created Workflow, then exactly these versions. The watch
    // delivers them in order; read until it has delivered the Done one, then whatever followed.
    let done_version = done.resource_version().unwrap_or_default();
    let mut versions: Vec<(String, Option<MachineState>, Option<u32>)> = Vec::new();
    let mut keep = |version: (String, Option<MachineState>, Option<u32>)| {
        let is_done = version.0 == done_version;
        if !versions.iter().any(|(rv, ..)| *rv == version.0) {
            versions.push(version);
        }
        is_done
    };
    let delivered = tokio::time::timeout(DONE, async {
        while let Some(version) = wf_rx.recv().await {
            if keep(version) {
                return;
            }
        }
    })
    .await;
    assert!(
        delivered.is_ok(),
        "the watch never delivered version {done_version} (Done)"
    );
    while let Ok(version) = wf_rx.try_recv() {
        keep(version);
    }
    wf_watch.abort();
    let states: Vec<_> = versions.iter().map(|(_, s, n)| (*s, *n)).collect();
    assert_eq!(
        states,
        [
            (None, None),
            (Some(MachineState::WaitingJob), Some(1)),
            (Some(MachineState::WaitingJob), Some(2)),
            (Some(MachineState::WaitingJob), Some(3)),
            (Some(MachineState::Done), Some(3)),
        ],
        "status writes"
    );

    let status = done.status.unwrap();
    assert_eq!(status.progress.as_deref(), Some("3/3"));
    assert_eq!(status.nodes, ["node1", "node2", "node2"]);
    assert_eq!(status.successful_jobs.len(), 3);
    assert!(status.active_jobs.is_empty() && status.failed_jobs.is_empty());

    let (cms, jobs) = owned_names(&client, &ns.name, name).await;
    assert_eq!(
        cms,
        [
            "ml-hello-world-1-node1",
            "ml-hello-world-2-node2",
            "ml-hello-world-3-node2"
        ]
    );
    assert_eq!(jobs, ["ml-1-node1", "ml-2-node2", "ml-3-node2"]);

    // ConfigMap n = `roiergasias split` output for n + outputs reported by earlier pods.
    let carried = [
        EnvVar::new("MODEL", "s3://bucket/model.pkl"),
        EnvVar::new("FIRST", "1"),
    ];
    let reported = |n: usize| if n == 1 { &carried[..0] } else { &carried[..] };
    for (n, cm) in cms.iter().enumerate() {
        let text = config_map_text(&client, &ns.name, cm).await;
        // The engine reports outputs in its own (name) order; compare as the operator carries them.
        let mut expected_vars: Vec<EnvVar> = reported(n + 1).to_vec();
        expected_vars.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            text,
            expected_split(THREE, n + 1, &expected_vars),
            "ConfigMap {cm}"
        );
    }

    // Each pod ran on the node labelled for its split.
    let node1 = node_labelled(&client, "node1").await;
    let node2 = node_labelled(&client, "node2").await;
    for (job, node) in [
        ("ml-1-node1", &node1),
        ("ml-2-node2", &node2),
        ("ml-3-node2", &node2),
    ] {
        assert_eq!(
            pod_nodes(&client, &ns.name, job).await,
            std::slice::from_ref(node),
            "pods of {job}"
        );
    }

    // Job n+1 appeared only after Job n was Complete.
    let mut seen = Vec::new();
    while let Ok(event) = rx.try_recv() {
        seen.push(event);
    }
    let first = |pred: &dyn Fn(&(String, bool)) -> bool| seen.iter().position(pred);
    for (earlier, later) in [("ml-1-node1", "ml-2-node2"), ("ml-2-node2", "ml-3-node2")] {
        let complete = first(&|(n, c)| n == earlier && *c)
            .unwrap_or_else(|| panic!("{earlier} never seen Complete: {seen:?}"));
        let created =
            first(&|(n, _)| n == later).unwrap_or_else(|| panic!("{later} never seen: {seen:?}"));
        assert!(
            complete < created,
            "{later} appeared before {earlier} completed: {seen:?}"
        );
    }

    let events = wait_events(
        &client,
        &ns.name,
        name,
        &["Started", "JobCreated", "SplitSucceeded", "Succeeded"],
    )
    .await;
    let created = events.iter().filter(|(r, _)| r == "JobCreated").count();
    assert_eq!(created, 3, "one JobCreated Event per split: {events:#?}");
}

/// The manifest of the original operator's README, with its own container, command and mount.
#[tokio::test]
#[ignore = "needs a cluster: cargo xtask test"]
async fn an_original_format_manifest_runs_unchanged() {
    let (client, ns) = setup("op-original").await;
    let _operator = Operator::start(OPERATOR, &ns.name);
    let manifest = format!(
        r#"
apiVersion: batch.ankursoni.github.io/v1
kind: Workflow
metadata:
  name: roiergasias-demo
spec:
  workflowYAML:
    name: hello-world
    yaml: |
{}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: roiergasias
              image: docker.io/ankursoni/roiergasias-operator:workflow
              command: ["/root/roiergasias", "run", "--file=/root/hello-world/hello-world.yaml"]
              volumeMounts:
                - name: yaml
                  mountPath: /root/hello-world
"#,
        THREE
            .lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let wf: Workflow = serde_saphyr::from_str(&manifest).expect("the original manifest parses");
    let api: Api<Workflow> = ns.api();
    api.create(&PostParams::default(), &wf)
        .await
        .expect("creating the Workflow");
    wait_phase(&api, "roiergasias-demo", Phase::Succeeded, DONE).await;

    let (cms, jobs) = owned_names(&client, &ns.name, "roiergasias-demo").await;
    assert_eq!(jobs.len(), 3);
    assert_eq!(cms.len(), 3);
    for (n, job) in jobs.iter().enumerate() {
        let job = ns.api::<Job>().get(job).await.unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("docker.io/ankursoni/roiergasias-operator:workflow")
        );
        assert_eq!(
            c.command.clone().unwrap(),
            [
                "/root/roiergasias",
                "run",
                "--file=/root/hello-world/hello-world.yaml"
            ]
        );
        let yaml = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "yaml")
            .unwrap();
        assert_eq!(yaml.config_map.unwrap().name, cms[n]);
    }
}
