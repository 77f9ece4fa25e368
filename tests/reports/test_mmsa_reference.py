"""experiments/mmsa's reference cells against MMSA's table itself (thuiar/MMSA
results/result-stat.md at 698bae0), when a copy of that file is at hand."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

TABLE = REPO.parent / "shared" / "references" / "mmsa" / "mmsa_result-stat_698bae0.md"
COLUMNS = ["acc2_has0", "f1_has0", "acc2", "f1", "acc5", "acc7", "mae", "corr"]
MODELS = {"early": "ef_lstm", "late": "lf_dnn", "tensor": "tfn", "lowrank": "lmf"}


def regression_rows(text: str) -> dict[tuple[str, str], list[float]]:
    """(data, model) -> the eight numbers of the "Regression" tables, as fractions."""
    rows, data = {}, None
    for line in text.split("## Classification")[0].splitlines():
        item = line.strip()
        if item.startswith("- "):
            data = item[2:].lower() if item[2:] in ("MOSI", "MOSEI") else None
        elif data and item.startswith("|") and not item.startswith("| Model") and set(item) - set("|-: "):
            cells = [c.strip() for c in item.strip("|").split("|")]
            rows[(data, cells[0])] = [float(c) / 100 for c in cells[1:9]]
    return rows


@pytest.mark.skipif(not TABLE.exists(), reason=f"needs MMSA's table at {TABLE}")
def test_every_mmsa_cell_is_the_number_of_mmsa_newest_table():
    rows = regression_rows(TABLE.read_text())
    spec = yaml.safe_load((REPO / "experiments" / "mmsa" / "study.yaml").read_text())
    cells = spec["reference"]["cells"]
    assert len(cells) == 64 and "698bae04263663296d07cf77b6a16174b7b1e7a9" in spec["reference"]["source"]
    for cell in cells:
        data = cell["where"]["data"].removesuffix("_unaligned")
        expected = rows[(data, MODELS[cell["where"]["fusion"]])][COLUMNS.index(cell["metric"].split("/")[1])]
        assert cell["value"] == pytest.approx(expected, abs=1e-9), cell["citation"]
        assert cell.get("checked", True)
