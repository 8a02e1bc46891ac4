//! `cargo xtask bench plot`: the operator bench's JSON files (one per batch size, each with the
//! operator's and the floor's figures) drawn as one PNG: hand-off latency and peak memory against
//! the number of workflows. Text is drawn with the DejaVu Sans font embedded from its crate, so
//! the plot needs no system fonts.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

const SIZE: (u32, u32) = (1200, 480);
const OURS: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const FLOOR: RGBColor = RGBColor(0x88, 0x88, 0x88);

#[derive(clap::Args)]
pub struct PlotArgs {
    /// The PNG to write.
    #[arg(long, value_name = "PATH", default_value = "docs/operator-bench.png")]
    out: PathBuf,
    /// JSON files written by `bench operator --json`.
    #[arg(required = true, value_name = "JSON")]
    runs: Vec<PathBuf>,
}

/// What the plot reads of one JSON file.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub workflows: f64,
    pub handoff_p50_ms: Option<f64>,
    pub handoff_p99_ms: Option<f64>,
    pub peak_rss_mib: Option<f64>,
}

#[derive(Deserialize)]
struct RunFile {
    operator: Point,
    floor: Option<Point>,
}

pub fn run(args: &PlotArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for path in &args.runs {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let run: RunFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a `bench operator --json` file", path.display()))?;
        runs.push((run.operator, run.floor));
    }
    runs.sort_by(|a, b| a.0.workflows.total_cmp(&b.0.workflows));
    draw(&runs, &args.out)?;
    println!("Plot written to {}", args.out.display());
    Ok(())
}

/// The series of one figure, ours and the floor's, as (workflows, value) points.
fn series(runs: &[Run], figure: fn(&Point) -> Option<f64>) -> [Vec<(f64, f64)>; 2] {
    let of = |p: &Point| figure(p).map(|v| (p.workflows, v));
    [
        runs.iter().filter_map(|(ours, _)| of(ours)).collect(),
        runs.iter()
            .filter_map(|(_, floor)| floor.as_ref().and_then(of))
            .collect(),
    ]
}

/// The operator's figures, and the floor's when it ran.
type Run = (Point, Option<Point>);

fn draw(runs: &[Run], out: &Path) -> anyhow::Result<()> {
    if runs.is_empty() {
        bail!("no runs to plot");
    }
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("the embedded font does not load"))?;
    let root = BitMapBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let [p50, floor_p50] = series(runs, |p| p.handoff_p50_ms);
    let [p99, floor_p99] = series(runs, |p| p.handoff_p99_ms);
    let [memory, floor_memory] = series(runs, |p| p.peak_rss_mib);
    panel(
        &left,
        ("Hand-off latency (log scale)", "ms"),
        &[
            ("operator p99", &p99, OURS, true),
            ("operator p50", &p50, OURS, false),
            ("floor p99", &floor_p99, FLOOR, true),
            ("floor p50", &floor_p50, FLOOR, false),
        ],
    )?;
    panel(
        &right,
        ("Peak memory (VmHWM, log scale)", "MiB"),
        &[
            ("operator", &memory, OURS, true),
            ("floor", &floor_memory, FLOOR, true),
        ],
    )?;
    root.present().map_err(plot_error)?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A line of a chart: its label, its points, its colour, and whether it is drawn bold.
type Line<'a> = (&'a str, &'a Vec<(f64, f64)>, RGBColor, bool);

/// One chart: `lines` of (label, points, colour, solid) against workflows on a log scale.
fn panel(area: &Area, (title, unit): (&str, &str), lines: &[Line]) -> anyhow::Result<()> {
    let points = lines.iter().flat_map(|l| l.1.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.3;
    let x_min = points.clone().map(|p| p.0).fold(x_max, f64::min) / 1.3;
    let y_max = points.clone().map(|p| p.1).fold(1.0, f64::max) * 1.3;
    // Latencies span from milliseconds to minutes: log scales, from at most 10 so that a decade
    // is labelled; each point also carries its value.
    let y_min = points.clone().map(|p| p.1).fold(10.0, f64::min).max(0.1) / 1.5;
    // The x axis is labelled at the batch sizes run, not at every 1000 (they crowd together).
    let mut batches: Vec<f64> = points.map(|p| p.0).collect();
    batches.sort_by(f64::total_cmp);
    batches.dedup();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x_min..x_max).log_scale().with_key_points(batches),
            (y_min..y_max).log_scale(),
        )
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("workflows (three splits each)")
        .y_desc(unit)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_error)?;
    for (label, points, colour, solid) in lines {
        let style = match solid {
            true => colour.stroke_width(3),
            false => colour.mix(0.6).stroke_width(2),
        };
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(plot_error)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, style.filled())))
            .map_err(plot_error)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Text::new(format!(" {:.0}", p.1), *p, ("sans-serif", 13).into_font())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(workflows: f64, p99: f64, mib: f64) -> Point {
        Point {
            workflows,
            handoff_p50_ms: Some(p99 / 2.0),
            handoff_p99_ms: Some(p99),
            peak_rss_mib: Some(mib),
        }
    }

    #[test]
    fn a_png_is_drawn_from_the_bench_s_json() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (n, ours, floor) in [(200.0, 100.0, 80.0), (1000.0, 300.0, 250.0)] {
            let path = dir.path().join(format!("{n}.json"));
            let run = serde_json::json!({
                "operator": point(n, ours, 30.0 + n / 100.0),
                "floor": point(n, floor, 20.0),
                "cpus": 2,
            });
            std::fs::write(&path, run.to_string()).unwrap();
            files.push(path);
        }
        let out = dir.path().join("plot.png");
        run(&PlotArgs {
            out: out.clone(),
            runs: files.into_iter().rev().collect(),
        })
        .unwrap();
        let png = std::fs::read(&out).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(
            png.len() > 10_000,
            "a blank image is far smaller: {}",
            png.len()
        );
    }

    #[test]
    fn a_file_that_is_not_the_bench_s_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{}").unwrap();
        let err = run(&PlotArgs {
            out: dir.path().join("p.png"),
            runs: vec![path],
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("x.json"), "{err:#}");
    }

    #[test]
    fn series_leave_out_missing_figures() {
        let mut a = point(200.0, 10.0, 1.0);
        a.handoff_p99_ms = None;
        let runs = [
            (a, Some(point(200.0, 5.0, 2.0))),
            (point(5000.0, 1.0, 1.0), None),
        ];
        let [ours, floor] = series(&runs, |p| p.handoff_p99_ms);
        assert_eq!(ours, vec![(5000.0, 1.0)]);
        assert_eq!(floor, vec![(200.0, 5.0)]);
    }
}
