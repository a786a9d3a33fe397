"""Tests of the ``webpaas`` command against a running bridge."""
