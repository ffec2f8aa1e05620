"""Sample selection and the resumable embedding cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.datasets import create_dataset
from laionet_bench.errors import ConfigError, DatasetError
from laionet_bench.similarity.embed import embed_selection
from laionet_bench.similarity.sampling import DatasetLike, reference_per_class, select_samples

from .fakes.similarity import PixelEncoder, clustered_images, imagenet_val, write_laionet

WNIDS = load_catalog().wnids[:3]


def make_rows(per_class=(5, 3, 4), broken=(), missing=()):
    """(wnid, image) rows with classes interleaved ("listed order" is the row order, not grouped by class).

    ``broken`` / ``missing`` hold (class number, image number): an unreadable file / no file at all.
    """
    rng = np.random.default_rng(0)
    rows = []
    for c, n in enumerate(per_class):
        for i, image in enumerate(clustered_images(rng, n, spread=c % 2 == 1)):
            entry = b"broken" if (c, i) in broken else None if (c, i) in missing else image
            rows.append(((c, i), WNIDS[c], entry))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def make_dataset(folder, per_class=(5, 3, 4), broken=(), missing=(), **options):
    """A real LAIONet dataset; also returns {(class number, image number): key}."""
    rows = make_rows(per_class, broken, missing)
    index, images, keys = write_laionet(folder, [(wnid, entry) for _, wnid, entry in rows])
    ds = create_dataset("laionet", index=index, images=images, **options)
    return ds, dict(zip([ci for ci, _, _ in rows], keys, strict=True))


def test_real_datasets_satisfy_the_protocol(tmp_path):
    assert isinstance(make_dataset(tmp_path)[0], DatasetLike)


def test_reference_caps():
    assert reference_per_class("laionet") == 100 and reference_per_class("laionet:clip_top50") == 100
    assert reference_per_class("imagenet-val") is None and reference_per_class("imagenet-v2:matched-frequency") is None


def test_reference_mode_takes_the_first_listed_rows_per_class(tmp_path):
    ds, _ = make_dataset(tmp_path)
    selection = select_samples(ds, name="laionet", per_class=2)
    listed = ds.listed_rows()
    expected = listed[listed.groupby("wnid").cumcount() < 2]["key"].tolist()
    assert selection.keys == expected and len(expected) == 6  # listed order kept
    assert [s.key for s in selection.samples] == expected and not selection.missing
    assert len(select_samples(ds, name="imagenet-val").keys) == 12  # no cap: everything


def test_reference_mode_counts_failed_downloads_among_the_first_listed(tmp_path):
    """As the reference: the class's list is cut first, then failed downloads drop out (no refill)."""
    ds, keys = make_dataset(tmp_path, per_class=(5, 3, 4), missing={(0, 0), (0, 1)})
    assert ds.n_failed == 2 and len(ds) == 10
    listed = ds.listed_rows()
    assert listed["key"].tolist() == ds.listing["key"].tolist()  # index order, failed rows included
    first_three = listed[listed["wnid"] == WNIDS[0]]["key"].tolist()[:3]
    selection = select_samples(ds, name="laionet", per_class=3)
    assert [k for k, w in selection.missing] == [k for k in first_three if k in {keys[0, 0], keys[0, 1]}]
    chosen = [s.key for s in selection.samples if s.wnid == WNIDS[0]]
    assert chosen == [k for k in first_three if k not in {keys[0, 0], keys[0, 1]}]
    assert len(selection) == 9 and selection.describe()["n_missing"] == len(selection.missing)
    frame = selection.to_frame()
    assert frame["has_image"].sum() == len(selection.samples) and set(frame.columns) == {"dataset", "key", "wnid", "has_image"}


def test_limits_on_the_dataset_do_not_turn_into_failures(tmp_path):
    ds, _ = make_dataset(tmp_path, limit_per_class=2)
    listed = ds.listed_rows()
    assert (listed["position"] >= 0).all() and listed.groupby("wnid").size().tolist() == [2, 2, 2]
    assert not select_samples(ds, name="laionet").missing


def test_imagenet_listing_is_its_samples(tmp_path):
    rng = np.random.default_rng(1)
    ds = imagenet_val(tmp_path, [(w, img) for w in WNIDS for img in clustered_images(rng, 2, spread=True)])
    listed = ds.listed_rows()
    assert listed["position"].tolist() == list(range(6)) and listed["key"].tolist() == ds.table["key"].tolist()


def test_random_mode_is_seeded_per_class(tmp_path):
    ds, _ = make_dataset(tmp_path / "all", per_class=(9, 9, 9))
    first = select_samples(ds, name="laionet", per_class=4, sample="random", seed=1)
    again = select_samples(ds, name="laionet", per_class=4, sample="random", seed=1)
    other = select_samples(ds, name="laionet", per_class=4, sample="random", seed=2)
    assert first.keys == again.keys and first.keys != other.keys
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    assert sorted(first.to_frame()["wnid"].value_counts().tolist()) == [4, 4, 4]
    smaller, _ = make_dataset(tmp_path / "two", per_class=(9, 9, 9), classes=WNIDS[:2])  # another class gone
    part = select_samples(smaller, name="laionet", per_class=4, sample="random", seed=1)
    assert part.keys == [s.key for s in first.samples if s.wnid != WNIDS[2]]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"sample": "first"}, ConfigError), ({"per_class": 0}, ConfigError),
])
def test_bad_selection_options(tmp_path, kwargs, error):
    with pytest.raises(error):
        select_samples(make_dataset(tmp_path)[0], name="laionet", **kwargs)


def test_duplicate_keys_are_refused(tmp_path):
    ds = imagenet_val(tmp_path, [(WNIDS[0], clustered_images(np.random.default_rng(0), 1, spread=True)[0])])
    ds.table = pd.concat([ds.table, ds.table], ignore_index=True)
    with pytest.raises(DatasetError, match="not unique"):
        select_samples(ds, name="imagenet-val")


def test_embeddings_are_unit_rows_and_failures_are_recorded(tmp_path):
    ds, keys = make_dataset(tmp_path / "data", broken={(0, 1), (2, 3)})
    selection = select_samples(ds, name="laionet")
    emb = embed_selection(ds, selection, PixelEncoder(), cache_root=tmp_path, chunk_size=4, batch_size=3, progress=False)
    assert len(emb.keys) == 10 and set(emb.failed["key"]) == {keys[0, 1], keys[2, 3]}
    assert emb.failed["error"].str.startswith("UnidentifiedImageError").all()  # an OSError: recorded, not fatal
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    groups = emb.by_class()
    assert {w: len(v) for w, v in groups.items()} == {WNIDS[0]: 4, WNIDS[1]: 3, WNIDS[2]: 3}
    assert len(list(emb.cache_dir.glob("chunk-*.npz"))) == 3


def test_interrupted_embedding_resumes_without_recomputing(tmp_path, monkeypatch):
    ds, _ = make_dataset(tmp_path / "data", per_class=(10, 10, 10))
    selection = select_samples(ds, name="laionet")
    reference = PixelEncoder()
    full = embed_selection(ds, selection, reference, cache_root=tmp_path / "ref", chunk_size=4, batch_size=2,
                           progress=False)
    assert reference.calls == 7 * 2 + 1  # 30 rows: 7 chunks of 4 (2 batches each) + one of 2
    crashing = PixelEncoder(fail_after_calls=5)  # dies inside chunk 3 (2 calls per chunk of 4 rows)
    with pytest.raises(KeyboardInterrupt):
        embed_selection(ds, selection, crashing, cache_root=tmp_path / "run", chunk_size=4, batch_size=2, progress=False)
    folder = next((tmp_path / "run").iterdir())
    assert len(list(folder.glob("chunk-*.npz"))) == 2 and not list(folder.glob(".*.tmp"))
    resumed_encoder = PixelEncoder()
    resumed = embed_selection(ds, selection, resumed_encoder, cache_root=tmp_path / "run", chunk_size=64,
                              batch_size=2, progress=False)  # another chunk size: the stored one wins
    assert resumed_encoder.calls == 15 - 4  # the 2 finished chunks (4 calls) are not redone
    assert resumed.keys == full.keys
    np.testing.assert_allclose(resumed.vectors, full.vectors)
    opened = []
    monkeypatch.setattr(ds, "open", lambda sample: opened.append(sample.key))
    cached_encoder = PixelEncoder()
    embed_selection(ds, selection, cached_encoder, cache_root=tmp_path / "run", progress=False)
    assert cached_encoder.calls == 0 and opened == []


def test_corrupt_chunk_is_embedded_again_and_other_selections_get_other_caches(tmp_path):
    ds, _ = make_dataset(tmp_path / "data")
    selection = select_samples(ds, name="laionet")
    emb = embed_selection(ds, selection, PixelEncoder(), cache_root=tmp_path, chunk_size=4, progress=False)
    (emb.cache_dir / "chunk-000001.npz").write_bytes(b"not a zip")
    encoder = PixelEncoder()
    again = embed_selection(ds, selection, encoder, cache_root=tmp_path, chunk_size=4, progress=False)
    assert encoder.calls == 1
    np.testing.assert_allclose(again.vectors, emb.vectors)
    smaller = embed_selection(ds, select_samples(ds, name="laionet", per_class=2), PixelEncoder(), cache_root=tmp_path,
                              progress=False)
    assert smaller.cache_dir != emb.cache_dir and len(smaller.keys) == 6


@pytest.mark.parametrize("progress", [True, False])
def test_embedding_bar_moves_per_batch_and_progress_false_disables_it(tmp_path, monkeypatch, progress):
    from laionet_bench.similarity import embed

    bars = []

    class Recorder:
        def __init__(self, *args, disable=False, **kwargs):
            self.disable, self.updates = disable, []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr(embed, "progress_bar", Recorder)
    ds, _ = make_dataset(tmp_path / "data")
    selection = select_samples(ds, name="laionet")
    embed_selection(ds, selection, PixelEncoder(), cache_root=tmp_path, chunk_size=1024, batch_size=3, progress=progress)
    (bar,) = bars
    assert bar.disable is (not progress)
    assert sum(bar.updates) == len(selection.samples) and len([n for n in bar.updates if n]) > 1  # one chunk, many batches
