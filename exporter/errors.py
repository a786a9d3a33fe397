"""Errors that the disk exporter raises, as one small hierarchy.

ExporterError
└── ConfigError    invalid configuration file or command-line option

The command line catches ExporterError once, prints its message on one line
and exits with status 2.
"""

from __future__ import annotations


class ExporterError(Exception):
    """Base class of every error that the exporter reports to its operator."""


class ConfigError(ExporterError):
    """Invalid configuration: the message names the key and the problem."""
