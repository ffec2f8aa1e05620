#!/usr/bin/env python
"""Generate ``laionet_bench/_data/imagenet_catalog.json`` from WordNet 3.0 and timm's class tables.

Run once when timm or WordNet changes; the installed package reads only the generated file, so users
need neither Debian's ``wordnet-base`` nor nltk. WordNet's ``data.noun``/``index.noun`` are parsed
directly with nltk's own naming rules (synset name = first lemma, lower-cased, ``.n.`` and the sense
number of that lemma in ``index.noun``; definition = gloss without quoted examples, ``; ``-joined).

    python scripts/build_catalog.py [--wordnet /usr/share/wordnet] [--out laionet_bench/_data]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import timm.data

_QUOTED = re.compile(r'"[^"]*"')


def read_index_noun(path: Path) -> dict[str, list[int]]:
    """lemma (lower case) -> synset offsets in sense order, as in ``index.noun``."""
    senses: dict[str, list[int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split()
        lemma, n_synsets = fields[0], int(fields[2])
        senses[lemma] = [int(o) for o in fields[-n_synsets:]]
    return senses


def read_data_noun(path: Path, offsets: set[int]) -> dict[int, tuple[list[str], str]]:
    """offset -> (lemmas with ``_`` kept, definition) for the requested synsets."""
    out: dict[int, tuple[list[str], str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        offset = int(line[:8])
        if offset not in offsets:
            continue
        fields_part, gloss = line.split(" | ", 1)
        fields = fields_part.split()
        n_words = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i] for i in range(n_words)]
        pieces = [p.strip() for p in _QUOTED.sub("", gloss).strip().split(";")]
        out[offset] = (lemmas, "; ".join(p for p in pieces if p))
    return out


def build(wordnet: Path) -> list[dict]:
    info = timm.data.ImageNetInfo()
    wnids = list(info.label_names())
    senses = read_index_noun(wordnet / "index.noun")
    synsets = read_data_noun(wordnet / "data.noun", {int(w[1:]) for w in wnids})
    classes = []
    for index, wnid in enumerate(wnids):
        lemmas, definition = synsets[int(wnid[1:])]
        first = lemmas[0].lower()
        sense = senses[first].index(int(wnid[1:])) + 1
        name = f"{first}.n.{sense:02d}"
        readable = first.replace("_", " ")
        classes.append(
            {
                "index": index,
                "wnid": wnid,
                "synset": name,
                "name": readable,
                "lemmas": [lemma.replace("_", " ") for lemma in lemmas],
                "timm_lemmas": [s.strip() for s in info.index_to_description(index).split(",")],
                "definition": definition,
                "query": f"{readable} which is {definition}",
            }
        )
    return classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "laionet_bench" / "_data")
    args = parser.parse_args()
    classes = build(args.wordnet)
    target = args.out / "imagenet_catalog.json"
    payload = {
        "source": "WordNet 3.0 (data.noun, index.noun) + timm.data.ImageNetInfo class order",
        "generator": "scripts/build_catalog.py",
        "classes": classes,
    }
    target.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(classes)} classes to {target}")


if __name__ == "__main__":
    main()
