"""The alerter's edges, thin: the readings consumer, the alerts topic, the dead-letter topic, the Slack receiver.

Each adapter turns one outside system into a few calls the service makes
(or, for the receiver, the notifier); none decides anything. All Kafka
adapters are used by one thread, the service's, which owns every Kafka client.
"""
