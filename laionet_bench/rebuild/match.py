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

import polars as pl
import pyarrow as pa

from ..catalog import LemmaMap, lemma_map

__all__ = ["LemmaMatcher", "MatchCounts", "normalize_captions"]

_PUNCTUATION = list(string.punctuation)
_SPACES = [" "] * len(_PUNCTUATION)


@dataclass
class MatchCounts:
    """What one matching pass saw."""

    rows: int = 0  # captions read
    matched: int = 0  # captions with at least one lemma
    multi_synset: int = 0  # of those, dropped because their lemmas name several wnids
    kept: int = 0  # single-synset captions passed on

    def add(self, other: MatchCounts) -> None:
        for name in ("rows", "matched", "multi_synset", "kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_captions(captions: pl.Expr, rules: str) -> pl.Expr:
    """The padded caption form each rule set searches (vectorised; nulls become "")."""
    text = captions.fill_null("").str.replace_many(_PUNCTUATION, _SPACES)
    if rules == "ours":  # == catalog.normalize_text, vectorised
        # r"\s\s+|[^\S ]" == r"\s+" → " ", but leaves single spaces alone (5x fewer replacements)
        text = text.str.to_lowercase().str.replace_all(r"\s\s+|[^\S ]", " ").str.strip_chars()
    return pl.concat_str([pl.lit(" "), text, pl.lit(" ")])


def _outermost(starts: list[int], found: list[str]) -> list[str]:
    """Drop matches whose span lies inside another match's span (longest match wins)."""
    spans = [(s, s + len(p), p) for s, p in zip(starts, found, strict=True)]
    return [p for s, e, p in spans if not any(s2 <= s and e <= e2 and (s2, e2) != (s, e) for s2, e2, _ in spans)]


class LemmaMatcher:
    """Lemma → wnid matching of caption batches under one rule set (``official`` or ``ours``)."""

    def __init__(self, rules: str = "official", *, lemmas: LemmaMap | None = None):
        self.lemmas = lemmas or lemma_map(rules)
        self.rules = self.lemmas.rules
        self.patterns = [f" {lemma} " for lemma in self.lemmas.lemma_to_wnid]
        self.pattern_wnid = {f" {lemma} ": wnid for lemma, wnid in self.lemmas.lemma_to_wnid.items()}

    def matches(self, captions: pl.Series) -> pl.DataFrame:
        """Per caption: ``position`` in the batch and ``wnids`` (sorted, unique) of the lemmas found.

        Only captions with at least one match are returned.
        """
        padded = pl.DataFrame({"c": captions}).select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("position"),
            normalize_captions(pl.col("c"), self.rules).alias("padded"),
        )
        found = padded.with_columns(
            pl.col("padded").str.extract_many(self.patterns, overlapping=True).alias("found")
        ).filter(pl.col("found").list.len() > 0)
        if self.rules == "ours":
            found = self._longest(found)
        return found.select(
            "position",
            pl.col("found")
            .list.eval(pl.element().replace_strict(self.pattern_wnid, return_dtype=pl.String))
            .list.unique()
            .list.sort()
            .alias("wnids"),
        )

    def _longest(self, found: pl.DataFrame) -> pl.DataFrame:
        several = found.filter(pl.col("found").list.len() > 1)
        if several.is_empty():
            return found
        starts = several.select(pl.col("padded").str.find_many(self.patterns, overlapping=True))
        resolved = [_outermost(s, f) for s, f in zip(starts.to_series(), several["found"], strict=True)]
        fixed = several.select("position").with_columns(pl.Series("found", resolved, dtype=pl.List(pl.String)))
        return found.update(fixed, on="position")

    def match_table(self, table: pa.Table) -> tuple[pa.Table, MatchCounts]:
        """Keep the single-synset rows of ``table`` (field ``caption``), adding their ``wnid``."""
        hits = self.matches(pl.from_arrow(table.column("caption")).alias("c"))
        single = hits.filter(pl.col("wnids").list.len() == 1)
        counts = MatchCounts(rows=table.num_rows, matched=hits.height, multi_synset=hits.height - single.height,
                             kept=single.height)
        positions = single["position"].to_arrow()
        kept = table.take(positions).append_column("wnid", single["wnids"].list.first().to_arrow().cast(pa.string()))
        return kept, counts
