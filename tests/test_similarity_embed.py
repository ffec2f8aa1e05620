"""Sample selection and the resumable embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from laionet_bench.errors import ConfigError, DatasetError
from laionet_bench.similarity.embed import embed_selection
from laionet_bench.similarity.sampling import DatasetLike, reference_per_class, select_samples

from .fakes.datasets import ListDataset, PixelEncoder, clustered_images


def make_dataset(name="laionet", per_class=(5, 3, 4), broken=()):
    rng = np.random.default_rng(0)
    rows = []
    for c, n in enumerate(per_class):
        for i, image in enumerate(clustered_images(rng, n, spread=c % 2 == 1)):
            key = f"{name}-{c}-{i}"
            rows.append((key, f"n0000000{c}", None if key in broken else image))
    rng.shuffle(rows)  # interleaved classes: "listed order" is the list order, not grouped
    return ListDataset(name, rows)


def test_fake_dataset_satisfies_the_protocol():
    assert isinstance(make_dataset(), DatasetLike)


def test_reference_caps():
    assert reference_per_class("laionet") == 100 and reference_per_class("laionet:clip_top50") == 100
    assert reference_per_class("imagenet-val") is None and reference_per_class("imagenet-v2:matched-frequency") is None


def test_reference_mode_takes_the_first_listed_rows_per_class():
    ds = make_dataset()
    selection = select_samples(ds, name="laionet", per_class=2)
    listed = ds.samples()
    expected = []
    for wnid in ("n00000000", "n00000001", "n00000002"):
        expected += [s.key for s in listed if s.wnid == wnid][:2]
    assert sorted(selection.keys) == sorted(expected)
    assert selection.keys == [s.key for s in listed if s.key in set(expected)]  # listed order kept
    assert len(select_samples(ds, name="imagenet-val").keys) == 12  # no cap: everything


def test_random_mode_is_seeded_per_class():
    ds = make_dataset(per_class=(9, 9, 9))
    first = select_samples(ds, name="laionet", per_class=4, sample="random", seed=1)
    again = select_samples(ds, name="laionet", per_class=4, sample="random", seed=1)
    other = select_samples(ds, name="laionet", per_class=4, sample="random", seed=2)
    assert first.keys == again.keys and first.keys != other.keys
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    assert sorted(first.to_frame()["wnid"].value_counts().tolist()) == [4, 4, 4]
    smaller = ListDataset("laionet", [r for r in ds.rows if r[1] != "n00000002"])  # another class gone
    part = select_samples(smaller, name="laionet", per_class=4, sample="random", seed=1)
    assert part.keys == [k for k in first.keys if "-2-" not in k]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"sample": "first"}, ConfigError), ({"per_class": 0}, ConfigError),
])
def test_bad_selection_options(kwargs, error):
    with pytest.raises(error):
        select_samples(make_dataset(), name="laionet", **kwargs)


def test_duplicate_keys_are_refused():
    ds = make_dataset()
    ds.rows.append(ds.rows[0])
    with pytest.raises(DatasetError, match="not unique"):
        select_samples(ds, name="laionet")


def test_embeddings_are_unit_rows_and_failures_are_recorded(tmp_path):
    ds = make_dataset(broken={"laionet-0-1", "laionet-2-3"})
    selection = select_samples(ds, name="laionet")
    emb = embed_selection(ds, selection, PixelEncoder(), cache_root=tmp_path, chunk_size=4, batch_size=3, progress=False)
    assert len(emb.keys) == 10 and set(emb.failed["key"]) == {"laionet-0-1", "laionet-2-3"}
    assert emb.failed["error"].str.contains("OSError").all()
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    groups = emb.by_class()
    assert {w: len(v) for w, v in groups.items()} == {"n00000000": 4, "n00000001": 3, "n00000002": 3}
    assert len(list(emb.cache_dir.glob("chunk-*.npz"))) == 3


def test_interrupted_embedding_resumes_without_recomputing(tmp_path):
    ds = make_dataset(per_class=(10, 10, 10))
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
    ds.opened.clear()
    cached_encoder = PixelEncoder()
    embed_selection(ds, selection, cached_encoder, cache_root=tmp_path / "run", progress=False)
    assert cached_encoder.calls == 0 and ds.opened == []


def test_corrupt_chunk_is_embedded_again_and_other_selections_get_other_caches(tmp_path):
    ds = make_dataset()
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
