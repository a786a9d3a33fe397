"""Text from labels and annotations made safe for each target format.

Labels and annotations are free text: quotes, brackets, ``<``, ``&``,
``_``, newlines, tabs and any Unicode, including lone surrogates that a
JSON ``\\ud800`` escape can produce. These helpers make such text valid
(`scrub`), inert in Slack markup (`escape_slack`) and short enough for a
target's limits (`truncate`, `truncate_escaped`, `limit_items`), always
cutting between characters and saying what was left out.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

ELLIPSIS = "\u2026"
_ZERO_WIDTH_JOINER = "\u200d"

# Slack treats &, < and > as control characters in message text, so they
# must be sent as the HTML entities &amp; &lt; &gt;.
_SLACK_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def scrub(text: str) -> str:
    """Replace lone surrogates with U+FFFD so the text encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # surrogatepass joins valid pairs; lone halves then become U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def json_bytes(value: Any) -> bytes:
    """Serialize ``value`` as compact UTF-8 JSON, the exact bytes to send."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def escape_slack(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack, after scrubbing.

    This also disarms ``<!channel>``-style mentions and ``<url|label>``
    links inside label values. Formatting characters (``*``, ``_``, ``~``,
    backticks) have no escape in Slack markup. The Slack target keeps them
    harmless instead: label text goes only into ``plain_text`` objects, and
    the fallback text is sent with ``mrkdwn`` off.
    """
    return "".join(_SLACK_ENTITIES.get(char, char) for char in scrub(text))


def _is_cut_point(text: str, index: int) -> bool:
    """Return whether cutting before ``text[index]`` keeps visible characters whole.

    A combining mark, variation selector, emoji skin-tone modifier or a
    zero-width joiner belongs to the character before it (a rough
    approximation of Unicode grapheme clusters, UAX #29).
    """
    if index <= 0 or index >= len(text):
        return True
    following = text[index]
    previous = text[index - 1]
    if _ZERO_WIDTH_JOINER in (following, previous):
        return False
    code_point = ord(following)
    return not (
        unicodedata.combining(following)
        or 0xFE00 <= code_point <= 0xFE0F
        or 0x1F3FB <= code_point <= 0x1F3FF
        or 0xE0020 <= code_point <= 0xE007F
    )


def _cut(text: str, index: int) -> int:
    while index > 0 and not _is_cut_point(text, index):
        index -= 1
    return index


def truncate(text: str, limit: int, unit: str = "characters") -> str:
    """Shorten ``text`` to at most ``limit`` characters, noting what was cut.

    The result ends with ``"… and N more characters"`` when text was left
    out. If ``limit`` is too small for the note, the text is cut hard.
    """
    text = scrub(text)
    if len(text) <= limit:
        return text
    keep = limit
    for _ in range(3):
        # The note's length depends on N, which depends on what is kept.
        note = f"{ELLIPSIS} and {len(text) - keep} more {unit}"
        keep = _cut(text, max(limit - len(note), 0))
    note = f"{ELLIPSIS} and {len(text) - keep} more {unit}"
    if len(note) > limit:
        return text[: _cut(text, limit)]
    return text[:keep] + note


def truncate_escaped(text: str, limit: int) -> str:
    """Escape ``text`` for Slack and keep the result within ``limit`` characters.

    Never cuts inside an entity such as ``&amp;``; the note counts the
    characters of the original text that were left out.
    """
    original = scrub(text)
    escaped = escape_slack(original)
    if len(escaped) <= limit:
        return escaped

    # The note at its maximum length, so that the real one always fits.
    longest_note = f"{ELLIPSIS} and {len(original)} more characters"
    budget = max(limit - len(longest_note), 0)
    used = 0
    kept = 0
    for char in original:
        width = len(_SLACK_ENTITIES.get(char, char))
        if used + width > budget:
            break
        used += width
        kept += 1
    kept = _cut(original, kept)

    prefix = escape_slack(original[:kept])
    if len(longest_note) > limit:
        return prefix
    return f"{prefix}{ELLIPSIS} and {len(original) - kept} more characters"


def limit_items(items: Sequence[str], limit: int, unit: str) -> list[str]:
    """Keep at most ``limit`` items, the last one a note counting those left out.

    For example five labels with ``limit=3`` give two labels and
    ``"… and 3 more labels"``.
    """
    if len(items) <= limit:
        return list(items)
    if limit <= 0:
        return []
    kept = list(items[: limit - 1])
    return [*kept, f"{ELLIPSIS} and {len(items) - len(kept)} more {unit}"]
