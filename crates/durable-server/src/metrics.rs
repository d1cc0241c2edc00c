//! `/metrics`: the runtime's counters and gauges, and the HTTP responses by status class,
//! exposed in the Prometheus / OpenMetrics text format by `prometheus-client`.
//!
//! The runtime keeps its own atomics (cheap on the hot path); at each scrape a collector
//! reads one [`MetricsSnapshot`] and encodes it, so no number is kept twice.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use durable_runtime::{MetricsSnapshot, SYNC_LATENCY_BUCKETS};

/// The content type of what [`render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One scrape: the runtime's snapshot and the HTTP responses by status class (1xx..5xx).
#[derive(Debug)]
struct Scrape {
    snapshot: MetricsSnapshot,
    responses: Vec<u64>,
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: usize,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter with one label, one sample per `(label value, count)`.
fn labelled_counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    samples: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in samples {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.snapshot;
        gauge(
            &mut encoder,
            "durable_objects_active",
            "Object instances in memory.",
            s.active_objects,
        )?;
        gauge(
            &mut encoder,
            "durable_websockets_open",
            "WebSockets connected to objects.",
            s.web_sockets_open,
        )?;
        gauge(
            &mut encoder,
            "durable_databases_open",
            "Object databases open.",
            s.open_databases,
        )?;
        gauge(
            &mut encoder,
            "durable_alarms_pending",
            "Alarms set and not yet run.",
            s.pending_alarms,
        )?;
        gauge(
            &mut encoder,
            "durable_shards_stalled",
            "Shards held by a handler that ran past the CPU limit without yielding.",
            s.stalled_shards,
        )?;
        gauge(
            &mut encoder,
            "durable_disk_full",
            "1 while the data folder's disk is full and writes are refused.",
            usize::from(s.disk_full),
        )?;
        gauge(
            &mut encoder,
            "durable_activations_waiting",
            "Events waiting for a database slot (the node is at its open-database limit).",
            s.activations_waiting,
        )?;
        let classes: Vec<String> = (1..=self.responses.len())
            .map(|class| format!("{class}xx"))
            .collect();
        let responses: Vec<(&str, u64)> = classes
            .iter()
            .map(String::as_str)
            .zip(self.responses.iter().copied())
            .collect();
        labelled_counter(
            &mut encoder,
            "durable_http_responses",
            "HTTP responses by status class.",
            "code",
            &responses,
        )?;
        labelled_counter(
            &mut encoder,
            "durable_object_requests",
            "Events delivered to objects, by kind.",
            "kind",
            &[
                ("rpc", s.rpc_calls),
                ("fetch", s.fetches),
                ("websocket", s.web_socket_events),
            ],
        )?;
        counter(
            &mut encoder,
            "durable_commits",
            "Storage commits.",
            s.commits,
        )?;
        counter(
            &mut encoder,
            "durable_stalled_turns",
            "Turns found running past the CPU limit without yielding.",
            s.stalled_turns,
        )?;
        labelled_counter(
            &mut encoder,
            "durable_alarms",
            "Alarm handler runs by outcome.",
            "outcome",
            &[("ok", s.alarms_run), ("failed", s.alarms_failed)],
        )?;
        // The snapshot's buckets are cumulative; the encoder wants each bucket's own count.
        let fsync = &s.fsync;
        let mut buckets = Vec::with_capacity(SYNC_LATENCY_BUCKETS.len() + 1);
        let mut below = 0;
        for (bound, cumulative) in SYNC_LATENCY_BUCKETS.iter().zip(&fsync.buckets) {
            buckets.push((*bound, cumulative.saturating_sub(below)));
            below = *cumulative;
        }
        buckets.push((f64::INFINITY, fsync.count.saturating_sub(below)));
        let mut histogram = encoder.encode_descriptor(
            "durable_fsync_seconds",
            "Latency of WAL syncs (group commit).",
            None,
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<NoLabelSet>(fsync.sum_seconds, fsync.count, &buckets, None)
    }
}

/// Renders `snapshot` and the HTTP response counts by status class (1xx..5xx).
pub fn render(snapshot: &MetricsSnapshot, responses: &[u64]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        snapshot: snapshot.clone(),
        responses: responses.to_vec(),
    }));
    let mut out = String::with_capacity(2048);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_declared_and_numbers_are_rendered() {
        let mut snapshot = MetricsSnapshot::default();
        snapshot.active_objects = 2;
        snapshot.commits = 7;
        snapshot.stalled_turns = 1;
        snapshot.stalled_shards = 1;
        snapshot.disk_full = true;
        snapshot.fsync.count = 3;
        snapshot.fsync.sum_seconds = 0.002;
        snapshot.fsync.buckets = vec![1, 2, 2, 2, 2, 2, 2, 2, 2, 2];
        let text = render(&snapshot, &[0, 3, 0, 1, 0]);
        for sample in [
            "durable_objects_active 2",
            "durable_websockets_open 0",
            "durable_http_responses_total{code=\"2xx\"} 3",
            "durable_http_responses_total{code=\"4xx\"} 1",
            "durable_commits_total 7",
            "durable_stalled_turns_total 1",
            "durable_shards_stalled 1",
            "durable_disk_full 1",
            "durable_activations_waiting 0",
            "durable_alarms_total{outcome=\"ok\"} 0",
            "durable_object_requests_total{kind=\"fetch\"} 0",
            "durable_fsync_seconds_count 3",
            "durable_fsync_seconds_bucket{le=\"0.0001\"} 1",
            "durable_fsync_seconds_bucket{le=\"0.00025\"} 2",
            "durable_fsync_seconds_bucket{le=\"+Inf\"} 3",
            "# TYPE durable_fsync_seconds histogram",
        ] {
            assert!(text.contains(sample), "{sample} missing from:\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
