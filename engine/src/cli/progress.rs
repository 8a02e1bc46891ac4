//! The engine's own output on standard error: progress lines and logs, as text
//! (coloured only on a terminal) or one JSON object per line.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use roiergasias_engine::run::{Observer, StepAt};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, debug, info, warn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat, debug: bool) {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let color = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(color).event_format(Text { color }).init();
        }
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .init(),
    }
}

/// Human lines: the message alone, `error:`/`warning:` in front when not INFO.
struct Text {
    color: bool,
}

#[derive(Default)]
struct Fields {
    message: String,
    result: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "result" => self.result = Some(value.to_owned()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (prefix, paint) = match *event.metadata().level() {
            Level::ERROR => ("error: ", "1;31"),
            Level::WARN => ("warning: ", "33"),
            Level::INFO => match fields.result.as_deref() {
                Some("ok") => ("", "32"),
                Some(_) => ("", "31"),
                None => ("", ""),
            },
            _ => ("debug: ", "2"),
        };
        if self.color && !paint.is_empty() {
            writeln!(w, "\x1b[{paint}m{prefix}{}\x1b[0m", fields.message)
        } else {
            writeln!(w, "{prefix}{}", fields.message)
        }
    }
}

/// Reports steps as they run.
pub struct Progress;

impl Observer for Progress {
    fn step_started(&mut self, at: &StepAt) {
        info!(
            event = "step_started",
            task = at.task,
            tasks = at.tasks,
            step = at.step,
            steps = at.steps,
            kind = at.kind,
            "{}",
            position(at)
        );
    }

    fn step_finished(&mut self, at: &StepAt, took: Duration, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        info!(
            event = "step_finished",
            task = at.task,
            tasks = at.tasks,
            step = at.step,
            steps = at.steps,
            kind = at.kind,
            result,
            duration_ms = took.as_secs_f64() * 1000.0,
            "{} · {result} in {}",
            position(at),
            human(took)
        );
    }

    fn detail(&mut self, message: &str) {
        debug!("{message}");
    }

    fn warning(&mut self, message: &str) {
        warn!("{message}");
    }
}

fn position(at: &StepAt) -> String {
    format!(
        "task {}/{} · step {}/{} · {}",
        at.task, at.tasks, at.step, at.steps, at.kind
    )
}

/// `35 µs`, `4.2 ms`, `12 ms`, `3.2 s`, `2 m 5 s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{} µs", d.as_micros())
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let s = d.as_secs();
        format!("{} m {} s", s / 60, s % 60)
    }
}
