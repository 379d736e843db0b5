"""docs/cni.md carries the tables rendered from the catalogue: docs cannot drift."""

from __future__ import annotations

from pathlib import Path

from bondctl.cni.docs import link_option_table, mode_list, option_table
from bondctl.options import OPTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "cni.md"


def test_doc_contains_the_generated_tables():
    text = DOC.read_text()
    assert option_table() in text, "regenerate the table: python -m bondctl.cni.docs"
    assert link_option_table() in text
    assert mode_list() in text


def test_table_lists_every_option_by_cni_key():
    table = option_table()
    for opt in OPTIONS.values():
        if opt.name != "mode":
            assert f"| `{opt.cni_key}` | {opt.name} |" in table


def test_doc_lists_the_fault_steps():
    from bondctl.cni.plugin import ADD_STEPS

    text = DOC.read_text()
    for step in ADD_STEPS:
        assert f"`{step}`" in text
