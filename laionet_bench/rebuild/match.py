"""Step 1 of the rebuild: find the ImageNet lemmas in LAION captions and keep single-synset captions.

The search is one multi-pattern Aho-Corasick pass per batch of captions (polars'
``str.extract_many``, Rust), never a Python loop over lemmas and never a regex alternation: see
``benchmarks/match_bench.py`` for the speed against both.

``official`` (SPEC §2.1, reproduced exactly)
    Caption: every ``string.punctuation`` character → space, one space padded at each end. Lemma:
    verbatim from the reference's class file, padded with one space at each end (punctuation kept).
    Match = padded lemma is a substring of the caption, case-sensitive. Hence lemmas with punctuation
    never match, and a lemma inside another class's lemma ("lion" in "sea lion") co-matches it, which
    makes the caption multi-synset.

``ours`` (documented improvement)
    Caption and lemmas in the :func:`~laionet_bench.catalog.normalize_text` form (lower case, ASCII
    punctuation → space, single spaces), so case does not matter and punctuated lemmas
    ("jack-o'-lantern") can match. Occurrences inside a longer matched lemma are ignored
    (longest match): "sea lion" is not also "lion", but "a lion and a sea lion" still names both.

Captions whose matches span more than one wnid are dropped; several lemmas of one wnid are fine.
"""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass
from typing import cast

import polars as pl
import pyarrow as pa

from ..catalog import LemmaMap, lemma_map

__all__ = ["LemmaMatcher", "MatchCounts", "normalize_captions"]

_PUNCTUATION = list(string.punctuation)
_SPACES = [" "] * len(_PUNCTUATION)
_PUNCT_CLASS = "".join(f"\\x{ord(c):02x}" for c in string.punctuation)
# str.split()'s whitespace: Unicode White_Space (regex \s) plus the separators \x1c-\x1f
_SPACE_CLASS = r"\s\x1c-\x1f"
# A run of punctuation/whitespace that is not already one plain space: one regex pass does
# "punctuation → space" and "collapse whitespace" while leaving the common single spaces untouched.
_SEPARATOR_RUN = (rf"[{_PUNCT_CLASS}{_SPACE_CLASS}]*[{_PUNCT_CLASS}[{_SPACE_CLASS}--[ ]]][{_PUNCT_CLASS}{_SPACE_CLASS}]*"
                  r"|  +")


@dataclass
class MatchCounts:
    """What one matching pass saw."""

    rows: int = 0  # captions read
    no_caption: int = 0  # of those, missing or blank (nothing to match: a wrong --text-col shows here)
    matched: int = 0  # captions with at least one lemma
    multi_synset: int = 0  # of those, dropped because their lemmas name several wnids
    kept: int = 0  # single-synset captions passed on

    def add(self, other: MatchCounts) -> None:
        for name in ("rows", "no_caption", "matched", "multi_synset", "kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_captions(captions: pl.Expr, rules: str) -> pl.Expr:
    """The padded caption form each rule set searches (vectorised; nulls become "")."""
    text = captions.fill_null("")
    if rules != "ours":
        return pl.concat_str([pl.lit(" "), text.str.replace_many(_PUNCTUATION, _SPACES), pl.lit(" ")])
    # == catalog.normalize_text; lower-cased after the punctuation is gone, as in normalize_text (the
    # final sigma depends on its neighbours)
    text = text.str.replace_all(_SEPARATOR_RUN, " ").str.strip_chars(" ").str.to_lowercase()
    return pl.concat_str([pl.lit(" "), text, pl.lit(" ")])


def _outermost(hits: pl.DataFrame) -> pl.DataFrame:
    """Drop the hits (one row each: ``position``, ``start``, ``end``) lying inside another hit's span.

    Longest match wins: sorted by start, then longest first, a hit is inside an earlier one iff its end
    does not pass the furthest end seen so far in its caption (spans of one caption are distinct).
    """
    reach = pl.col("end").cum_max().shift(1).over("position")
    return hits.sort("position", "start", pl.col("end"), descending=[False, False, True]).filter(
        reach.is_null() | (pl.col("end") > reach))


class LemmaMatcher:
    """Lemma → wnid matching of caption batches under one rule set (``official`` or ``ours``)."""

    def __init__(self, rules: str = "official", *, lemmas: LemmaMap | None = None):
        self.lemmas = lemmas or lemma_map(rules)
        self.rules = self.lemmas.rules
        self.patterns = [f" {lemma} " for lemma in self.lemmas.lemma_to_wnid]
        self.pattern_wnid = {f" {lemma} ": wnid for lemma, wnid in self.lemmas.lemma_to_wnid.items()}

    def matches(self, captions: pl.Series) -> pl.DataFrame:
        """Per caption: ``position`` in the batch and ``wnids`` (sorted, unique) of the lemmas found.

        Only captions with at least one match are returned, in batch order.
        """
        found = pl.DataFrame({"c": captions}).select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("position"),
            normalize_captions(pl.col("c"), self.rules).alias("padded"),
        ).with_columns(
            pl.col("padded").str.extract_many(self.patterns, overlapping=True).alias("found")
        ).filter(pl.col("found").list.len() > 0)
        hits = self._longest(found) if self.rules == "ours" else found.select("position", "found").explode("found")
        return hits.group_by("position", maintain_order=True).agg(
            pl.col("found").replace_strict(self.pattern_wnid, return_dtype=pl.String).unique().sort().alias("wnids")
        )

    def _longest(self, found: pl.DataFrame) -> pl.DataFrame:
        """One row per hit (``position``, ``found``) after dropping hits inside a longer one."""
        single = found.filter(pl.col("found").list.len() == 1).select("position", pl.col("found").list.first())
        several = found.filter(pl.col("found").list.len() > 1)
        if several.is_empty():
            return single
        spans = several.select(
            "position", "found", pl.col("padded").str.find_many(self.patterns, overlapping=True).alias("start")
        ).explode("found", "start").with_columns(end=pl.col("start") + pl.col("found").str.len_bytes())  # same hits, same order
        return pl.concat([single, _outermost(spans).select("position", "found")]).sort("position", maintain_order=True)

    def match_table(self, table: pa.Table) -> tuple[pa.Table, MatchCounts]:
        """Keep the single-synset rows of ``table`` (field ``caption``), adding their ``wnid``."""
        captions = cast(pl.Series, pl.from_arrow(table.column("caption"))).alias("c")  # a column: a Series
        hits = self.matches(captions)
        single = hits.filter(pl.col("wnids").list.len() == 1)
        blank = int((captions.is_null() | (captions.str.strip_chars() == "")).sum())
        counts = MatchCounts(rows=table.num_rows, no_caption=blank, matched=hits.height,
                             multi_synset=hits.height - single.height, kept=single.height)
        positions = single["position"].to_arrow()
        kept = table.take(positions).append_column("wnid", single["wnids"].list.first().to_arrow().cast(pa.string()))
        return kept, counts
