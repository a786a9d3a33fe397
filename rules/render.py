"""Render the low-disk alert rules from thresholds and options.

The output is one Prometheus rule file per metric source, with one group
that evaluates every 5 minutes and three rules:

- ``LowDiskSpace`` with ``severity: warning`` and ``severity: critical``,
  each a deadband around its threshold that reads its own state from the
  previous evaluation through the ``ALERTS`` series;
- ``DiskSpaceUnknown`` for disks whose free space cannot be read, because
  the mount is in error or no sample arrives.

Rendering is pure and deterministic: the same parameters give the same
bytes, so a test can compare the shipped files with a fresh render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import yaml

ALERT_NAME = "LowDiskSpace"
UNKNOWN_ALERT_NAME = "DiskSpaceUnknown"
EVALUATION_INTERVAL = "5m"

# How far back a rule looks for the ALERTS sample that it wrote itself at the
# previous evaluation. The window is longer than one evaluation interval
# because Prometheus 3 no longer includes a sample exactly one lookback (5m) old
# (lookback and ranges became left-open, per the Prometheus 3.0 migration guide).
# It is shorter than two, so an alert that resolved is not read back as
# firing: range functions skip the stale marker that resolving writes.
ALERTS_WINDOW = "7m"

# How long after its last sample a firing disk keeps its alert even though
# the exporter is up and reports no error for it. Past this, the disk counts
# as removed (unmounted on purpose, or its target gone from service
# discovery) and the alert resolves.
MISSING_DATA_GRACE = "1h"

# Two consecutive evaluations without data before DiskSpaceUnknown fires,
# so one failed scrape that happens to precede an evaluation stays quiet.
UNKNOWN_FOR = "10m"

RUNBOOK_PATH = "docs/runbooks/low-disk-space.md"

# node_exporter reports pseudo and image filesystems that are always full or
# mirror another mount (tmpfs is memory, squashfs and iso9660 are read-only
# images, overlay duplicates its backing filesystem).
NODE_FSTYPE_EXCLUDE = "|".join(
    (
        "tmpfs",
        "ramfs",
        "devtmpfs",
        "squashfs",
        "iso9660",
        "overlay",
        "nsfs",
        # A backslash for the regular expression, doubled for the PromQL string.
        "fuse\\\\.lxcfs",
        "fuse\\\\.snapfuse",
    )
)
NODE_SELECTOR = f'{{fstype!="", fstype!~"{NODE_FSTYPE_EXCLUDE}"}}'

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


class RenderError(ValueError):
    """An invalid rendering parameter; the message names the value and the fix."""


class Source(StrEnum):
    """The metrics that a rule file reads."""

    WEBPAAS = "webpaas"
    NODE = "node"


_OUTPUT_FILENAMES = {
    Source.WEBPAAS: "webpaas-disk.rules.yml",
    Source.NODE: "node-exporter-disk.rules.yml",
}


def output_filename(source: Source) -> str:
    """Return the file name under which the rules for ``source`` are shipped."""
    return _OUTPUT_FILENAMES[source]


def parse_percent(text: str, option: str) -> Decimal:
    """Parse a percentage such as ``20``, ``12.5`` or ``20%`` given for ``option``."""
    cleaned = text.strip().removesuffix("%").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise RenderError(
            f"invalid percentage {text!r} for {option}: use a number such as 20 or 12.5"
        )
    return value


def parse_size(text: str, option: str = "size") -> int:
    """Parse a size such as ``4GiB``, ``4GB``, ``500MiB`` or ``1024`` into bytes.

    Units are case-insensitive: KB, MB, GB and TB are powers of 1000, KiB,
    MiB, GiB and TiB powers of 1024, and a bare number is bytes.
    """
    hint = "use a number with a unit such as 4GiB, 4GB or 500MiB"
    match = _SIZE_PATTERN.match(text)
    if match is None:
        raise RenderError(f"invalid size {text!r} for {option}: {hint}")

    number, unit = match.groups()
    multiplier = _SIZE_UNITS.get(unit.lower())
    if multiplier is None:
        raise RenderError(f"unknown unit {unit!r} in {option} {text!r}: {hint}")

    size = Decimal(number) * multiplier
    if size != size.to_integral_value():
        raise RenderError(
            f"size {text!r} for {option} is not a whole number of bytes: {hint}"
        )
    if size <= 0:
        raise RenderError(f"size {text!r} for {option} must be above zero: {hint}")
    return int(size)


def format_number(value: Decimal | int) -> str:
    """Format a number the way PromQL and the annotations show it: 20, 12.5."""
    return format(Decimal(value).normalize(), "f")


def format_size(size: int) -> str:
    """Format a byte count with the largest unit that divides it exactly."""
    for unit, multiplier in (
        ("TiB", 1024**4),
        ("TB", 1000**4),
        ("GiB", 1024**3),
        ("GB", 1000**3),
        ("MiB", 1024**2),
        ("MB", 1000**2),
        ("KiB", 1024),
        ("KB", 1000),
    ):
        if size % multiplier == 0:
            return f"{size // multiplier}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class RuleParams:
    """The parameters of one rendered rule file.

    Args:
        source: the metrics the rules read.
        warning: percent of available space below which the warning fires.
        critical: percent of available space below which the critical fires.
        warning_bytes: with ``critical_bytes``, switches to the policy "below
            ``warning`` percent or ``warning_bytes``, whichever is smaller".
        critical_bytes: the same for the critical level.
        clear_margin: percentage points above a threshold that a firing
            level needs before it clears; 0 is a deadband of width zero.
        runbook_base_url: prefix of ``docs/runbooks/low-disk-space.md`` in
            the ``runbook_url`` annotation; without it the path is relative.
    """

    source: Source = Source.WEBPAAS
    warning: Decimal = field(default=Decimal(20))
    critical: Decimal = field(default=Decimal(10))
    warning_bytes: int | None = None
    critical_bytes: int | None = None
    clear_margin: Decimal = field(default=Decimal(0))
    runbook_base_url: str | None = None

    def __post_init__(self) -> None:
        self._check_percentages()
        self._check_bytes()
        self._check_runbook_base_url()

    def _check_percentages(self) -> None:
        if not Decimal(0) < self.warning < Decimal(100):
            raise RenderError(
                f"--warning {format_number(self.warning)} is out of range: "
                "use a percentage above 0 and below 100"
            )
        if not Decimal(0) < self.critical < self.warning:
            raise RenderError(
                f"--critical {format_number(self.critical)} must be above 0 and below "
                f"--warning {format_number(self.warning)}: lower --critical"
            )
        if self.clear_margin < 0:
            raise RenderError(
                f"--clear-margin {format_number(self.clear_margin)} is negative: "
                "use 0 for no margin or a positive number of percentage points"
            )
        if self.warning + self.clear_margin >= 100:
            raise RenderError(
                f"--clear-margin {format_number(self.clear_margin)} puts the "
                f"warning clear level at or above 100%: use a margin below "
                f"{format_number(100 - self.warning)}"
            )

    def _check_bytes(self) -> None:
        if (self.warning_bytes is None) != (self.critical_bytes is None):
            raise RenderError(
                "--warning-bytes and --critical-bytes go together: give both or neither"
            )
        if self.warning_bytes is None or self.critical_bytes is None:
            return
        if self.warning_bytes <= 0 or self.critical_bytes <= 0:
            raise RenderError("--warning-bytes and --critical-bytes must be above zero")
        if self.critical_bytes >= self.warning_bytes:
            raise RenderError(
                f"--critical-bytes {format_size(self.critical_bytes)} must be below "
                f"--warning-bytes {format_size(self.warning_bytes)}: "
                "lower --critical-bytes"
            )

    def _check_runbook_base_url(self) -> None:
        url = self.runbook_base_url
        if url is None:
            return
        parts = urlsplit(url)
        # The URL lands inside a Go template and a YAML string, so characters
        # that would change either are rejected rather than escaped.
        unsafe = any(character in url for character in '{}"\\') or any(
            character.isspace() for character in url
        )
        if parts.scheme not in ("http", "https") or not parts.netloc or unsafe:
            raise RenderError(
                f"invalid --runbook-base-url {url!r}: use an http or https URL "
                "without spaces, quotes or braces, such as https://git.example.com/webpaas-health/blob/main"
            )

    @property
    def runbook_url(self) -> str:
        """The value of the ``runbook_url`` annotation."""
        if self.runbook_base_url is None:
            return RUNBOOK_PATH
        return f"{self.runbook_base_url.rstrip('/')}/{RUNBOOK_PATH}"

    def command(self) -> str:
        """Return the ``webpaas rules:render`` command that renders this file."""
        words = [
            "webpaas rules:render",
            f"--source {self.source.value}",
            f"--warning {format_number(self.warning)}",
            f"--critical {format_number(self.critical)}",
        ]
        if self.warning_bytes is not None and self.critical_bytes is not None:
            words.append(f"--warning-bytes {format_size(self.warning_bytes)}")
            words.append(f"--critical-bytes {format_size(self.critical_bytes)}")
        words.append(f"--clear-margin {format_number(self.clear_margin)}")
        if self.runbook_base_url is not None:
            words.append(f"--runbook-base-url {self.runbook_base_url}")
        return " ".join(words)


@dataclass(frozen=True)
class _Metrics:
    """PromQL fragments that differ between the exporter and node_exporter."""

    free_percent: str
    last_free_percent: str
    present: str
    size_bytes: str
    readonly: str
    error: str
    # Labels that identify one disk on both sides of a join with the
    # read-only, error and size series; job and instance come from the scrape.
    join_labels: str
    subject: str
    # Extra ALERTS matchers that keep out the alerts of the other rule file
    # when one Prometheus loads both.
    alerts_matchers: str


_WEBPAAS = _Metrics(
    free_percent="webpaas_disk_free_percent",
    last_free_percent=(
        f"last_over_time(webpaas_disk_free_percent[{MISSING_DATA_GRACE}])"
    ),
    present="webpaas_disk_free_percent",
    size_bytes="webpaas_disk_size_bytes",
    readonly="webpaas_disk_readonly",
    error="webpaas_disk_error",
    join_labels="job, instance, service, mountpoint, device",
    subject="service {{ $labels.service }}",
    # Every series of this exporter has a non-empty service label, and
    # node_exporter series have none unless a target label adds it.
    alerts_matchers=', service!=""',
)

# The percentage is avail_bytes / size_bytes * 100 with the multiplication
# first. Byte counts below 2**53 are exact in float64, so one correctly
# rounded division gives exactly 7 for a disk at 7%. The other order gives
# 7.000000000000001, which misses the boundary at a threshold of 7.
# Newer node_exporter releases put the error text into a device_error label
# of the device_error series. The aggregation removes that label, so that
# DiskSpaceUnknown keeps the disk's labels.
_NODE = _Metrics(
    free_percent=(
        f"node_filesystem_avail_bytes{NODE_SELECTOR} * 100"
        f" / node_filesystem_size_bytes{NODE_SELECTOR}"
    ),
    last_free_percent=(
        f"last_over_time(node_filesystem_avail_bytes{NODE_SELECTOR}"
        f"[{MISSING_DATA_GRACE}]) * 100\n"
        f"/ last_over_time(node_filesystem_size_bytes{NODE_SELECTOR}"
        f"[{MISSING_DATA_GRACE}])"
    ),
    present=f"node_filesystem_avail_bytes{NODE_SELECTOR}",
    size_bytes=f"node_filesystem_size_bytes{NODE_SELECTOR}",
    readonly="node_filesystem_readonly",
    error=f"max without (device_error) (node_filesystem_device_error{NODE_SELECTOR})",
    join_labels="job, instance, device, mountpoint",
    subject="instance {{ $labels.instance }}",
    # NOTE: node_exporter targets may carry any target label, service
    # included, so no matcher keeps out the other file's disks. With both
    # files loaded, a down webpaas exporter's firing disks are held here too.
    alerts_matchers="",
)


def _metrics(source: Source) -> _Metrics:
    return _WEBPAAS if source is Source.WEBPAAS else _NODE


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.split("\n"))


def _previous_state(metrics: _Metrics, severity: str | None) -> str:
    """PromQL for the disks whose LowDiskSpace alert fired at the previous evaluation.

    The result carries the disk's labels only, so it joins one-to-one with
    the metric.
    """
    matchers = f'alertname="{ALERT_NAME}", '
    if severity is not None:
        matchers += f'severity="{severity}", '
    matchers += 'alertstate="firing"' + metrics.alerts_matchers
    return (
        "max without (alertname, alertstate, severity) (\n"
        f"  last_over_time(ALERTS{{{matchers}}}[{ALERTS_WINDOW}])\n"
        ")"
    )


def _threshold_filter(
    metrics: _Metrics,
    operator: str,
    percent: Decimal,
    size: int | None,
    margin: Decimal = Decimal(0),
) -> str:
    """PromQL that keeps the disks whose free percent compares true with a level."""
    if size is None:
        level = format_number(percent + margin)
        return f"{metrics.free_percent} {operator} {level}"

    # "percent or bytes, whichever is smaller" is one percentage per disk,
    # min(percent, 100 * bytes / size), and clamp_max takes that minimum.
    level = f"clamp_max({size} * 100 / {metrics.size_bytes}, {format_number(percent)})"
    if margin:
        # No brackets: "group_left (" would start a label list, and + binds
        # tighter than the comparison anyway.
        level = f"{level} + {format_number(margin)}"
    return (
        f"{metrics.free_percent}\n"
        f"  {operator} on ({metrics.join_labels}) group_left\n"
        f"  {level}"
    )


def _low_disk_expr(
    params: RuleParams, severity: str, percent: Decimal, size: int | None
) -> str:
    metrics = _metrics(params.source)
    previous = _previous_state(metrics, severity)
    fire = _threshold_filter(metrics, "<", percent, size)
    keep = _threshold_filter(metrics, "<=", percent, size, params.clear_margin)
    if params.clear_margin:
        keep_comment = (
            "# From the threshold up to the clear level: keep the previous state."
        )
    else:
        keep_comment = "# At exactly the threshold: keep the previous state."

    branches = [
        "# Below the threshold: fire.\n" + fire,
        f"{keep_comment}\n(\n{_indent(keep, 2)}\n  and\n{_indent(previous, 2)}\n)",
        f"# No sample now, but one within {MISSING_DATA_GRACE}: keep firing and\n"
        "# carry the last value.\n"
        f"(\n{_indent(metrics.last_free_percent, 2)}\n  and\n{_indent(previous, 2)}\n"
        f"  unless\n  {metrics.present}\n)",
        "# No sample because the exporter's target is down: keep firing, value\n"
        "# unknown (NaN).\n"
        f"(\n{_indent(previous, 2)} * NaN\n  and on (job, instance)\n  (up == 0)\n"
        f"  unless\n  {metrics.present}\n)",
        "# No sample because the mount is in error: keep firing, value unknown.\n"
        f"(\n{_indent(previous, 2)} * NaN\n  and on ({metrics.join_labels})\n"
        f"  ({metrics.error} == 1)\n  unless\n  {metrics.present}\n)",
    ]
    union = "\nor\n".join(_indent(branch, 2) for branch in branches)
    return (
        f"(\n{union}\n)\n"
        "# Read-only filesystems never alert.\n"
        f"unless on ({metrics.join_labels})\n({metrics.readonly} == 1)\n"
    )


def _level_sentence(params: RuleParams, severity: str) -> str:
    percent = params.warning if severity == "warning" else params.critical
    size = params.warning_bytes if severity == "warning" else params.critical_bytes
    if size is None:
        clear = format_number(percent + params.clear_margin)
        return (
            f"The {severity} level starts below {format_number(percent)}% and "
            f"clears above {clear}%."
        )
    sentence = (
        f"The {severity} level starts below {format_number(percent)}% or "
        f"{format_size(size)} available, whichever is smaller, and clears above "
        "that level"
    )
    if params.clear_margin:
        sentence += f" plus {format_number(params.clear_margin)} percentage points"
    return sentence + "."


def _low_disk_annotations(params: RuleParams, severity: str) -> dict[str, str]:
    subject = _metrics(params.source).subject
    where = f"{{{{ $labels.mountpoint }}}} ({{{{ $labels.device }}}}) of {subject}"
    # A disk held through a long gap has the value NaN (see _low_disk_expr).
    description = (
        '{{ if eq (printf "%.2f" $value) "NaN" }}'
        f"{where} has sent no data for over {MISSING_DATA_GRACE}, so the last "
        "level is kept."
        "{{ else }}"
        f'{where} has {{{{ printf "%.2f" $value }}}}% space available.'
        "{{ end }} " + _level_sentence(params, severity)
    )
    annotations = {
        "summary": (
            f"Low disk space ({severity}) on {subject}, {{{{ $labels.mountpoint }}}}"
        ),
        "description": description,
        "free_percent": '{{ printf "%.2f" $value }}',
        "runbook_url": params.runbook_url,
        "warning_threshold": format_number(params.warning),
        "critical_threshold": format_number(params.critical),
    }
    if params.warning_bytes is not None and params.critical_bytes is not None:
        annotations["warning_threshold_bytes"] = str(params.warning_bytes)
        annotations["critical_threshold_bytes"] = str(params.critical_bytes)
    return annotations


def _low_disk_rule(params: RuleParams, severity: str) -> dict[str, Any]:
    if severity == "warning":
        percent, size = params.warning, params.warning_bytes
    else:
        percent, size = params.critical, params.critical_bytes
    return {
        "alert": ALERT_NAME,
        "expr": _LiteralString(_low_disk_expr(params, severity, percent, size)),
        "labels": {"severity": severity},
        "annotations": _low_disk_annotations(params, severity),
    }


def _unknown_rule(params: RuleParams) -> dict[str, Any]:
    """Build the DiskSpaceUnknown rule.

    Its labels are the disk's labels plus ``severity``, like LowDiskSpace, so
    a receiver can match it to the disk. The cause is in the value instead:
    1 for a mount in error, 0 for a disk with no sample.
    """
    metrics = _metrics(params.source)
    where = (
        f"{{{{ $labels.mountpoint }}}} ({{{{ $labels.device }}}}) of {metrics.subject}"
    )
    # ALERTS carries a disk's labels past the grace period. It is read only
    # for targets that are down, because the error branch already covers a
    # level held for a mount in error. Reading it for every target would
    # also make the other rule file's firing disks unknown here.
    held_by_alerts = (
        "(\n"
        f"{_indent(_previous_state(metrics, None), 2)}\n"
        "  or\n"
        "  max without (alertname, alertstate, severity) (\n"
        f'    last_over_time(ALERTS{{alertname="{UNKNOWN_ALERT_NAME}"'
        f"{metrics.alerts_matchers}}}[{ALERTS_WINDOW}])\n"
        "  )\n"
        ")\n"
        "and on (job, instance)\n"
        "(up == 0)"
    )
    expr = (
        "# The exporter reports the mount in error: value 1.\n"
        f"({metrics.error} == 1)\n"
        "or\n"
        "# Disks without a sample now that were seen within the grace period,\n"
        "# or that LowDiskSpace or this alert holds while the exporter's target\n"
        "# is down: value 0.\n"
        "0 * (\n"
        f"  (\n{_indent(metrics.last_free_percent, 4)}\n    or\n"
        f"    (\n{_indent(held_by_alerts, 6)}\n    )\n  )\n"
        f"  unless\n  {metrics.present}\n)\n"
    )
    is_error = "{{ if eq $value 1.0 }}"
    description = (
        f"{is_error}The exporter cannot read the free space of {where}: statfs "
        "failed or timed out."
        f"{{{{ else }}}}No free-space sample for {where}: the exporter is down, "
        "the scrape fails or the mount is gone.{{ end }} LowDiskSpace keeps "
        "the last level of this disk while the exporter is down or the mount "
        f"is in error, and otherwise for {MISSING_DATA_GRACE} after the last "
        "sample."
    )
    return {
        "alert": UNKNOWN_ALERT_NAME,
        "expr": _LiteralString(expr),
        "for": UNKNOWN_FOR,
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": (
                f"Disk space unknown on {metrics.subject}, {{{{ $labels.mountpoint }}}}"
            ),
            "description": description,
            "reason": f"{is_error}mount_error{{{{ else }}}}no_data{{{{ end }}}}",
            "runbook_url": params.runbook_url,
        },
    }


class _LiteralString(str):
    """A string that YAML shows as a literal block, so PromQL keeps its lines."""


class _RuleDumper(yaml.SafeDumper):
    """A YAML dumper that indents lists under their key, as Prometheus docs do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_literal(dumper: yaml.SafeDumper, value: _LiteralString) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_RuleDumper.add_representer(_LiteralString, _represent_literal)


def render_rules(params: RuleParams) -> str:
    """Render the rule file for ``params`` as YAML text with a header comment."""
    group_name = {
        Source.WEBPAAS: "webpaas-disk",
        Source.NODE: "node-exporter-disk",
    }[params.source]
    document = {
        "groups": [
            {
                "name": group_name,
                "interval": EVALUATION_INTERVAL,
                "rules": [
                    _low_disk_rule(params, "warning"),
                    _low_disk_rule(params, "critical"),
                    _unknown_rule(params),
                ],
            }
        ]
    }
    body = yaml.dump(
        document,
        Dumper=_RuleDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    header = (
        f"# Generated by `{params.command()}`.\n"
        "# Do not edit: change the parameters and render again (docs/rules.md).\n"
    )
    return header + body
