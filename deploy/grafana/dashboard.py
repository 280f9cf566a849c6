"""Verbatim's Grafana dashboard, built with Grafana's own Python SDK (grafana-foundation-sdk).

    python deploy/grafana/dashboard.py > deploy/grafana/verbatim.json   # `make dashboard`

The JSON is what Grafana provisions (deploy/grafana/dashboards.yml); tests/deploy/test_grafana.py
fails when it differs from what this script prints, and checks that every metric a panel
queries is one that a running Verbatim exports.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TypeVar

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import BigValueColorMode, LegendDisplayMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

P = TypeVar("P", timeseries.Panel, stat.Panel)
UID = "verbatim"
# The panels' data source: the dashboard's `datasource` variable (the default Prometheus data
# source unless changed), so the file also imports into a Grafana with its own names.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def graph(title: str, description: str, unit: str, *queries: Query,
          stack: bool = False) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
             .unit(unit).min(0).fill_opacity(10 if not stack else 60)
             .legend(common.VizLegendOptions().show_legend(True)
                     .display_mode(LegendDisplayMode.LIST).placement("bottom"))
             .tooltip(common.VizTooltipOptions().mode("multi").sort("desc")))
    if stack:
        panel = panel.stacking(common.StackingConfig().mode("normal"))
    return _targets(panel, queries)


def single(title: str, description: str, unit: str, *queries: Query) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(DATASOURCE)
             .unit(unit).color_mode(BigValueColorMode.BACKGROUND)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"])))
    return _targets(panel, queries)


def _targets(panel: P, queries: tuple[Query, ...]) -> P:
    for index, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index))
        panel = panel.with_target(target.legend_format(query.legend or "__auto"))
    return panel


# Rows of (panel, width). The API replicas all report the same Redis-read gauges, hence `max`.
ROWS: list[tuple[str, list[tuple[timeseries.Panel | stat.Panel, int]]]] = [
    ("Service", [
        (single("Redis", "1 while the API replicas read Redis (verbatim_redis_up).", "bool",
                q("min(verbatim_redis_up)", "Redis")), 4),
        (single("Storage", "1 while every API replica can write the upload directory "
                "(verbatim_storage_up).", "bool", q("min(verbatim_storage_up)", "storage")), 4),
        (single("Workers ready", "Transcription worker processes with a loaded model, as "
                "/readyz counts them.", "short", q("max(verbatim_workers_ready)", "ready")), 4),
        (single("Live slots", "Live sessions the warmed-up live workers can hold at once.",
                "short", q("sum(verbatim_live_worker_slots)", "live slots")), 4),
        (single("Queued", "Jobs waiting in the queues, every model and priority.", "short",
                q("sum(max by (model, priority) (verbatim_queue_depth))", "queued")), 4),
        (single("Audio hours per hour", "Hours of audio transcribed per hour of wall time "
                "over the last hour.", "short",
                q("sum(rate(verbatim_worker_audio_seconds_total[1h]))", "audio h/h")), 4),
    ]),
    ("Jobs", [
        (graph("Jobs by status", "Job records in Redis by status.", "short",
               q("max by (status) (verbatim_jobs)", "{{status}}")), 8),
        (graph("Job outcomes", "Jobs finished per minute: completed, and failed by error code.",
               "short",
               q(f"sum(rate(verbatim_worker_jobs_completed_total[{RATE}])) * 60", "completed"),
               q(f"sum by (code) (rate(verbatim_worker_jobs_failed_total[{RATE}])) * 60",
                 "failed: {{code}}"),
               stack=True), 8),
        (graph("Jobs submitted", "Jobs accepted per minute.",
               "short",
               q(f"sum(rate(verbatim_jobs_submitted_total[{RATE}])) * 60", "jobs / min")), 8),
    ]),
    ("Queue", [
        (graph("Queue length by model", "Jobs waiting, by the model they run on (each model "
               "has its queue, which only the workers serving it take from).", "short",
               q("sum by (model) (max by (model, priority) (verbatim_queue_depth))",
                 "{{model}}"),
               stack=True), 8),
        (graph("Queue length by priority", "Jobs waiting, by the priority they were queued at "
               "(0 is taken first: jobs whose worker died), every model's together.", "short",
               q("sum by (priority) (max by (model, priority) (verbatim_queue_depth))",
                 "priority {{priority}}"),
               stack=True), 8),
        (graph("Queue wait by priority (p90)", "Time from a job's creation to the start of its "
               "first attempt, 90th percentile, by priority.", "s",
               q(f"""histogram_quantile(0.9, sum by (le, priority)
                     (rate(verbatim_worker_queue_wait_seconds_bucket[{RATE}])))""",
                 "p90 priority {{priority}}"),
               q(f"""histogram_quantile(0.5, sum by (le)
                     (rate(verbatim_worker_queue_wait_seconds_bucket[{RATE}])))""",
                 "p50 all")), 8),
    ]),
    ("Throughput", [
        (graph("Audio hours per hour", "Seconds of audio transcribed per second, which is "
               "hours of audio per hour.", "short",
               q(f"sum(rate(verbatim_worker_audio_seconds_total[{RATE}]))", "audio h/h")), 12),
        (graph("Real-time factor", "Transcription time divided by audio duration (below 1 is "
               "faster than real time).", "short",
               q(f"""histogram_quantile(0.5, sum by (le)
                     (rate(verbatim_worker_realtime_factor_bucket[{RATE}])))""", "p50"),
               q(f"""histogram_quantile(0.9, sum by (le)
                     (rate(verbatim_worker_realtime_factor_bucket[{RATE}])))""", "p90"),
               q(f"""sum(rate(verbatim_worker_transcription_seconds_sum[{RATE}]))
                     / sum(rate(verbatim_worker_audio_seconds_total[{RATE}]))""",
                 "overall")), 12),
    ]),
    ("Workers", [
        (graph("Worker utilisation", "Jobs being transcribed over the jobs the transcription "
               "workers can run at once.", "percentunit",
               q("sum(verbatim_worker_jobs_in_flight) / sum(verbatim_worker_slots)", "all"),
               q("""sum by (instance) (verbatim_worker_jobs_in_flight)
                    / sum by (instance) (verbatim_worker_slots)""", "{{instance}}")), 8),
        (graph("Live worker utilisation", "Live sessions held over the sessions the warmed-up "
               "live workers can hold.", "percentunit",
               q("sum(verbatim_live_sessions_in_flight) / sum(verbatim_live_worker_slots)",
                 "all")), 8),
        (graph("Model load time", "Time the slowest pool process of each worker took to load "
               "its model.", "s",
               q("max by (instance) (verbatim_worker_model_load_seconds)", "{{instance}}")), 8),
        (graph("GPU memory in use", "Memory in use on each GPU (all its processes), as a share "
               "of its capacity; empty on CPU-only workers.", "percentunit",
               q("""sum by (instance, gpu) (verbatim_worker_gpu_memory_bytes)
                    / sum by (instance, gpu) (verbatim_worker_gpu_memory_capacity_bytes)""",
                 "{{instance}} GPU {{gpu}}")), 12),
        (graph("GPU memory", "Bytes in use on each GPU.", "bytes",
               q("sum by (instance, gpu) (verbatim_worker_gpu_memory_bytes)",
                 "{{instance}} GPU {{gpu}}")), 12),
    ]),
    ("Webhooks", [
        (graph("Webhook attempts", "Delivery attempts per minute by outcome.", "short",
               q(f"sum by (outcome) (rate(verbatim_webhook_attempts_total[{RATE}])) * 60",
                 "{{outcome}}"), stack=True), 12),
        (graph("Webhook events", "Events finished per minute by outcome (exhausted: every "
               "attempt failed).", "short",
               q(f"sum by (outcome) (rate(verbatim_webhook_events_total[{RATE}])) * 60",
                 "{{outcome}}"), stack=True), 12),
    ]),
    ("HTTP", [
        (graph("HTTP errors", "Share of API responses that are server errors (5xx) and client "
               "errors (4xx).", "percentunit",
               q(f"""sum(rate(verbatim_http_requests_total{{status=~"5.."}}[{RATE}]))
                     / sum(rate(verbatim_http_requests_total[{RATE}]))""", "5xx"),
               q(f"""sum(rate(verbatim_http_requests_total{{status=~"4.."}}[{RATE}]))
                     / sum(rate(verbatim_http_requests_total[{RATE}]))""", "4xx")), 8),
        (graph("HTTP errors by route", "Server errors per minute by route and status.", "short",
               q(f"""sum by (route, status)
                     (rate(verbatim_http_requests_total{{status=~"5.."}}[{RATE}])) * 60""",
                 "{{status}} {{route}}")), 8),
        (graph("HTTP latency (p95)", "95th percentile of the time to answer, by route "
               "(streams such as job events and live sessions last as long as they are open).",
               "s",
               q(f"""histogram_quantile(0.95, sum by (le, route)
                     (rate(verbatim_http_request_duration_seconds_bucket[{RATE}])))""",
                 "{{route}}")), 8),
    ]),
]


def build() -> dashboard.Dashboard:
    board = (dashboard.Dashboard("Verbatim").uid(UID).tags(["verbatim"])
             .description("Verbatim's jobs, queue, workers, webhooks and HTTP API.")
             .refresh("30s").time("now-6h", "now").timezone("browser").editable()
             .with_variable(dashboard.DatasourceVariable("datasource").label("Data source")
                            .type("prometheus")))
    y, panel_id = 0, 1
    for title, panels in ROWS:
        board = board.with_row(dashboard.Row(title).id(panel_id)
                               .grid_pos(GridPos(h=1, w=WIDTH, x=0, y=y)))
        panel_id, y, x, height = panel_id + 1, y + 1, 0, 0
        for panel, width in panels:
            if x + width > WIDTH:
                x, y = 0, y + height
            height = 4 if isinstance(panel, stat.Panel) else 8
            board = board.with_panel(panel.id(panel_id).grid_pos(
                GridPos(h=height, w=width, x=x, y=y)))
            panel_id, x = panel_id + 1, x + width
        y += height
    return board


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
