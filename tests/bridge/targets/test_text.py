"""Escaping and truncation helpers: hostile text stays valid and notes what was cut."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.text import (
    ELLIPSIS,
    escape_slack,
    json_bytes,
    limit_items,
    scrub,
    truncate,
    truncate_escaped,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a & b", "a &amp; b"),
        ("<!channel>", "&lt;!channel&gt;"),  # a mention stays inert
        ("<https://x|y>", "&lt;https://x|y&gt;"),  # a link stays inert
        ("&amp;", "&amp;amp;"),  # already an entity: escaped again
        ("*_~`", "*_~`"),  # formatting characters have no escape in Slack
        ("tab\there\nline", "tab\there\nline"),
    ],
)
def test_escape_slack(text: str, expected: str) -> None:
    assert escape_slack(text) == expected


def test_scrub_replaces_lone_surrogate() -> None:
    scrubbed = scrub("a\ud800b\U0001f600")

    assert scrubbed == "a\ufffdb\U0001f600"
    assert scrubbed.encode("utf-8")


def test_truncate_keeps_short_text() -> None:
    assert truncate("short", 10) == "short"


def test_truncate_notes_left_out_characters() -> None:
    text = "x" * 100

    cut = truncate(text, 40)

    assert len(cut) == 40
    assert cut.endswith(f"{ELLIPSIS} and {100 - cut.index(ELLIPSIS)} more characters")


def test_truncate_never_splits_combining_sequence() -> None:
    text = "e\u0301" * 100  # "é" as e plus a combining acute accent

    cut = truncate(text, 51)
    kept = cut.split(ELLIPSIS)[0]

    assert len(kept) % 2 == 0
    assert not kept.endswith("e")


def test_truncate_never_splits_emoji_sequence() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # joined with ZWJ
    text = family * 50

    cut = truncate(text, 60)
    kept = cut.split(ELLIPSIS)[0]

    assert len(kept) % len(family) == 0
    assert len(cut) <= 60


def test_truncate_counts_code_points_not_bytes() -> None:
    text = "\U0001f4be" * 2000  # floppy disk emoji, 4 bytes in UTF-8

    cut = truncate(text, 1024)

    assert len(cut) <= 1024
    assert cut.encode("utf-8").decode("utf-8") == cut


def test_truncate_escaped_never_splits_entity() -> None:
    text = "&" * 1000

    cut = truncate_escaped(text, 100)
    kept = cut.split(ELLIPSIS)[0]

    assert len(cut) <= 100
    assert kept == "&amp;" * (len(kept) // 5)
    assert cut.endswith(f"and {1000 - len(kept) // 5} more characters")


def test_truncate_escaped_large_input_is_fast() -> None:
    cut = truncate_escaped("<" * 100_000, 3000)

    assert len(cut) <= 3000
    assert "more characters" in cut


def test_limit_items_notes_left_out() -> None:
    assert limit_items(["a", "b", "c", "d", "e"], 3, "labels") == [
        "a",
        "b",
        f"{ELLIPSIS} and 3 more labels",
    ]
    assert limit_items(["a", "b"], 3, "labels") == ["a", "b"]


def test_json_bytes_round_trips_hostile_text() -> None:
    value = {"k": 'quote " back \\ <&> _*` \n\t é 💾 \u2028'}

    encoded = json_bytes(value)

    assert json.loads(encoded) == value


# Characters that stress cutting: entities, markup, a combining accent, a
# zero-width joiner, an emoji with a variation selector and a skin tone.
HOSTILE = st.text(
    st.sampled_from([*"ab&<>_\n\t", "\u0301", "\u200d", "\U0001f4a5", "\ufe0f"])
    | st.sampled_from(["\U0001f3fb", "\u00e9"]),
    max_size=300,
)
NOTE = re.compile(f"{ELLIPSIS} and ([0-9]+) more characters$")


@settings(max_examples=300, deadline=None)
@given(HOSTILE, st.integers(min_value=0, max_value=200))
def test_truncate_fits_and_counts_exactly(text: str, limit: int) -> None:
    result = truncate(text, limit)

    if len(text) <= limit:
        assert result == text
        return
    assert len(result) <= limit
    note = NOTE.search(result)
    if note is not None:
        kept = result[: note.start()]
        assert text.startswith(kept)
        assert len(kept) + int(note[1]) == len(text)


@settings(max_examples=300, deadline=None)
@given(HOSTILE, st.integers(min_value=0, max_value=200))
def test_truncate_escaped_fits_whole_entities(text: str, limit: int) -> None:
    escaped = escape_slack(text)

    result = truncate_escaped(text, limit)

    if len(escaped) <= limit:
        assert result == escaped
        return
    assert len(result) <= limit
    note = NOTE.search(result)
    kept = result[: note.start()] if note is not None else result
    assert escaped.startswith(kept)
    assert not re.search(r"&[a-z]*$", kept)
