"""Notification targets: one module per integration type behind `Target`."""
