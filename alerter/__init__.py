"""Alerter: consumes readings, alerts Slack when a GPU runs too hot."""
