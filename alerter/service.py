"""The alerter's loop: consume a batch, decode, decide, hand alerts to the sender, commit what is safe.

At-least-once: a partition's offset is committed only up to its lowest record
whose work is unfinished (see ledger.py), so a crash re-reads every alert
that was not delivered and every bad record not yet on the dead-letter topic.
Slack never blocks reading: alerts go to the sender thread, and only when
`max_pending_alerts` are undelivered does the loop pause the partitions (the
readings wait in Kafka) until Slack has caught up by half.

The per-record path is kept small: one decode, one comparison, one dict
store; everything else (metrics, offsets, commits) happens once per batch or
once per `commit_interval`. Only the main thread touches ledgers and device
states; the sender and the producer's callbacks report through a queue.

`run` ends by raising KafkaException on a fatal client error and SenderStopped
if the sender thread died: the caller exits non-zero and a restart re-reads
what was not committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message, TopicPartition

from alerter.cooldown_store import CooldownStore, RestoreError
from alerter.dead_letter import DeadLetters, why_unreadable
from alerter.ledger import PartitionLedger
from alerter.metrics import AlerterMetrics
from alerter.policy import EMPTY, AlertPolicy, DeviceState, Verdict, event_time
from alerter.sender import AlertSender, Completion, PendingAlert, Result, SenderStopped
from alerter.settings import AlerterSettings
from alerter.slack import alert_message, encode_message
from shared.codec import MAX_RECORD_BYTES
from shared.logs import Throttle
from shared.models import AlertEvent, TemperatureReading

log = logging.getLogger(__name__)

BATCH: Final = 2000  # records per consume() call
IDLE_WAIT: Final = 0.1  # seconds consume() may block when nothing is buffered
LAG_INTERVAL: Final = 5.0
RESTORE_MARGIN: Final = 60.0  # extra seconds of alerts history read back, for producers' clock disorder
RESTORE_TIMEOUT: Final = 15.0
REVOKE_GRACE: Final = 5.0  # how long a revoked partition's undelivered alerts may still finish
OUTAGE_PROBE_INTERVAL: Final = 5.0


class AlerterService:
    def __init__(
        self,
        *,
        settings: AlerterSettings,
        consumer_config: dict[str, Any],
        sender: AlertSender,
        store: CooldownStore,
        dead_letters: DeadLetters,
        producer: Any,
        metrics: AlerterMetrics,
        completions: queue.SimpleQueue[Completion],
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._topic = settings.source_topic
        self._policy = AlertPolicy(settings.threshold, settings.cooldown, settings.max_clock_skew)
        self._sender = sender
        self._store = store
        self._dead_letters = dead_letters
        self._producer = producer
        self._metrics = metrics
        self._completions = completions
        self._dlq_acks: queue.SimpleQueue[tuple[PartitionLedger, int]] = queue.SimpleQueue()
        self._lag_partitions: set[int] = set()
        self._clock = clock
        self._decode = msgspec.json.Decoder(TemperatureReading).decode
        self._ledgers: dict[int, PartitionLedger] = {}
        # Delivered-alert times of partitions we no longer own, in case they come back (a lost session, a
        # rebalance back and forth): facts we know even when the alerts topic cannot be read back in time.
        self._retired: dict[int, dict[str, DeviceState]] = {}
        self._pending = 0  # undelivered alerts, all partitions
        self._abandoned = 0  # given up unsent at shutdown
        self._paused = False
        self._closing = False
        self._outage_since: float | None = None
        self._fatal: KafkaError | None = None
        self.shutdown_started: float | None = None  # time.monotonic() when shutdown began
        self._throttle = Throttle(10.0)
        self._bad_throttle = Throttle(5.0)
        self.processed = 0  # records handled, good and bad (benchmarks read it)
        config = dict(consumer_config)
        config.update({"error_cb": self._on_error, "on_commit": self._on_commit})
        self._consumer_config = config
        self._consumer_factory = consumer_factory
        self._consumer: Consumer | None = None
        self._ready = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def sender(self) -> AlertSender:
        """The Slack sender this service hands alerts to (tests drive and inspect it)."""
        return self._sender

    def ready(self) -> bool:
        """Connected, owning partitions and able to send (health.HealthServer's /readyz)."""
        return self._ready.is_set() and self._outage_since is None and self._fatal is None and self._sender.alive()

    def run(self, stop: threading.Event) -> None:
        consumer = self._consumer = self._consumer_factory(self._consumer_config)
        consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._sender.start()
        log.info(
            "consuming %s as group %s; alerting above %.2f°C",
            self._topic,
            self._settings.consumer_group,
            self._settings.threshold,
            extra={"topic": self._topic, "group": self._settings.consumer_group},
        )
        next_commit = next_lag = next_probe = time.monotonic()
        try:
            while not stop.is_set():
                self._drain()
                messages = consumer.consume(BATCH, 0) or consumer.consume(1, IDLE_WAIT)
                if messages:
                    self._handle(messages)
                self._producer.poll(0)
                now = time.monotonic()
                if now >= next_commit:
                    self._check_alive()
                    self._drain()
                    self._commit(asynchronous=True)
                    next_commit = now + self._settings.commit_interval
                if now >= next_lag:
                    self._update_lag()
                    next_lag = now + LAG_INTERVAL
                if self._outage_since is not None and now >= next_probe:
                    self._probe_cluster()
                    next_probe = now + OUTAGE_PROBE_INTERVAL
        finally:
            self._shutdown()

    def _check_alive(self) -> None:
        if self._fatal is not None:
            raise KafkaException(self._fatal)
        if not self._sender.alive():
            raise SenderStopped(
                f"the Slack sender thread ended unexpectedly with {self._pending} alerts undelivered; stopping so "
                "that a restart raises them again"
            )

    def _shutdown(self) -> None:
        """Give undelivered alerts `shutdown_timeout` to finish, commit what is safe, leave the group."""
        self.shutdown_started = time.monotonic()
        self._closing = True
        deadline = self.shutdown_started + self._settings.shutdown_timeout
        if self._pending and self._sender.alive():
            log.info("waiting up to %.0fs for %d undelivered alerts", self._settings.shutdown_timeout, self._pending)
        while (self._pending or self._holds()) and time.monotonic() < deadline and self._sender.alive():
            self._producer.poll(0.05)
            self._drain()
        self._sender.stop(timeout=self._settings.slack_timeout + 1.0)
        self._producer.flush(max(1.0, deadline - time.monotonic()))
        self._drain()
        undelivered = self._pending + self._abandoned
        if undelivered:
            self._metrics.alerts_failed.labels("shutdown").inc(undelivered)
            log.warning(
                "%d alerts were not delivered before shutdown; their records will be read again after a restart",
                undelivered,
            )
        self._commit(asynchronous=False)
        if self._consumer is not None:
            self._consumer.close()
        self._store.close()
        self._ready.clear()
        log.info("consumer closed")

    # -- the hot path ----------------------------------------------------------------------------

    def _handle(self, messages: list[Message]) -> None:
        decode = self._decode
        threshold = self._policy.threshold
        limit = MAX_RECORD_BYTES
        last: dict[int | None, Message] = {}
        hot: list[tuple[Message, TemperatureReading]] = []
        bad: list[Message] = []
        for message in messages:
            value = message.value()
            try:  # no value (None) raises TypeError; invalid UTF-8 a ValueError; deep nesting a RecursionError
                reading = decode(value) if len(value) <= limit else None  # type: ignore[arg-type]
            except (TypeError, ValueError, RecursionError):
                reading = None
            if reading is None:
                bad.append(message)
                continue
            last[message.partition()] = message
            if reading.temperature > threshold:
                hot.append((message, reading))
        consumed = len(messages)
        if bad:
            consumed -= self._handle_bad(bad)
        if consumed and self._outage_since is not None:
            self._recovered()
        self.processed += consumed
        self._metrics.readings_consumed.inc(consumed)
        ledgers = self._ledgers
        for partition, message in last.items():
            ledger = ledgers.get(partition)  # type: ignore[arg-type]
            if ledger is not None:
                ledger.advance(message.offset() + 1)  # type: ignore[operator]
        if hot:
            self._handle_hot(hot)

    def _handle_hot(self, hot: list[tuple[Message, TemperatureReading]]) -> None:
        policy = self._policy
        skew = self._settings.max_clock_skew
        cooldown = policy.cooldown
        raised = cooled = in_flight = 0
        for message, reading in hot:
            ledger = self._ledgers.get(message.partition())  # type: ignore[arg-type]
            if ledger is None:
                continue  # its partition was taken away while the batch was in hand
            kind, millis = message.timestamp()
            record_time = None if kind == TIMESTAMP_NOT_AVAILABLE or millis < 0 else millis / 1000
            at = event_time(reading.timestamp.timestamp(), record_time, skew)
            if at - cooldown < ledger.restored_since:
                self._restore(ledger, at - cooldown - 2 * skew - RESTORE_MARGIN, RESTORE_TIMEOUT)
            verdict, state = policy.decide(reading.temperature, at, ledger.states.get(reading.device_id, EMPTY))
            if verdict is Verdict.ALERT:
                ledger.states[reading.device_id] = state
                self._raise(ledger, message, reading, at)
                raised += 1
            elif verdict is Verdict.COOLDOWN:
                cooled += 1
            elif verdict is Verdict.IN_FLIGHT:
                in_flight += 1
        if raised:
            self._metrics.alerts_raised.inc(raised)
            self._metrics.pending_alerts.set(self._pending)
        if cooled:
            self._metrics.alerts_suppressed.labels("cooldown").inc(cooled)
        if in_flight:
            self._metrics.alerts_suppressed.labels("in_flight").inc(in_flight)
        if self._pending >= self._settings.max_pending_alerts and not self._paused:
            self._pause()

    def _raise(self, ledger: PartitionLedger, message: Message, reading: TemperatureReading, at: float) -> None:
        threshold = self._policy.threshold
        offset: int = message.offset()  # type: ignore[assignment]
        log.warning(
            "HIGH TEMPERATURE ALERT: Device %s - %.2f°C exceeds threshold of %.2f°C",
            reading.device_id,
            reading.temperature,
            threshold,
            extra={"device": reading.device_id, "partition": ledger.partition, "offset": offset},
        )
        alert = AlertEvent.from_reading(reading, threshold)
        pending = PendingAlert(
            ledger, self._topic, offset, at, alert, encode_message(alert_message(alert, self._settings.slack_channel))
        )
        ledger.hold(offset)
        ledger.alerts.add(pending)
        self._pending += 1
        self._sender.submit(pending)

    def _handle_bad(self, messages: list[Message]) -> int:
        """Dead-letter unreadable records; returns how many were consumer events rather than records."""
        events = 0
        counts: dict[str, int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                events += 1
                self._on_error(error)
                continue
            partition: int = message.partition()  # type: ignore[assignment]
            offset: int = message.offset()  # type: ignore[assignment]
            ledger = self._ledgers.get(partition)
            if ledger is None:
                continue
            problem = why_unreadable(message.value())
            ledger.hold(offset)
            ledger.advance(offset + 1)
            code = self._dead_letters.record(message, problem, self._dlq_ack(ledger, offset))
            counts[code] = counts.get(code, 0) + 1
            suppressed = self._bad_throttle.allow(code)  # a flood of one kind costs a line per interval
            if suppressed is not None:
                log.warning(
                    "skipping an unreadable record (%s); copied to %s%s",
                    problem.reason,
                    self._dead_letters.topic,
                    f" ({suppressed} more since the last report)" if suppressed else "",
                    extra={"topic": message.topic(), "partition": partition, "offset": offset, "reason": code},
                )
        for code, count in counts.items():
            self._metrics.dead_lettered.labels(code).inc(count)
        return events

    def _dlq_ack(self, ledger: PartitionLedger, offset: int) -> Callable[[KafkaError | None], None]:
        """Runs on whichever thread served the producer, once the copy is acknowledged; the main thread applies it."""

        def acknowledged(error: KafkaError | None) -> None:
            if error is None:  # otherwise the copy could not be made: the record stays held, to be read again
                self._dlq_acks.put((ledger, offset))

        return acknowledged

    # -- completions from the sender and the producer -------------------------------------------

    def _drain(self) -> None:
        while not self._dlq_acks.empty():
            dead_lettered, offset = self._dlq_acks.get_nowait()
            dead_lettered.release(offset)  # harmless on a ledger already dropped
        completions = self._completions
        if completions.empty():
            return
        policy = self._policy
        while True:
            try:
                pending, result = completions.get_nowait()
            except queue.Empty:
                break
            ledger = pending.ledger
            if self._ledgers.get(ledger.partition) is not ledger or pending not in ledger.alerts:
                if result is Result.DELIVERED:  # delivered after its partition moved: still a cooldown we know of
                    self._remember_delivery(pending)
                continue  # otherwise already accounted for when the partition went
            ledger.alerts.discard(pending)
            self._pending -= 1
            device = pending.alert.device_id
            state = ledger.states.get(device, EMPTY)
            if result is Result.DELIVERED:
                ledger.states[device] = policy.delivered(state, pending.at)
            else:
                ledger.states[device] = policy.abandoned(state, pending.at)
            if result is Result.ABANDONED:
                self._abandoned += 1  # its record stays held: the commit stops there and it is read again
            elif result is not Result.FAILED:  # a failed one stays held too (the sender logged and counted it)
                ledger.release(pending.offset)
        self._metrics.pending_alerts.set(self._pending)
        if self._paused and self._pending <= self._settings.max_pending_alerts // 2:
            self._resume()

    def _remember_delivery(self, pending: PendingAlert) -> None:
        partition, device = pending.ledger.partition, pending.alert.device_id
        current = self._ledgers.get(partition)
        states = current.states if current is not None else self._retired.setdefault(partition, {})
        states[device] = self._policy.delivered(states.get(device, EMPTY), pending.at)

    def _holds(self) -> bool:
        return any(ledger.holds for ledger in self._ledgers.values())

    # -- offsets ---------------------------------------------------------------------------------

    def _commit(self, *, asynchronous: bool, ledgers: Iterable[PartitionLedger] | None = None) -> None:
        if self._consumer is None:
            return
        chosen = list(self._ledgers.values() if ledgers is None else ledgers)
        offsets = []
        for ledger in chosen:
            offset = ledger.to_commit()
            if offset is not None:
                offsets.append(TopicPartition(self._topic, ledger.partition, offset))
                ledger.committed = offset
        if not offsets:
            return
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            for ledger in chosen:
                ledger.committed = None  # unknown: commit again next time
            self._log_kafka_error("commit", exc.args[0] if exc.args else exc)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        failed = [tp for tp in partitions if tp.error is not None]
        if error is None and not failed:
            if self._outage_since is not None:
                self._recovered()
            return
        for tp in failed or partitions:
            ledger = self._ledgers.get(tp.partition)
            if ledger is not None:
                ledger.committed = None
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            self._log_kafka_error("commit", error)

    # -- rebalances ------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = [tp for tp in partitions if tp.topic == self._topic]
        since = self._clock() - self._settings.cooldown - 2 * self._settings.max_clock_skew - RESTORE_MARGIN
        deadline = time.monotonic() + RESTORE_TIMEOUT  # for all of them: a rebalance must not stall for long
        for tp in mine:
            ledger = self._ledgers[tp.partition] = PartitionLedger(tp.partition)
            ledger.states.update(self._retired.pop(tp.partition, {}))
            self._restore(ledger, since, max(1.0, deadline - time.monotonic()))
        consumer.incremental_assign(partitions)
        if self._paused and mine:
            consumer.pause(mine)
        self._assignment_changed("assigned", [tp.partition for tp in mine])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ledgers = [self._ledgers[tp.partition] for tp in partitions if tp.partition in self._ledgers]
        if not self._closing:
            deadline = time.monotonic() + REVOKE_GRACE
            while any(ledger.holds for ledger in ledgers) and time.monotonic() < deadline:
                self._producer.poll(0.05)
                self._drain()
        self._drain()
        self._commit(asynchronous=False, ledgers=ledgers)
        self._drop(ledgers, "revoked")
        self._assignment_changed("revoked", [ledger.partition for ledger in ledgers])

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        ledgers = [self._ledgers[tp.partition] for tp in partitions if tp.partition in self._ledgers]
        self._drop(ledgers, "revoked")
        self._assignment_changed("lost", [ledger.partition for ledger in ledgers])

    def _drop(self, ledgers: list[PartitionLedger], reason: str) -> None:
        """Forget partitions we no longer own; their new owner re-reads what we had not finished."""
        for ledger in ledgers:
            delivered = {
                device: DeviceState(state.delivered) for device, state in ledger.states.items() if state.delivered
            }
            if delivered:
                self._retired[ledger.partition] = delivered
            for pending in ledger.alerts:
                pending.cancelled = True
            if ledger.alerts and not self._closing:
                self._metrics.alerts_failed.labels(reason).inc(len(ledger.alerts))
                log.info(
                    "partition %d moved with %d undelivered alerts; its new owner will raise them",
                    ledger.partition,
                    len(ledger.alerts),
                    extra={"partition": ledger.partition},
                )
            self._pending -= len(ledger.alerts)
            ledger.alerts.clear()
            self._ledgers.pop(ledger.partition, None)
            if ledger.partition in self._lag_partitions:
                self._lag_partitions.discard(ledger.partition)
                self._metrics.consumer_lag.remove(str(ledger.partition))
        self._metrics.pending_alerts.set(self._pending)

    def _assignment_changed(self, what: str, partitions: list[int]) -> None:
        self._metrics.partitions_assigned.set(len(self._ledgers))
        if self._ledgers:
            self._ready.set()
        else:
            self._ready.clear()
        log.info(
            "partitions %s: %s; now own %s",
            what,
            partitions or "none",
            sorted(self._ledgers) or "none",
            extra={"topic": self._topic},
        )

    def _restore(self, ledger: PartitionLedger, since: float, timeout: float) -> None:
        """Read the partition's delivered alerts since `since` back from the alerts topic into its device states."""
        try:
            found = self._store.restore(ledger.partition, since, timeout)
        except RestoreError as exc:
            log.warning(
                "cooldowns of partition %d not restored (%s): a device may alert again within its cooldown",
                ledger.partition,
                exc,
                extra={"partition": ledger.partition},
            )
            found = {}
        for device, times in found.items():
            ledger.states[device] = self._policy.restored(ledger.states.get(device, EMPTY), times)
        ledger.restored_since = since
        if found:
            count = sum(len(t) for t in found.values())
            self._metrics.cooldowns_restored.inc(count)
            log.info(
                "restored %d delivered alerts of %d devices for partition %d",
                count,
                len(found),
                ledger.partition,
                extra={"partition": ledger.partition},
            )

    # -- flow control ----------------------------------------------------------------------------

    def _pause(self) -> None:
        if self._consumer is None:
            return
        self._consumer.pause([TopicPartition(self._topic, p) for p in self._ledgers])
        self._paused = True
        self._metrics.paused.set(1)
        log.warning(
            "pausing consumption: %d alerts wait for Slack (MAX_PENDING_ALERTS=%d); readings wait in Kafka",
            self._pending,
            self._settings.max_pending_alerts,
        )

    def _resume(self) -> None:
        if self._consumer is None:
            return
        self._consumer.resume([TopicPartition(self._topic, p) for p in self._ledgers])
        self._paused = False
        self._metrics.paused.set(0)
        log.info("resuming consumption: %d alerts still wait for Slack", self._pending)

    # -- observability and outages ----------------------------------------------------------------

    def _update_lag(self) -> None:
        if self._consumer is None:
            return
        for ledger in self._ledgers.values():
            if ledger.next_offset is None:
                continue
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, ledger.partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                self._metrics.consumer_lag.labels(str(ledger.partition)).set(max(0, high - ledger.next_offset))
                self._lag_partitions.add(ledger.partition)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() == KafkaError._FATAL:  # the client is unusable: `run` ends
            if self._fatal is None or (error.fatal() and not self._fatal.fatal()):
                self._fatal = error  # error_cb's copy names the underlying error; a message's only says _FATAL
            return
        if error.code() == KafkaError._ALL_BROKERS_DOWN and self._outage_since is None:
            self._outage_since = time.monotonic()
        self._log_kafka_error("consumer", error)

    def _log_kafka_error(self, what: str, error: object) -> None:
        code = error.code() if isinstance(error, KafkaError) else None
        text = error.str() if isinstance(error, KafkaError) else str(error)
        if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            text = f"{text} (waiting for topic {self._topic} to exist)"
        suppressed = self._throttle.allow(f"{what}-{code}")
        if suppressed is not None:
            log.warning(
                "Kafka %s error: %s%s",
                what,
                text,
                f" ({suppressed} similar not logged)" if suppressed else "",
                extra={"code": code if code is None else KafkaError(code).name()},
            )

    def _probe_cluster(self) -> None:
        """During an outage nothing may arrive to show it ended; ask for metadata now and then."""
        if self._consumer is None:
            return
        try:
            self._consumer.list_topics(self._topic, timeout=1.0)
        except KafkaException:
            return
        self._recovered()

    def _recovered(self) -> None:
        if self._outage_since is None:
            return
        log.info("Kafka reachable again after %.0fs", time.monotonic() - self._outage_since)
        self._outage_since = None
