"""Steps 3 and 5 of the rebuild: keep safe, similar-enough rows; and the top-N-per-class variant.

SPEC §2.5: keep ``NSFW == "UNLIKELY"`` only (exact string; "UNSURE", "NSFW", missing values all go)
and similarity *strictly* greater than the threshold (0.82 itself is dropped). Re-LAION-5B has no tag
but a probability, ``punsafe``: there the rule is ``punsafe <= max_punsafe`` (missing values go). Rows whose URL no
downloader can fetch (not ``http(s)://host``) are dropped and counted too: the index refuses them. SPEC §2.7: per class,
the N highest-similarity rows after dropping OCR-flagged rows (ties broken by the lower row id, so
the result does not depend on part order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..index.schema import web_urls

__all__ = ["NSFW_KEEP", "SelectCounts", "select_rows", "top_per_class"]

NSFW_KEEP = "UNLIKELY"


@dataclass
class SelectCounts:
    """What the selection dropped and kept."""

    rows: int = 0  # single-synset rows in
    nsfw_dropped: int = 0  # NSFW tag other than UNLIKELY, or punsafe above the limit (missing included)
    below_threshold: int = 0  # safe rows with similarity <= threshold
    bad_url: int = 0  # safe, similar rows whose URL is not http(s)://host
    kept: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def select_rows(frame: pd.DataFrame, *, threshold: float, nsfw_filter: bool = True,
                max_punsafe: float | None = None) -> tuple[pd.DataFrame, SelectCounts]:
    """Rows of ``frame`` (columns ``nsfw``, ``similarity``) that pass the NSFW filter and the threshold.

    ``nsfw_filter=False`` is for caption datasets without an NSFW tag. ``max_punsafe`` adds the rule on the
    probability column ``x_punsafe`` (Re-LAION's ``punsafe``): rows at or below it pass.
    """
    safe = np.ones(len(frame), bool)
    if nsfw_filter:
        safe &= frame["nsfw"].eq(NSFW_KEEP).fillna(False).to_numpy(bool)
    if max_punsafe is not None:
        safe &= (pd.to_numeric(frame["x_punsafe"]) <= max_punsafe).fillna(False).to_numpy(bool)
    similar = frame["similarity"].to_numpy() > threshold
    web = web_urls(frame["url"])
    keep = safe & similar & web
    counts = SelectCounts(rows=len(frame), nsfw_dropped=int((~safe).sum()),
                          below_threshold=int((safe & ~similar).sum()), bad_url=int((safe & similar & ~web).sum()),
                          kept=int(keep.sum()))
    return frame[keep].reset_index(drop=True), counts


def top_per_class(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per wnid, the ``n`` highest-similarity rows among rows not OCR-flagged (row-id order out)."""
    clean = frame[~frame["ocr_flag"].to_numpy(bool)]
    ranked = clean.sort_values(["wnid", "similarity", "row_id"], ascending=[True, False, True], kind="stable")
    return ranked.groupby("wnid", sort=False).head(n).sort_values("row_id").reset_index(drop=True)
