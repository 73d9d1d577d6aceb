"""The alerter's pure core: alert policy, at-least-once offsets, per-partition device state. No I/O, no threads.

Everything here is a plain function or object of values in, values out, so
it is tested without Kafka, HTTP or sleeps; the adapters and the service
(alerter/service.py) feed it and carry out what it decides.
"""
