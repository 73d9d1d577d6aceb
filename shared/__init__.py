"""Code that the publisher and the alerter share: the message contract, configuration, Kafka, logging."""
