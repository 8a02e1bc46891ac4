//! The operator bench's figures as JSON (`--json PATH`), for scripts and plots: one object per
//! driver measured in the run, and what the run ran on.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

/// One driver's figures; a figure the driver cannot give is `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Figures {
    pub workflows: usize,
    pub splits: usize,
    pub total_s: f64,
    pub splits_per_min: f64,
    pub handoff_p50_ms: Option<f64>,
    pub handoff_p99_ms: Option<f64>,
    pub writes_per_split: f64,
    pub status_bytes_per_write: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// On real nodes (`--real`): pod n's exit to pod n+1's start; `null` on kwok's nodes.
    pub pod_gap_p50_ms: Option<f64>,
    pub pod_gap_p99_ms: Option<f64>,
    /// The driver's CPU time (user + system) over the run, and its open sockets at the end.
    pub cpu_s: Option<f64>,
    pub sockets_at_end: Option<usize>,
    /// The operator's reconciles that ended in an error; `null` for the floor.
    pub reconcile_errors: Option<u64>,
}

impl Figures {
    /// `handoffs` sorted ascending; `writes` the driver's API writes (ConfigMaps, Jobs, Workflows).
    pub fn new(workflows: usize, splits: usize, total: Duration, handoffs: &[Duration]) -> Self {
        let total_s = total.as_secs_f64();
        let ms = |q| super::operator::percentile(handoffs, q).map(|d| millis(d, 1));
        Self {
            workflows,
            splits,
            total_s: round(total_s, 2),
            splits_per_min: if total_s > 0.0 {
                round(splits as f64 * 60.0 / total_s, 1)
            } else {
                0.0
            },
            handoff_p50_ms: ms(0.5),
            handoff_p99_ms: ms(0.99),
            writes_per_split: 0.0,
            status_bytes_per_write: None,
            peak_rss_mib: None,
            pod_gap_p50_ms: None,
            pod_gap_p99_ms: None,
            cpu_s: None,
            sockets_at_end: None,
            reconcile_errors: None,
        }
    }

    /// `gaps` sorted ascending.
    pub fn set_pod_gaps(&mut self, gaps: &[Duration]) {
        let ms = |q| super::operator::percentile(gaps, q).map(|d| millis(d, 1));
        self.pod_gap_p50_ms = ms(0.5);
        self.pod_gap_p99_ms = ms(0.99);
    }
}

/// The operator's figures over the floor's (a ratio is `null` when either figure is), and the
/// issue's two targets against the floor: splits per minute at least 0.9 × the floor's, hand-off
/// p99 at most 1.2 × the floor's + 50 ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Ratios {
    pub splits_per_min: Option<f64>,
    pub handoff_p50: Option<f64>,
    pub handoff_p99: Option<f64>,
    pub peak_rss: Option<f64>,
    pub writes_per_split: Option<f64>,
    pub splits_per_min_target_met: bool,
    pub handoff_p99_target_met: Option<bool>,
}

impl Ratios {
    pub fn of(ours: &Figures, floor: &Figures) -> Self {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(round(a / b, 2)),
            _ => None,
        };
        Self {
            splits_per_min: ratio(Some(ours.splits_per_min), Some(floor.splits_per_min)),
            handoff_p50: ratio(ours.handoff_p50_ms, floor.handoff_p50_ms),
            handoff_p99: ratio(ours.handoff_p99_ms, floor.handoff_p99_ms),
            peak_rss: ratio(ours.peak_rss_mib, floor.peak_rss_mib),
            writes_per_split: ratio(Some(ours.writes_per_split), Some(floor.writes_per_split)),
            splits_per_min_target_met: ours.splits_per_min >= 0.9 * floor.splits_per_min,
            handoff_p99_target_met: ours
                .handoff_p99_ms
                .zip(floor.handoff_p99_ms)
                .map(|(ours, floor)| ours <= 1.2 * floor + 50.0),
        }
    }
}

/// What the JSON file holds.
#[derive(Debug, Serialize)]
pub(crate) struct Run {
    pub operator: Figures,
    /// The floor's figures, measured in the same run on the same cluster (`null` with
    /// `--no-floor`).
    pub floor: Option<Figures>,
    pub ratios: Option<Ratios>,
    /// The CPUs of the machine, and its 1-minute load average at the start and at the end.
    pub cpus: usize,
    pub load_1m: [String; 2],
    /// The operator binary that ran.
    pub operator_binary: String,
}

impl Run {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// The operator beside the floor, as a Markdown table.
pub(crate) fn against_floor(ours: &Figures, floor: &Figures) -> String {
    let r = Ratios::of(ours, floor);
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v} {unit}"));
    let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}×"));
    let rows = [
        (
            "Total time",
            format!("{} s", ours.total_s),
            format!("{} s", floor.total_s),
            x(ratio(ours.total_s, floor.total_s)),
        ),
        (
            "Splits per minute (target ≥ 0.9× the floor's)",
            ours.splits_per_min.to_string(),
            floor.splits_per_min.to_string(),
            format!(
                "{}{}",
                x(r.splits_per_min),
                met(Some(r.splits_per_min_target_met))
            ),
        ),
        (
            "Hand-off p50",
            opt(ours.handoff_p50_ms, "ms"),
            opt(floor.handoff_p50_ms, "ms"),
            x(r.handoff_p50),
        ),
        (
            "Hand-off p99 (target ≤ 1.2× the floor's + 50 ms)",
            opt(ours.handoff_p99_ms, "ms"),
            opt(floor.handoff_p99_ms, "ms"),
            format!("{}{}", x(r.handoff_p99), met(r.handoff_p99_target_met)),
        ),
        (
            "API writes per split (without Events)",
            ours.writes_per_split.to_string(),
            floor.writes_per_split.to_string(),
            x(r.writes_per_split),
        ),
        (
            "Peak memory (VmHWM)",
            opt(ours.peak_rss_mib, "MiB"),
            opt(floor.peak_rss_mib, "MiB"),
            x(r.peak_rss),
        ),
        (
            "CPU time of the driver",
            opt(ours.cpu_s, "s"),
            opt(floor.cpu_s, "s"),
            x(ratio_of(ours.cpu_s, floor.cpu_s)),
        ),
        (
            "Pod n exit → pod n+1 start p50 (real nodes)",
            opt(ours.pod_gap_p50_ms, "ms"),
            opt(floor.pod_gap_p50_ms, "ms"),
            x(ratio_of(ours.pod_gap_p50_ms, floor.pod_gap_p50_ms)),
        ),
        (
            "Pod n exit → pod n+1 start p99 (real nodes)",
            opt(ours.pod_gap_p99_ms, "ms"),
            opt(floor.pod_gap_p99_ms, "ms"),
            x(ratio_of(ours.pod_gap_p99_ms, floor.pod_gap_p99_ms)),
        ),
    ];
    let mut out =
        String::from("| Measurement | Operator | Floor | Operator / floor |\n|---|---|---|---|\n");
    for (what, a, b, c) in rows {
        if a == "-" && b == "-" {
            continue;
        }
        out += &format!("| {what} | {a} | {b} | {c} |\n");
    }
    out
}

fn ratio_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    ratio(a?, b?)
}

/// `a / b`; `None` when `b` is not positive.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| round(a / b, 2))
}

fn met(target: Option<bool>) -> &'static str {
    match target {
        Some(true) => " (met)",
        Some(false) => " (missed)",
        None => "",
    }
}

/// Fails now, not after a long run, when `path` cannot be written.
pub(crate) fn check_writable(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .with_context(|| format!("--json {}: cannot write there", path.display()))
}

fn millis(d: Duration, places: i32) -> f64 {
    round(d.as_secs_f64() * 1000.0, places)
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_run_and_name_the_issue_s_fields() {
        let handoffs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let mut f = Figures::new(200, 600, Duration::from_secs(30), &handoffs);
        f.writes_per_split = 3.33;
        assert_eq!(f.splits_per_min, 1200.0);
        assert_eq!(
            (f.handoff_p50_ms, f.handoff_p99_ms),
            (Some(50.0), Some(99.0))
        );
        let json = serde_json::to_value(&f).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "cpu_s",
                "handoff_p50_ms",
                "handoff_p99_ms",
                "peak_rss_mib",
                "pod_gap_p50_ms",
                "pod_gap_p99_ms",
                "reconcile_errors",
                "sockets_at_end",
                "splits",
                "splits_per_min",
                "status_bytes_per_write",
                "total_s",
                "workflows",
                "writes_per_split"
            ]
        );
        assert_eq!(json["peak_rss_mib"], serde_json::Value::Null);
    }

    #[test]
    fn no_handoffs_and_no_time_give_nulls_and_zero() {
        let f = Figures::new(1, 1, Duration::ZERO, &[]);
        assert_eq!(f.splits_per_min, 0.0);
        assert_eq!(f.handoff_p50_ms, None);
    }

    #[test]
    fn an_unwritable_path_is_refused_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/out.json");
        let err = check_writable(&missing).unwrap_err().to_string();
        assert!(err.contains("--json") && err.contains("out.json"), "{err}");
        let ok = dir.path().join("out.json");
        check_writable(&ok).unwrap();
        let run = Run {
            operator: Figures::new(2, 6, Duration::from_secs(6), &[]),
            floor: Some(Figures::new(2, 6, Duration::from_secs(3), &[])),
            ratios: Some(Ratios::of(
                &Figures::new(2, 6, Duration::from_secs(6), &[]),
                &Figures::new(2, 6, Duration::from_secs(3), &[]),
            )),
            cpus: 2,
            load_1m: ["1.0".into(), "2.0".into()],
            operator_binary: "op".into(),
        };
        run.write(&ok).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&ok).unwrap()).unwrap();
        assert_eq!(back["operator"]["splits_per_min"], 60.0);
        assert_eq!(back["load_1m"][1], "2.0");
        assert_eq!(back["floor"]["splits_per_min"], 120.0);
        assert_eq!(back["ratios"]["splits_per_min"], 0.5);
        assert_eq!(back["ratios"]["splits_per_min_target_met"], false);
    }

    #[test]
    fn ratios_and_targets_follow_the_issue_s_rules() {
        let handoffs = |p99: u64| -> Vec<Duration> {
            // The 99th of 100 (nearest rank) is the first of the last two.
            let mut v: Vec<Duration> = (0..98).map(|_| Duration::from_millis(10)).collect();
            v.extend([Duration::from_millis(p99); 2]);
            v
        };
        let floor = Figures::new(100, 300, Duration::from_secs(60), &handoffs(100));
        // 0.9x the floor's rate and 1.2x + 50 ms exactly: both met.
        let ours = Figures::new(
            100,
            300,
            Duration::from_secs_f64(60.0 / 0.9),
            &handoffs(170),
        );
        let r = Ratios::of(&ours, &floor);
        assert!(r.splits_per_min_target_met, "{r:?}");
        assert_eq!(r.handoff_p99_target_met, Some(true));
        assert_eq!(r.handoff_p99, Some(1.7));
        let slow = Figures::new(100, 300, Duration::from_secs(70), &handoffs(171));
        let r = Ratios::of(&slow, &floor);
        assert!(!r.splits_per_min_target_met);
        assert_eq!(r.handoff_p99_target_met, Some(false));
        let table = against_floor(&slow, &floor);
        assert!(
            table.contains("(missed)") && table.contains("| Floor |"),
            "{table}"
        );
        let none = Figures::new(1, 3, Duration::from_secs(1), &[]);
        assert_eq!(Ratios::of(&none, &floor).handoff_p99_target_met, None);
    }
}
