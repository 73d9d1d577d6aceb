"""The alerter's Prometheus metrics, in a registry of their own (two instances in one test process never clash).

Names follow Prometheus conventions: a `gpu_alerter_` prefix, `_total` on
counters, base units (seconds), and label values from small fixed sets
(reasons, partitions). The service updates them once per poll batch, not per
record, so observability costs nothing on the hot path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Reading timestamp -> Slack acceptance: milliseconds when live, hours after an outage.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)


class AlerterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.readings_consumed = Counter(
            "gpu_alerter_readings_consumed", "Records read from the readings topic (good and bad).", registry=r
        )
        self.alerts_raised = Counter(
            "gpu_alerter_alerts_raised", "Notifications raised, of every kind (critical alerts only by default).",
            registry=r,
        )
        self.alerts_sent = Counter("gpu_alerter_alerts_sent", "Alerts Slack accepted.", registry=r)
        self.alert_retries = Counter(
            "gpu_alerter_alert_send_retries",
            "Failed attempts to post an alert that will be retried, by reason.",
            ["reason"],
            registry=r,
        )
        self.alerts_failed = Counter(
            "gpu_alerter_alerts_failed",
            "Alerts given up on, by reason (rejected: parked on the dead-letter topic; revoked: left to the "
            "partition's new owner; shutdown: re-read after restart; error: an unexpected failure while handling "
            "it, re-read after restart).",
            ["reason"],
            registry=r,
        )
        self.alerts_suppressed = Counter(
            "gpu_alerter_alerts_suppressed",
            "Readings above a threshold that raised no alert, by reason (cooldown: a delivered alert of the kind near;"
            " in_flight: an undelivered one; inhibited: a warning held back by a critical alert near; folded: late,"
            " into the device's backlog alert; late: a late warning, dropped).",
            ["reason"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "gpu_alerter_dead_lettered",
            "Records copied to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.alert_latency = Histogram(
            "gpu_alerter_alert_latency_seconds",
            "From the reading's timestamp to Slack accepting its alert.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "gpu_alerter_consumer_lag", "Records behind the end of each assigned partition.", ["partition"], registry=r
        )
        self.partitions_assigned = Gauge(
            "gpu_alerter_partitions_assigned", "Readings-topic partitions this instance owns.", registry=r
        )
        self.pending_alerts = Gauge(
            "gpu_alerter_pending_alerts", "Alerts due and not yet accepted by Slack.", registry=r
        )
        self.paused = Gauge(
            "gpu_alerter_consumption_paused", "1 while consumption waits for Slack to catch up.", registry=r
        )
        self.cooldowns_restored = Counter(
            "gpu_alerter_cooldowns_restored", "Delivered alerts read back from the alerts topic.", registry=r
        )
        # -- hostile input, storms and receivers (issues 10, 11, 15) ---------------------------------------------
        self.restores = Counter(
            "gpu_alerter_restores",
            "Reads of the alerts topic back into cooldowns, by trigger (assigned: partitions were assigned; "
            "older_reading: a reading older than what was read back).",
            ["trigger"],
            registry=r,
        )
        self.restores_deferred = Counter(
            "gpu_alerter_restores_deferred",
            "Restores an older reading asked for within a minute of the last one of its partition, not made (the "
            "reading was judged on the cooldowns known).",
            registry=r,
        )
        self.readings_rekeyed = Counter(
            "gpu_alerter_readings_rekeyed",
            "Hot readings whose record key was not their device_id, produced again keyed by it (so each device is "
            "judged on one partition).",
            registry=r,
        )
        self.alerts_held_back = Counter(
            "gpu_alerter_alerts_held_back",
            "Alerts over ALERT_BUDGET_PER_MINUTE, held back for a summary message instead of being posted one by one.",
            registry=r,
        )
        self.alert_summaries = Counter(
            "gpu_alerter_alert_summaries",
            "Summaries of held-back alerts, by result (accepted, rejected).",
            ["result"],
            registry=r,
        )
        self.receiver_refusing = Gauge(
            "gpu_alerter_receiver_refusing",
            "1 while a receiver has refused its last alerts for good (the instance reports not ready), by receiver.",
            ["receiver"],
            registry=r,
        )
        for trigger in ("assigned", "older_reading"):
            self.restores.labels(trigger)
        for result in ("accepted", "rejected"):
            self.alert_summaries.labels(result)
        # Early warning (issue 14) and bounded state (issue 10).
        self.notifications_raised = Counter(
            "gpu_alerter_notifications_raised",
            "Notifications raised, by kind (critical, warning, forecast, resolved, silent).",
            ["kind"],
            registry=r,
        )
        self.devices_tracked = Gauge(
            "gpu_alerter_devices_tracked", "Device states kept (bounded by MAX_TRACKED_DEVICES).", registry=r
        )
        self.devices_evicted = Counter(
            "gpu_alerter_devices_evicted",
            "Device states forgotten, by reason (expired: nothing in them could matter any more; limit: over "
            "MAX_TRACKED_DEVICES, those seen longest ago).",
            ["reason"],
            registry=r,
        )
        for kind in ("critical", "warning", "forecast", "resolved", "silent"):
            self.notifications_raised.labels(kind)
        for reason in ("expired", "limit"):
            self.devices_evicted.labels(reason)
        # -- end of block ----------------------------------------------------------------------------------------
        for reason in ("timeout", "connection", "server_error", "rate_limited", "error"):
            self.alert_retries.labels(reason)
        for reason in ("rejected", "revoked", "shutdown", "error"):
            self.alerts_failed.labels(reason)
        for reason in ("cooldown", "in_flight", "inhibited", "folded", "late"):
            self.alerts_suppressed.labels(reason)
        for reason in ("malformed_json", "invalid_field", "too_large", "empty"):
            self.dead_lettered.labels(reason)
