import math

import numpy as np
import pytest

from laionet_bench.catalog import load_catalog
from laionet_bench.errors import ConfigError, UnknownNameError
from laionet_bench.rebuild.textsim import (
    caption_similarities,
    default_threshold,
    load_encoder,
    parse_encoder_name,
)

from .fakes.laion import make_tiny_openclip

LABRADOR, TENCH, YAWL, CHEESEBURGER, SPACE_SHUTTLE = "n02099712", "n01440764", "n04612504", "n07697313", "n04266014"


class CountingEncoder:
    """Deterministic bag-of-characters embeddings; records every text it is asked to embed."""

    name = "counting"

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        out = np.zeros((len(texts), 64), np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                out[i, ord(ch) % 64] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def test_distinct_captions_and_synset_texts_are_embedded_once():
    encoder = CountingEncoder()
    captions = ["a tench", "a tench", "my labrador", None, "a tench", float("nan"), "my labrador"]
    wnids = [TENCH, TENCH, LABRADOR, TENCH, TENCH, TENCH, LABRADOR]
    sims = caption_similarities(captions, wnids, encoder, chunk=2)
    caption_texts = [t for t in encoder.seen if t in ("a tench", "my labrador", "None")]
    assert sorted(caption_texts) == ["None", "a tench", "my labrador"]
    queries = [load_catalog().get(w).query for w in (LABRADOR, TENCH)]
    assert sorted(t for t in encoder.seen if t in queries) == sorted(queries)
    caption_similarities(["another tench"], [TENCH], encoder)  # synset text is cached on the encoder
    assert sum(t == queries[1] for t in encoder.seen) == 1
    assert sims.dtype == np.float32 and sims[0] == sims[1] == sims[4] and sims[3] == sims[5]
    expected = encoder.encode(["None"])[0] @ encoder.encode([queries[1]])[0]
    assert math.isclose(sims[3], expected, rel_tol=1e-5)  # NaN caption → "None", as the reference does


def test_tiny_openclip_text_tower(tmp_path):
    import open_clip
    import torch

    name = make_tiny_openclip(tmp_path / "tiny")
    encoder = load_encoder(name, device="cpu", batch_size=2)
    assert encoder.name == name and encoder.model.visual is None
    captions = ["a tench in a net", "a labrador puppy", "a tench in a net"]
    sims = caption_similarities(captions, [TENCH, LABRADOR, TENCH], encoder)
    model = open_clip.create_model(name.removeprefix("openclip:"))
    tokenizer = open_clip.get_tokenizer(name.removeprefix("openclip:"))
    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        query = torch.nn.functional.normalize(model.encode_text(tokenizer(
            [load_catalog().get(w).query for w in (TENCH, LABRADOR, TENCH)])), dim=-1)
    np.testing.assert_allclose(sims, (text * query).sum(-1).numpy(), atol=1e-5)


def test_minilm_scores_the_labrador_synset_highest():
    encoder = load_encoder("sentence-transformers:all-MiniLM-L6-v2", device="cpu")
    caption = "cute labrador puppy playing with a ball in the garden"
    others = [TENCH, YAWL, CHEESEBURGER, SPACE_SHUTTLE]
    sims = caption_similarities([caption] * 5, [LABRADOR, *others], encoder)
    assert sims[0] > 0.4
    assert (sims[0] > sims[1:] + 0.2).all()


def test_encoder_names_and_thresholds():
    assert parse_encoder_name("openclip:ViT-B-32/openai") == ("openclip", "ViT-B-32/openai")
    assert default_threshold("openclip:ViT-B-32/openai") == 0.82
    assert default_threshold("sentence-transformers:all-mpnet-base-v2") == 0.58
    assert default_threshold("sentence-transformers:all-MiniLM-L6-v2") is None
    with pytest.raises(UnknownNameError, match="openclip"):
        parse_encoder_name("open_clip:ViT-B-32/openai")
    with pytest.raises(ConfigError, match="KIND:NAME"):
        parse_encoder_name("ViT-B-32")


def test_progress_moves_per_chunk_of_rows_and_honours_the_switch(monkeypatch):
    """The rebuild's textsim bar advances as chunks of captions are embedded, not once per part; the CLI's
    -q / --no-progress switch disables every bar, even one a caller asks to show."""
    from laionet_bench import _progress
    from laionet_bench.rebuild import textsim

    class RecordingBar:
        def __init__(self, iterable=None, **kwargs):
            self.kwargs, self.updates = kwargs, []
            made.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.updates.append(n)

    made: list[RecordingBar] = []
    monkeypatch.setattr(textsim, "progress_bar", RecordingBar)
    captions = [f"caption {i}" for i in range(10)]
    caption_similarities(captions, [TENCH] * 10, CountingEncoder(), chunk=3, desc="textsim part-7")
    (bar,) = made
    assert bar.kwargs["desc"] == "textsim part-7" and bar.kwargs["total"] == 10 and bar.updates == [3, 3, 3, 1]
    _progress.set_progress(False)
    try:
        assert _progress.progress_bar(total=1, disable=False).disable
    finally:
        _progress.set_progress(True)
    assert not _progress.progress_bar(total=1, disable=False).disable
