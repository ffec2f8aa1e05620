"""The rebuild's product: index parquet(s) in our schema, a dataset card and a manifest, in the Hub layout.

Layout (docs/index.md)::

    <out>/README.md               dataset card: method, parameters, counts, class histogram, licence notes
    <out>/manifest.json           {"files": {"data/<variant>.parquet": {"sha256", "rows", "classes"}}, ...}
    <out>/data/<variant>.parquet

The manifest is the truth about the folder: a rerun with new options deletes the variant files the previous
manifest listed and the new one does not, and every path recorded is relative to the folder or a bare name
(the folder is published as it is, and a reader's absolute paths mean nothing elsewhere).

Publishing the folder is :func:`laionet_bench.hub.upload.publish_folder`; this module only writes it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import read_json, write_text_atomic
from ..catalog import load_catalog
from ..errors import ConfigError
from ..index.schema import DATASET_MANIFEST, INDEX_COLUMNS, write_index
from ..version import __version__

__all__ = ["index_frame", "public_name", "variant_name", "write_dataset"]

logger = logging.getLogger(__name__)

#: What a manifest may list, and so what a rerun may delete: variant files, never anything else.
_VARIANT_FILE = re.compile(r"data/[A-Za-z0-9][A-Za-z0-9._-]*\.parquet")

_FIELDS = ("row_id", "sample_id", "url", "caption", "wnid", "similarity", "nsfw", "ocr_flag", "width", "height",
           "license")


def variant_name(encoder: str, threshold: float, *, top_per_class: int | None = None) -> str:
    """``clip_0.82``, ``mpnet_top50``, ``minilm_0.5``...: encoder family + threshold or top-N."""
    lowered = encoder.lower()
    if "mpnet" in lowered:
        family = "mpnet"
    elif "minilm" in lowered:
        family = "minilm"
    elif lowered.startswith(("openclip:", "hf-clip:")):
        family = "clip"
    else:
        family = re.sub(r"[^a-z0-9]+", "-", lowered.partition(":")[2]).strip("-") or "custom"
    return f"{family}_top{top_per_class}" if top_per_class else f"{family}_{threshold:g}"


def public_name(spec: str) -> str:
    """A part spec or encoder name as the card and manifest record it: a local path by its last name only.

    ``/data/laion/part-*.parquet`` → ``part-*.parquet``, ``openclip:local-dir:/home/me/tiny`` →
    ``openclip:local-dir:tiny``; ``hf://`` specs, Hub ids and registry names stay as they are.
    """
    if spec.startswith("hf://"):
        return spec
    head, sep, path = spec.rpartition(":")
    if os.path.isabs(path) or path.startswith(("./", "../", "~")):
        return f"{head}{sep}{Path(path).name}"
    return spec


def index_frame(rows: pd.DataFrame, *, variant: str, encoder: str) -> pd.DataFrame:
    """Rows from the pipeline (fields of :data:`_FIELDS` + ``x_*``) → a frame in the index schema."""
    catalog = load_catalog()
    index_of = {c.wnid: c.index for c in catalog}
    out = rows[list(_FIELDS)].copy()
    out["class_index"] = out["wnid"].map(index_of).astype("int32")
    out["similarity"] = out["similarity"].astype("float32")
    out["similarity_encoder"] = encoder
    out["variant"] = variant
    out["ocr_flag"] = out["ocr_flag"].astype(bool)
    for name in ("width", "height"):  # all-null columns come back as float
        out[name] = out[name].astype("Int32")
    extra = [c for c in rows.columns if c.startswith("x_")]
    for name in extra:
        out[name] = rows[name].to_numpy()
    ordered = [c.name for c in INDEX_COLUMNS] + extra
    return out[ordered].sort_values("row_id").reset_index(drop=True)


def _histogram_lines(counts: pd.Series) -> list[str]:
    """Markdown: a rows-per-class bucket table and the 15 largest classes."""
    catalog = load_catalog()
    edges = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, np.inf]
    lines = ["| rows per class | classes |", "|---|---|"]
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        n = int(((counts >= low) & (counts < high)).sum())
        label = f"≥ {low}" if high == np.inf else (f"{low}" if high == low + 1 else f"{low}–{int(high) - 1}")
        lines.append(f"| {label} | {n} |")
    lines += ["", "| wnid | class | rows |", "|---|---|---|"]
    for wnid, n in counts.sort_values(ascending=False).head(15).items():
        lines.append(f"| {wnid} | {catalog.get(wnid).name} | {int(n)} |")
    return lines


def _card_text(variants: dict[str, pd.DataFrame], parameters: dict, funnel: dict, dropped: dict[str, int],
               main: str) -> str:
    counts = variants[main]["wnid"].value_counts()
    params = "\n".join(f"| `{k}` | `{v}` |" for k, v in parameters.items())
    steps = "\n".join(f"| {k.replace('_', ' ')} | {v:,} |" for k, v in funnel.items())
    reasons = "\n".join(f"| {k} | {v:,} |" for k, v in dropped.items())
    sizes = "\n".join(f"| `{name}` | {len(f):,} | {f['wnid'].nunique()} | {int(f['ocr_flag'].sum()):,} |"
                      for name, f in variants.items())
    return "\n".join([
        "---", "license: cc-by-4.0", "pretty_name: LAIONet (rebuilt)", "task_categories:", "- image-classification",
        "tags:", "- imagenet", "- laion", "- distribution-shift", "---", "",
        "# LAIONet, rebuilt with laionet-bench", "",
        "LAIONet (Shirali & Hardt, *What Makes ImageNet Look Unlike LAION*, arXiv 2306.15769) recreates ImageNet-1k",
        "from LAION by selecting images on their **captions only**. This folder was regenerated from LAION metadata",
        f"by `laionet-bench rebuild` (version {__version__}).", "",
        "## Method", "",
        "1. Lemma matching: a caption matches an ImageNet class when one of its WordNet lemmas occurs in it "
        f"(rules `{parameters['rules']}`; see docs/rebuild.md). Captions naming several classes are dropped.",
        "2. Text similarity: cosine between the caption and the synset text `<name> which is <definition>` "
        f"under `{parameters['encoder']}`.",
        f"3. Selection: NSFW rule `{parameters['nsfw_rule']}`; similarity strictly greater than "
        f"{parameters['threshold']}.",
        "4. OCR flag: rows whose image shows the class name are flagged (`ocr_flag`), kept, and excluded at "
        "evaluation.",
        "5. Top-N variant (when present): per class, the N most similar rows after the OCR drop.", "",
        "## Variants", "", "| variant | rows | classes | OCR-flagged |", "|---|---|---|---|", sizes, "",
        "## Parameters", "", "| parameter | value |", "|---|---|", params, "",
        "## Counts", "", "| step | rows |", "|---|---|", steps, "",
        "## Rows dropped, by reason", "", "| reason | rows |", "|---|---|", reasons, "",
        f"## Class histogram (`{main}`)", "", *_histogram_lines(counts), "",
        "## Licence notes", "",
        "The index holds LAION metadata (URLs, alt texts, tags), released by LAION under CC-BY 4.0. The images",
        "behind the URLs are not included and remain under their owners' copyright; fetch them only where you may.",
        f"Rows failing the NSFW rule on LAION's NSFW detector (`{parameters['nsfw_rule']}`) were removed; the "
        "filter is imperfect.",
        "",
        "## Columns", "", "See the index schema in the laionet-bench docs (docs/index.md).", "",
    ])


def write_dataset(
    out_dir: str | Path, variants: dict[str, pd.DataFrame], *, parameters: dict, funnel: dict,
    dropped: dict[str, int] | None = None,
) -> dict:
    """Write every variant (index-schema frames), the card and the manifest; returns the manifest.

    The first variant is the main one (its class histogram goes in the card). Variant files the previous
    manifest listed and this one does not are deleted first, then the card and the manifest are written:
    a run killed in between leaves the old manifest, and its rerun deletes them again.
    """
    out = Path(out_dir)
    previous = _listed_files(out)
    files = {}
    for name, frame in variants.items():
        relative = f"data/{name}.parquet"
        digest = write_index(frame, out / relative)
        files[relative] = {"sha256": digest, "rows": len(frame), "classes": int(frame["wnid"].nunique())}
    for stale in sorted(previous - set(files)):
        logger.info("%s: removing %s, a variant of the previous rebuild this one does not write", out, stale)
        (out / stale).unlink(missing_ok=True)
    manifest = {
        "files": files,
        "created_by": f"laionet-bench {__version__} rebuild",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": parameters,
        "counts": funnel,
        "dropped": dropped or {},
    }
    write_text_atomic(out / "README.md", _card_text(variants, parameters, funnel, dropped or {}, next(iter(variants))))
    write_text_atomic(out / DATASET_MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _listed_files(out: Path) -> set[str]:
    """The variant files the manifest in ``out`` lists (none without one)."""
    try:
        manifest = read_json(out / DATASET_MANIFEST, error=ConfigError,
                             fix="delete it: the card step writes it again from the work dir")
    except FileNotFoundError:
        return set()
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    return {name for name in listed or {} if _VARIANT_FILE.fullmatch(name)}
