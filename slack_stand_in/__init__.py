"""A local stand-in for Slack's incoming webhooks: a development and test tool, not part of either service.

`SlackStandIn` runs in-process (tests, benchmarks); `gpu-temp-slack-stand-in`
or `python -m slack_stand_in` runs it as a program (demo, compose, soak).
"""

from slack_stand_in.server import Answer, Behaviour, Received, SlackStandIn, main, render, validate

__all__ = ["Answer", "Behaviour", "Received", "SlackStandIn", "main", "render", "validate"]
