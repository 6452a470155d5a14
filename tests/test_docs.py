"""The documentation's tables of `ToMAConfig` defaults say what the code does."""

import ast
import dataclasses
from pathlib import Path

import pytest

from toma_fx import ToMAConfig
from toma_fx.config import REGION_KINDS

DOCS = Path(__file__).parents[1] / "docs"
FIELDS = {f.name for f in dataclasses.fields(ToMAConfig)}


def documented(page: str) -> dict[str, str]:
    """`field -> default` from the page's tables headed `| field | default | ...`."""
    rows, table = {}, []
    for line in [*(DOCS / page).read_text().splitlines(), ""]:
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
            continue
        if table and table[0][:2] == ["field", "default"]:
            rows.update({name.strip("`"): default for name, default, *_ in table[2:]})
        table = []
    return {name: default for name, default in rows.items() if name in FIELDS}


def value(text: str):
    return REGION_KINDS if text.startswith("all") else ast.literal_eval(text)


@pytest.mark.parametrize("page", ["api.md", "compiler.md", "schedule.md"])
def test_documented_defaults_are_the_configs(page):
    rows = documented(page)
    defaults = ToMAConfig()
    assert len(rows) >= 8, rows
    wrong = {name: text for name, text in rows.items() if value(text) != getattr(defaults, name)}
    assert not wrong, f"{page} documents {wrong}; the code has {[getattr(defaults, n) for n in wrong]}"
