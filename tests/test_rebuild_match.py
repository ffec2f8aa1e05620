import random
import string

import polars as pl
import pyarrow as pa

from laionet_bench.catalog import LemmaMap, lemma_map, normalize_text
from laionet_bench.rebuild.match import LemmaMatcher, normalize_captions

OFFICIAL = lemma_map("official").lemma_to_wnid
PUNCT_LEMMAS = sorted(lemma for lemma in OFFICIAL if any(c in string.punctuation for c in lemma))


def reference_wnids(caption):
    """The reference's method, verbatim from SPEC §2.1: every padded lemma tested with ``in``."""
    if caption is None:
        return set()
    padded = " " + caption.translate(str.maketrans({c: " " for c in string.punctuation})) + " "
    return {wnid for lemma, wnid in OFFICIAL.items() if f" {lemma} " in padded}


def wnids_of(matcher, captions):
    hits = matcher.matches(pl.Series("c", captions, dtype=pl.String))
    found = {row["position"]: set(row["wnids"]) for row in hits.to_dicts()}
    return [found.get(i, set()) for i in range(len(captions))]


def synthetic_captions(n, seed=0):
    rng = random.Random(seed)
    lemmas = list(OFFICIAL)
    fillers = ["a photo of", "my", "cute", "on the beach", "for sale", "vintage", "|", "-", "(2019)", "—", "LOL"]
    out = []
    for _ in range(n):
        words = [rng.choice(fillers) for _ in range(rng.randint(0, 4))]
        for _ in range(rng.randint(0, 2)):
            lemma = rng.choice(lemmas)
            words.insert(rng.randint(0, len(words)), rng.choice([lemma, lemma.lower(), lemma.upper(), lemma + ","]))
        sep = rng.choice([" ", " ", "  ", ", ", "-", "\t"])
        out.append(sep.join(words))
    return out


def test_official_equals_the_reference_method_on_synthetic_captions():
    captions = synthetic_captions(3000) + [None, "", "   "]
    assert wnids_of(LemmaMatcher("official"), captions) == [reference_wnids(c) for c in captions]


def test_punctuation_lemmas_never_match_under_official_rules():
    assert len(PUNCT_LEMMAS) > 50  # "jack-o'-lantern", "R.V.", "three-toed sloth", ...
    only_punct = LemmaMap("official", {lemma: OFFICIAL[lemma] for lemma in PUNCT_LEMMAS})
    captions = [f"a {lemma} here" for lemma in PUNCT_LEMMAS] + list(PUNCT_LEMMAS)
    assert wnids_of(LemmaMatcher(lemmas=only_punct), captions) == [set()] * len(captions)
    ours = wnids_of(LemmaMatcher("ours"), [f"a {lemma} here" for lemma in PUNCT_LEMMAS])
    assert sum(OFFICIAL[lemma] in found for lemma, found in zip(PUNCT_LEMMAS, ours, strict=True)) > 0.9 * len(PUNCT_LEMMAS)


def test_shadowed_lemma_drops_official_but_not_ours():
    captions = ["a sea lion on the rocks", "a lion and a sea lion"]
    table = pa.table({"row_id": pa.array([0, 1], pa.int64()), "caption": captions})
    kept, counts = LemmaMatcher("official").match_table(table)
    assert (counts.matched, counts.multi_synset, counts.kept) == (2, 2, 0)
    kept, counts = LemmaMatcher("ours").match_table(table)
    assert kept.column("wnid").to_pylist() == [OFFICIAL["sea lion"]]  # the second names both, still dropped
    assert (counts.matched, counts.multi_synset, counts.kept) == (2, 1, 1)


def test_case_sensitivity():
    captions = ["Granny Smith apples", "granny smith apples", "GRANNY SMITH"]
    wnid = OFFICIAL["Granny Smith"]
    assert wnids_of(LemmaMatcher("official"), captions) == [{wnid}, set(), set()]
    assert wnids_of(LemmaMatcher("ours"), captions) == [{wnid}] * 3


def test_same_wnid_via_several_lemmas_is_kept_and_nan_never_matches():
    table = pa.table({"row_id": pa.array([5, 6, 7], pa.int64()),
                      "caption": ["tench aka Tinca tinca", None, "tench, goldfish"]})
    kept, counts = LemmaMatcher("official").match_table(table)
    assert kept.column("row_id").to_pylist() == [5]
    assert kept.column("wnid").to_pylist() == [OFFICIAL["tench"]]
    assert (counts.rows, counts.matched, counts.multi_synset) == (3, 2, 1)


def test_ours_caption_form_equals_normalize_text():
    rng = random.Random(1)
    alphabet = string.printable + "ÉİΣßàü\u00a0"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(2000)]
    padded = pl.DataFrame({"c": texts}).select(normalize_captions(pl.col("c"), "ours")).to_series().to_list()
    assert padded == [f" {normalize_text(t)} " for t in texts]


OURS = lemma_map("ours").lemma_to_wnid


def ours_reference_wnids(caption):
    """``ours`` spelled out slowly: every occurrence of every padded lemma, minus those inside a longer one."""
    text = f" {normalize_text(caption or '')} "
    spans = []
    for lemma, wnid in OURS.items():
        start = text.find(f" {lemma} ")
        while start >= 0:
            spans.append((start, start + len(lemma) + 2, wnid))
            start = text.find(f" {lemma} ", start + 1)
    return {w for s, e, w in spans if not any(s2 <= s and e <= e2 and (s2, e2) != (s, e) for s2, e2, _ in spans)}


def test_ours_longest_match_equals_the_slow_definition():
    captions = synthetic_captions(1500, seed=2) + ["ÉÉ sea lion, lion", "Σ a lion and a sea lion", None]
    assert wnids_of(LemmaMatcher("ours"), captions) == [ours_reference_wnids(c) for c in captions]


def test_ours_nested_and_repeated_lemmas():
    lion, sea_lion = OURS["lion"], OURS["sea lion"]
    captions = ["ééé sea lion", "sea lion sea lion", "lion sea lion lion", "sea-lion; LION"]
    assert wnids_of(LemmaMatcher("ours"), captions) == [{sea_lion}, {sea_lion}, {lion, sea_lion}, {lion, sea_lion}]


def test_ours_separators_are_those_of_str_split():
    texts = ["a\x1cb", "a\x1f\x1fb", "\x1e x \x1d", "a\u2003\u00a0b", "a\x85,b"]
    padded = pl.DataFrame({"c": texts}).select(normalize_captions(pl.col("c"), "ours")).to_series().to_list()
    assert padded == [" a b ", " a b ", " x ", " a b ", " a b "] == [f" {normalize_text(t)} " for t in texts]
