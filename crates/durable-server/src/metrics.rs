//! `/metrics`: the runtime's counters and gauges in Prometheus' text format.

use std::fmt::Write as _;

use durable_runtime::MetricsSnapshot;

/// Renders `snapshot` and the HTTP response counts by status class (1xx..5xx).
pub fn render(snapshot: &MetricsSnapshot, responses: &[u64]) -> String {
    let mut out = String::with_capacity(2048);
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "durable_objects_active",
        "Object instances in memory.",
        snapshot.active_objects as u64,
    );
    gauge(
        "durable_websockets_open",
        "WebSockets connected to objects.",
        snapshot.web_sockets_open as u64,
    );
    gauge(
        "durable_databases_open",
        "Object databases open.",
        snapshot.open_databases as u64,
    );
    gauge(
        "durable_alarms_pending",
        "Alarms set and not yet run.",
        snapshot.pending_alarms as u64,
    );

    let _ = writeln!(
        out,
        "# HELP durable_http_responses_total HTTP responses by status class.\n# TYPE durable_http_responses_total counter"
    );
    for (i, count) in responses.iter().enumerate() {
        let _ = writeln!(
            out,
            "durable_http_responses_total{{code=\"{}xx\"}} {count}",
            i + 1
        );
    }
    let _ = writeln!(
        out,
        "# HELP durable_object_requests_total Events delivered to objects, by kind.\n# TYPE durable_object_requests_total counter"
    );
    for (kind, count) in [
        ("rpc", snapshot.rpc_calls),
        ("fetch", snapshot.fetches),
        ("websocket", snapshot.web_socket_events),
    ] {
        let _ = writeln!(
            out,
            "durable_object_requests_total{{kind=\"{kind}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP durable_commits_total Storage commits.\n# TYPE durable_commits_total counter\ndurable_commits_total {}",
        snapshot.commits
    );
    let _ = writeln!(
        out,
        "# HELP durable_alarms_total Alarm handler runs by outcome.\n# TYPE durable_alarms_total counter\ndurable_alarms_total{{outcome=\"ok\"}} {}\ndurable_alarms_total{{outcome=\"failed\"}} {}",
        snapshot.alarms_run, snapshot.alarms_failed
    );
    let fsync = &snapshot.fsync;
    let _ = writeln!(
        out,
        "# HELP durable_fsync_seconds Latency of WAL syncs (group commit).\n# TYPE durable_fsync_seconds histogram"
    );
    for (bound, count) in durable_storage_buckets().iter().zip(&fsync.buckets) {
        let _ = writeln!(
            out,
            "durable_fsync_seconds_bucket{{le=\"{bound}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "durable_fsync_seconds_bucket{{le=\"+Inf\"}} {}\ndurable_fsync_seconds_sum {}\ndurable_fsync_seconds_count {}",
        fsync.count, fsync.sum_seconds, fsync.count
    );
    out
}

fn durable_storage_buckets() -> &'static [f64] {
    &durable_runtime::SYNC_LATENCY_BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_declared_and_numbers_are_rendered() {
        let snapshot = MetricsSnapshot::default();
        let text = render(&snapshot, &[0, 3, 0, 1, 0]);
        for name in [
            "durable_objects_active 0",
            "durable_websockets_open 0",
            "durable_http_responses_total{code=\"2xx\"} 3",
            "durable_http_responses_total{code=\"4xx\"} 1",
            "durable_commits_total 0",
            "durable_alarms_total{outcome=\"ok\"} 0",
            "durable_fsync_seconds_count 0",
            "durable_fsync_seconds_bucket{le=\"+Inf\"} 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
