"""Cache keys from content: a source rewritten in place, or a setting that changes the prepared
data, is a new cache entry; an untouched source is hashed once."""

from __future__ import annotations

import os
from pathlib import Path

import datasets
from fixtures_data import write_reviews

from fuselab.data import sources
from fuselab.data.datasets.hf import HFDataModule
from fuselab.data.sources import content_stamp


def module(root: Path, cache: Path, **kwargs) -> HFDataModule:
    columns = {"stats": {"column": "stats", "kind": "vector"}}
    return HFDataModule(str(root), columns=columns, target_column="label", cache_dir=str(cache), **kwargs)


def test_a_split_rewritten_in_place_within_the_same_second_is_prepared_again(tmp_path: Path):
    root = write_reviews(tmp_path / "reviews")
    first = module(root, tmp_path / "cache")
    first.setup()
    before, prepared = list(first.splits["test"]["label"]), first.prepared_dir()
    test_file = root / "test.parquet"
    st = test_file.stat()
    flipped = datasets.Dataset.from_parquet(str(test_file)).map(lambda r: {"label": 1 - r["label"]})
    flipped.to_parquet(str(test_file))
    os.utime(test_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old timestamp, to the nanosecond
    again = module(root, tmp_path / "cache")
    assert again.prepared_dir() != prepared
    again.setup()
    assert list(again.splits["test"]["label"]) == [1 - v for v in before]


def test_num_outputs_is_part_of_the_key(tmp_path: Path):
    root = write_reviews(tmp_path / "reviews")
    inferred, three = module(root, tmp_path / "cache"), module(root, tmp_path / "cache", num_outputs=3)
    assert inferred.prepared_dir() != three.prepared_dir()
    assert inferred.describe().target.num_outputs == 2 and three.describe().target.num_outputs == 3


def test_digests_are_remembered_until_the_file_changes(tmp_path: Path, monkeypatch):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 100)
    (folder / "b.bin").write_bytes(b"b" * 100)
    stamp = content_stamp(folder, tmp_path / "cache")
    assert stamp[1] == 2 and (tmp_path / "cache" / sources.MEMO).is_file()
    reads = []
    real_open = open
    monkeypatch.setattr(sources, "open", lambda p, mode="r": reads.append(Path(p).name) or real_open(p, mode), False)
    sources._memo.clear()
    sources._loaded.clear()
    assert content_stamp(folder, tmp_path / "cache") == stamp  # from the memo file: nothing read
    assert reads == []
    (folder / "b.bin").write_bytes(b"c" * 100)  # same size, new bytes
    changed = content_stamp(folder, tmp_path / "cache")
    assert changed != stamp and reads == ["b.bin"]
    assert content_stamp(tmp_path / "missing") == [str(tmp_path / "missing")]
