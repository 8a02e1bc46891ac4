//! The operator's metrics, registered once and shared (`Arc<Metrics>`) by the
//! reconciler and the HTTP server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The phases a Workflow reports; gauges for all of them are always present
/// (zero when empty) so dashboards never see a series vanish.
const PHASES: [&str; 4] = ["Pending", "Running", "Succeeded", "Failed"];

/// Seconds; the hand-off target is 250 ms, so resolution is finest below 1 s.
const HANDOFF_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const RECONCILE_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Hand-off starts older than this are dropped: their workflow was deleted
/// or failed, and the map must not grow without bound.
const HANDOFF_START_TTL: Duration = Duration::from_secs(3600);

/// Kinds of API writes the operator makes; counted to check the
/// "ConfigMap + Job + one status write per split" budget.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ApiWrite {
    ConfigMap,
    Job,
    Status,
    Event,
    /// Any other write (e.g. a finalizer patch on the Workflow).
    Other,
}

impl ApiWrite {
    pub const ALL: [ApiWrite; 5] = [
        ApiWrite::ConfigMap,
        ApiWrite::Job,
        ApiWrite::Status,
        ApiWrite::Event,
        ApiWrite::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiWrite::ConfigMap => "configmap",
            ApiWrite::Job => "job",
            ApiWrite::Status => "status",
            ApiWrite::Event => "event",
            ApiWrite::Other => "other",
        }
    }
}

impl EncodeLabelValue for ApiWrite {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: ApiWrite,
}

/// Identifies one hand-off: split `split` of a workflow (by UID, so a
/// re-created workflow of the same name is a different one) has completed.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct HandoffKey {
    pub workflow_uid: String,
    pub split: usize,
}

pub struct Metrics {
    registry: Registry,
    workflows: Family<PhaseLabels, Gauge>,
    reconciles: Counter,
    reconcile_errors: Family<KindLabels, Counter>,
    reconcile_duration: Histogram,
    handoff: Histogram,
    api_writes: Family<WriteLabels, Counter>,
    status_patch_bytes: Counter,
    handoff_starts: Mutex<HashMap<HandoffKey, Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roiergasias");
        let workflows = Family::<PhaseLabels, Gauge>::default();
        // Creating the series is the point: they are encoded (as 0) from the start.
        for phase in PHASES {
            let _ = workflows.get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            });
        }
        let reconciles = Counter::default();
        let reconcile_errors = Family::<KindLabels, Counter>::default();
        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        let handoff = Histogram::new(HANDOFF_BUCKETS);
        let api_writes = Family::<WriteLabels, Counter>::default();
        for kind in ApiWrite::ALL {
            let _ = api_writes.get_or_create(&WriteLabels { kind });
        }

        registry.register(
            "workflows",
            "Workflows known to the operator, by status.phase",
            workflows.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciliations of Workflows",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that ended in an error, by kind",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            reconcile_duration.clone(),
        );
        registry.register(
            "split_handoff_seconds",
            "Time from seeing Job n Complete to Job n+1 created",
            handoff.clone(),
        );
        registry.register(
            "api_writes",
            "Writes the operator made to the Kubernetes API, by kind",
            api_writes.clone(),
        );
        let status_patch_bytes = Counter::default();
        registry.register(
            "status_patch_bytes",
            "Bytes of the status patches the operator sent (divide by api_writes{kind=\"status\"})",
            status_patch_bytes.clone(),
        );

        Self {
            registry,
            workflows,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            handoff,
            api_writes,
            status_patch_bytes,
            handoff_starts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a reconciliation and, when the guard drops, records how long it took.
    pub fn reconcile_timer(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            histogram: &self.reconcile_duration,
            start: Instant::now(),
        }
    }

    /// `kind` is a short, bounded word (e.g. "kube", "invalid"), never a message:
    /// each distinct value becomes a time series.
    pub fn record_error(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Replaces the per-phase gauges with a count of `phases` (one entry per
    /// Workflow, e.g. from the reflector store). Workflows without a phase yet
    /// count as Pending.
    pub fn set_phase_counts<'a>(&self, phases: impl IntoIterator<Item = Option<&'a str>>) {
        let mut counts: HashMap<&str, i64> = PHASES.iter().map(|p| (*p, 0)).collect();
        for phase in phases {
            *counts.entry(phase.unwrap_or("Pending")).or_default() += 1;
        }
        for (phase, n) in counts {
            self.workflows
                .get_or_create(&PhaseLabels {
                    phase: phase.to_owned(),
                })
                .set(n);
        }
    }

    pub fn observe_handoff(&self, elapsed: Duration) {
        self.handoff.observe(elapsed.as_secs_f64());
    }

    /// Marks the moment the controller first saw Job n of a workflow Complete.
    /// Repeated calls keep the first instant (reconciles may repeat).
    pub fn handoff_started(&self, key: HandoffKey) {
        let now = Instant::now();
        let mut starts = self
            .handoff_starts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        starts.retain(|_, t| now.duration_since(*t) < HANDOFF_START_TTL);
        starts.entry(key).or_insert(now);
    }

    /// Job n+1 was created: records the hand-off if its start was seen by this
    /// process (after a restart it was not, and nothing is recorded).
    pub fn handoff_finished(&self, key: &HandoffKey) -> Option<Duration> {
        let start = self
            .handoff_starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)?;
        let elapsed = start.elapsed();
        self.observe_handoff(elapsed);
        Some(elapsed)
    }

    /// Forgets a pending hand-off (the workflow ended or was deleted).
    pub fn handoff_cancelled(&self, key: &HandoffKey) {
        self.handoff_starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    pub fn count_write(&self, kind: ApiWrite) {
        self.api_writes.get_or_create(&WriteLabels { kind }).inc();
    }

    /// A status write of `bytes` (the patch's body), beside [`Metrics::count_write`].
    pub fn count_status_patch(&self, bytes: usize) {
        self.status_patch_bytes.inc_by(bytes as u64);
    }

    /// The registry in OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records the reconcile duration when dropped, so early returns and `?` are timed too.
pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name` (with labels exactly as encoded).
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series == name).then(|| value.parse().expect("numeric sample"))
        })
    }

    #[test]
    fn encodes_openmetrics_with_all_families() {
        let text = Metrics::new().encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for family in [
            "roiergasias_workflows gauge",
            "roiergasias_reconciles counter",
            "roiergasias_reconcile_duration_seconds histogram",
            "roiergasias_split_handoff_seconds histogram",
            "roiergasias_api_writes counter",
            "roiergasias_status_patch_bytes counter",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family}")),
                "missing {family}:\n{text}"
            );
        }
        for phase in PHASES {
            let series = format!("roiergasias_workflows{{phase=\"{phase}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{text}");
        }
        for kind in ApiWrite::ALL {
            let series = format!("roiergasias_api_writes_total{{kind=\"{}\"}}", kind.as_str());
            assert_eq!(sample(&text, &series), Some(0.0), "{text}");
        }
        let metrics = Metrics::new();
        metrics.count_status_patch(300);
        metrics.count_status_patch(200);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "roiergasias_status_patch_bytes_total"),
            Some(500.0),
            "{text}"
        );
        // Error series appear with their first error (kinds are open-ended).
        assert!(!text.contains("roiergasias_reconcile_errors"), "{text}");
    }

    #[test]
    fn phase_counts_replace_previous_values() {
        let metrics = Metrics::new();
        metrics.set_phase_counts([Some("Running"), Some("Running"), None, Some("Failed")]);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "roiergasias_workflows{phase=\"Running\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_workflows{phase=\"Pending\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_workflows{phase=\"Failed\"}"),
            Some(1.0)
        );

        metrics.set_phase_counts([Some("Succeeded")]);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "roiergasias_workflows{phase=\"Running\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_workflows{phase=\"Pending\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_workflows{phase=\"Succeeded\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn reconcile_timer_counts_and_times_on_drop() {
        let metrics = Metrics::new();
        {
            let _timer = metrics.reconcile_timer();
            std::thread::sleep(Duration::from_millis(3));
        }
        drop(metrics.reconcile_timer());
        let text = metrics.encode();
        assert_eq!(sample(&text, "roiergasias_reconciles_total"), Some(2.0));
        assert_eq!(
            sample(&text, "roiergasias_reconcile_duration_seconds_count"),
            Some(2.0)
        );
        let sum = sample(&text, "roiergasias_reconcile_duration_seconds_sum").unwrap();
        assert!(sum >= 0.003, "sum {sum}");
        // The 3 ms reconcile is above the 2.5 ms bucket, the instant one below 1 ms.
        assert_eq!(
            sample(
                &text,
                "roiergasias_reconcile_duration_seconds_bucket{le=\"0.0025\"}"
            ),
            Some(1.0)
        );
    }

    #[test]
    fn errors_and_writes_are_labelled_by_kind() {
        let metrics = Metrics::new();
        metrics.record_error("kube");
        metrics.record_error("kube");
        metrics.record_error("invalid");
        for kind in [
            ApiWrite::ConfigMap,
            ApiWrite::Job,
            ApiWrite::Status,
            ApiWrite::Status,
        ] {
            metrics.count_write(kind);
        }
        metrics.count_write(ApiWrite::Event);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "roiergasias_reconcile_errors_total{kind=\"kube\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "roiergasias_reconcile_errors_total{kind=\"invalid\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_api_writes_total{kind=\"configmap\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_api_writes_total{kind=\"job\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_api_writes_total{kind=\"status\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "roiergasias_api_writes_total{kind=\"event\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn handoff_is_measured_from_first_start_to_finish() {
        let metrics = Metrics::new();
        let key = HandoffKey {
            workflow_uid: "uid-1".into(),
            split: 1,
        };
        metrics.handoff_started(key.clone());
        std::thread::sleep(Duration::from_millis(5));
        // A second sighting of the same completion must not restart the clock.
        metrics.handoff_started(key.clone());
        let elapsed = metrics.handoff_finished(&key).expect("started");
        assert!(elapsed >= Duration::from_millis(5), "{elapsed:?}");
        // Finishing twice (a repeated create) records nothing more.
        assert_eq!(metrics.handoff_finished(&key), None);
        // A finish without a start (after a restart) records nothing.
        let other = HandoffKey {
            workflow_uid: "uid-2".into(),
            split: 2,
        };
        assert_eq!(metrics.handoff_finished(&other), None);
        metrics.handoff_started(other.clone());
        metrics.handoff_cancelled(&other);
        assert_eq!(metrics.handoff_finished(&other), None);

        metrics.observe_handoff(Duration::from_millis(300));
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "roiergasias_split_handoff_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "roiergasias_split_handoff_seconds_bucket{le=\"0.25\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "roiergasias_split_handoff_seconds_bucket{le=\"0.5\"}"
            ),
            Some(2.0)
        );
    }
}
