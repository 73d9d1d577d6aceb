"""Slack as a receiver: renders a notification as a webhook message (by kind) and posts it once per call."""

from __future__ import annotations

from alerter.domain.notification import Notification
from alerter.receiver import Attempt, HeldBack
from alerter.slack import WebhookClient, encode_message, message_for, summary_message


class SlackReceiver:
    name = "Slack"
    hint = "check SLACK_WEBHOOK_URL and SLACK_CHANNEL"

    def __init__(self, client: WebhookClient, channel: str) -> None:
        self._client = client
        self._channel = channel

    def post(self, notification: Notification) -> Attempt:
        return self._client.post(self.render(notification))

    def post_summary(self, held: HeldBack) -> Attempt:
        """One message for the alerts the alert budget held back (alerter.notifier)."""
        return self._client.post(encode_message(summary_message(held, self._channel)))

    def render(self, notification: Notification) -> bytes:
        """The webhook payload of a notification, by kind (alerter.slack.message_for)."""
        return encode_message(message_for(notification, self._channel))
