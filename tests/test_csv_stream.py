"""saas.csv_stream: cells that would run in a spreadsheet are written after an apostrophe (OWASP's list:
= + - @ tab CR), numbers stay numbers, and a stream of any length leaves a chunk per batch."""
from __future__ import annotations

import csv
import io

import pytest

from saas.csv_stream import inert, stream


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\")"])
def test_a_text_cell_that_starts_a_formula_is_written_as_text(text):
    assert inert(text) == "'" + text


@pytest.mark.parametrize("value, text", [(None, ""), (-5, "-5"), (3, "3"), (True, "true"), (False, "false"),
                                         ("plain", "plain"), ("a=b", "a=b"), ("", "")])
def test_other_cells_are_written_as_they_are(value, text):
    assert inert(value) == text


def test_a_stream_is_the_header_then_a_chunk_per_batch():
    chunks = list(stream(("a", "b"), ((i, f"-{i}") for i in range(5)), batch=2))
    assert len(chunks) == 4  # the header, then 2 + 2 + 1 rows
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert rows == [["a", "b"]] + [[str(i), f"'-{i}"] for i in range(5)]
    assert chunks[0] == "a,b\r\n"
