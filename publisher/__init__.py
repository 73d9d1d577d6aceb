"""Publisher: simulates GPU temperature readings and produces them to Kafka."""
