//! The load benchmark's results: one row per scenario and concurrency, shown
//! as a markdown table and written as JSON.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::load::Measured;

/// One scenario at one concurrency.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: &'static str,
    pub title: &'static str,
    pub users: usize,
    pub measured: Measured,
    /// The server's CPU per successful request divided by the floor's at the
    /// same concurrency.
    pub floor_ratio: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// The peak is since the server started: resetting it was refused.
    pub peak_since_start: bool,
    pub wal_bytes: Option<u64>,
    /// The driver's CPU use as a share of the CPUs it runs on (1.0: all busy).
    pub driver_load: Option<f64>,
    pub notes: Vec<String>,
    /// Extra figures for the JSON (logins per second...).
    pub extra: Map<String, Value>,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("–".into(), |b| format!("{:.1}", b as f64 / 1048576.0))
}

impl Row {
    /// The row of the markdown table.
    pub fn markdown(&self) -> String {
        let m = &self.measured;
        let cpu = m
            .cpu_per_request()
            .map_or("–".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e6));
        let ratio = self.floor_ratio.map_or("–".into(), |r| format!("{r:.1}"));
        let rss = match self.peak_rss_kib {
            Some(kib) if self.peak_since_start => format!("{:.1}*", kib as f64 / 1024.0),
            Some(kib) => format!("{:.1}", kib as f64 / 1024.0),
            None => "–".into(),
        };
        let driver = self
            .driver_load
            .map_or("–".into(), |l| format!("{:.0}%", l * 100.0));
        let errors = if m.errors > 0 {
            format!("**{}**", m.errors)
        } else {
            "0".into()
        };
        format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.title,
            self.users,
            m.per_second(),
            ms(m.percentile(0.5)),
            ms(m.percentile(0.99)),
            ms(m.percentile(0.999)),
            errors,
            cpu,
            ratio,
            rss,
            mib(self.wal_bytes),
            driver,
            self.notes.join("; ")
        )
    }

    pub fn json(&self) -> Value {
        let m = &self.measured;
        let micros = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1e6 * 10.0).round() / 10.0);
        let mut row = json!({
            "id": self.id,
            "scenario": self.title,
            "concurrency": self.users,
            "requests": m.requests,
            "seconds": m.elapsed.as_secs_f64(),
            "ended_early": m.ended_early,
            "requests_per_second": (m.per_second() * 10.0).round() / 10.0,
            "latency_us": {
                "p50": micros(m.percentile(0.5)),
                "p99": micros(m.percentile(0.99)),
                "p99_9": micros(m.percentile(0.999)),
                "max": micros(m.percentile(1.0)),
            },
            "errors": m.errors,
            "first_error": m.first_error,
            "server_cpu_seconds": m.server_cpu.map(|d| d.as_secs_f64()),
            "server_cpu_us_per_request": micros(m.cpu_per_request()),
            "cpu_ratio_to_floor": self.floor_ratio.map(|r| (r * 100.0).round() / 100.0),
            "peak_rss_kib": self.peak_rss_kib,
            "peak_rss_since_start": self.peak_since_start,
            "wal_bytes": self.wal_bytes,
            "driver_cpu_share": self.driver_load.map(|l| (l * 1000.0).round() / 1000.0),
            "notes": self.notes,
        });
        if let Some(object) = row.as_object_mut() {
            object.extend(self.extra.clone());
        }
        row
    }
}

/// The table's heading.
pub const HEADER: &str = "| scenario | users | req/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs/req | × floor | peak RSS MiB | WAL MiB | driver CPU | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|";
