"""``webpaas rules:render``: render the low-disk alert rules for other thresholds.

Where the output goes:

- ``--output-dir DIR`` writes ``DIR/webpaas-disk.rules.yml`` and
  ``DIR/node-exporter-disk.rules.yml``, or only the file of ``--source``
  when it is given. ``webpaas rules:render --output-dir rules`` regenerates
  the shipped files.
- ``--output FILE`` writes the file of ``--source`` (default ``webpaas``).
- Without either, the file of ``--source`` (default ``webpaas``) is printed
  to standard output.

An invalid value prints one line naming the value and the fix and exits
with status 1; click's own usage errors (an unknown option) exit with 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from rules.render import (
    RenderError,
    RuleParams,
    Source,
    output_filename,
    parse_percent,
    parse_size,
    render_rules,
)


def _build_params(
    source: Source,
    warning: str,
    critical: str,
    warning_bytes: str | None,
    critical_bytes: str | None,
    clear_margin: str,
    runbook_base_url: str | None,
) -> RuleParams:
    return RuleParams(
        source=source,
        warning=parse_percent(warning, "--warning"),
        critical=parse_percent(critical, "--critical"),
        warning_bytes=(
            None
            if warning_bytes is None
            else parse_size(warning_bytes, "--warning-bytes")
        ),
        critical_bytes=(
            None
            if critical_bytes is None
            else parse_size(critical_bytes, "--critical-bytes")
        ),
        clear_margin=parse_percent(clear_margin, "--clear-margin"),
        runbook_base_url=runbook_base_url,
    )


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise click.ClickException(
            f"failed to write {path} ({error.strerror}): choose a writable path"
        ) from error
    click.echo(f"Wrote {path}")


@click.command()
@click.option(
    "--warning",
    metavar="PERCENT",
    default="20",
    show_default=True,
    help="Percent of available space below which the warning fires.",
)
@click.option(
    "--critical",
    metavar="PERCENT",
    default="10",
    show_default=True,
    help="Percent of available space below which the critical fires.",
)
@click.option(
    "--warning-bytes",
    metavar="SIZE",
    help=(
        "Also require available space below SIZE for the warning (the smaller "
        "of the percent and SIZE wins), e.g. 4GiB, 4GB, 500MiB. "
        "Needs --critical-bytes."
    ),
)
@click.option(
    "--critical-bytes",
    metavar="SIZE",
    help="The same for the critical level, e.g. 2GiB. Needs --warning-bytes.",
)
@click.option(
    "--clear-margin",
    metavar="POINTS",
    default="0",
    show_default=True,
    help=(
        "Percentage points above a threshold that a firing level needs before "
        "it clears; 0 clears at the first value above the threshold."
    ),
)
@click.option(
    "--source",
    type=click.Choice([source.value for source in Source]),
    help=(
        "Metrics to read: this project's exporter (webpaas) or node_exporter "
        "(node). Default: both with --output-dir, webpaas otherwise."
    ),
)
@click.option(
    "--runbook-base-url",
    metavar="URL",
    help=(
        "URL under which docs/runbooks/low-disk-space.md is served, used in "
        "the runbook_url annotation. Default: the relative path."
    ),
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rules of --source to this file.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the rule files under their shipped names into this directory.",
)
def rules_render(
    warning: str,
    critical: str,
    warning_bytes: str | None,
    critical_bytes: str | None,
    clear_margin: str,
    source: str | None,
    runbook_base_url: str | None,
    output_file: Path | None,
    output_dir: Path | None,
) -> None:
    """Render the LowDiskSpace alert rules for the given thresholds.

    `webpaas rules:render --output-dir rules` regenerates the shipped files.
    """
    if output_file is not None and output_dir is not None:
        raise click.ClickException(
            "--output and --output-dir exclude each other: give one of them"
        )

    if source is not None:
        sources = [Source(source)]
    elif output_dir is not None:
        sources = list(Source)
    else:
        sources = [Source.WEBPAAS]

    try:
        rendered = {
            selected: render_rules(
                _build_params(
                    selected,
                    warning,
                    critical,
                    warning_bytes,
                    critical_bytes,
                    clear_margin,
                    runbook_base_url,
                )
            )
            for selected in sources
        }
    except RenderError as error:
        raise click.ClickException(str(error)) from error

    if output_dir is not None:
        for selected, text in rendered.items():
            _write(output_dir / output_filename(selected), text)
    elif output_file is not None:
        _write(output_file, rendered[sources[0]])
    else:
        click.echo(rendered[sources[0]], nl=False)
