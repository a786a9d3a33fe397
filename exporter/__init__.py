"""Prometheus exporter of free-disk-percentage gauges for every service's mounts."""
