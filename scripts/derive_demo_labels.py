"""Derive laionet_bench/demo/labels.csv from the candidate list (kept for provenance; run once, then review).

Usage: PYTHONPATH=. python scripts/derive_demo_labels.py ../shared/demo/candidate_labels.csv

Keeps the candidates of the sources the demo builds (Tux Paint, GCompris, OpenClipArt SVG, Noto emoji),
maps OpenClipArt PNG paths to the SVGs the builder renders, replaces captions with the builder's own,
drops the rows in DROPS (each with the reason a reviewer found), adds the reviewed sample photos and marks
photo-like rows (Tux Paint photo cut-outs in PNG, GCompris photos, sample photos).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from laionet_bench.demo.sources import SOURCES, list_items

OUT = Path("laionet_bench/demo/labels.csv")
SOURCE_OF = {"tuxpaint": "tuxpaint", "gcompris": "gcompris", "openclipart": "openclipart", "emoji-noto": "emoji"}

#: path suffix -> why the candidate is dropped (label or caption wrong, or the image does not show the class).
DROPS = {
    "mammals/hedgehog.png": "hedgehog is not a porcupine (ImageNet has no hedgehog class)",
    "words_sample/hedgehog.webp": "hedgehog is not a porcupine",
    "animals/hedgehog.webp": "hedgehog is not a porcupine",
    "U+1F994": "hedgehog is not a porcupine",
    "body_parts/wig.svg": "caption 'Hair.' names no wig",
    "body_parts/wig2.svg": "caption 'Hair.' names no wig",
    "body_parts/wig3.svg": "caption 'Hair.' names no wig",
    "hanukkah/dreydl-hay.png": "a dreidel, not hay ('hay' is the Hebrew letter)",
    "roadsigns/roundabout.png": "a roundabout road sign, not a carousel",
    "transportation/roundabout.svg": "a roundabout road sign, not a carousel",
    "U+1F6F4": "a kick scooter, not a motor scooter",
    "U+1F36D": "a lollipop is not an ice lolly",
    "desserts/lollipop_dave_pena_01.svg": "a lollipop is not an ice lolly",
    "desserts/lollipop_dave_pena_02.svg": "a lollipop is not an ice lolly",
    # found on the contact sheets
    "insects/bee.png": "an engraving-like drawing that reads as a fly",
    "science/scale_01.svg": "a flat yellow shape; no scale visible at 256 px",
    "tools/bucket_michael_moore_.svg": "a red blob; no bucket visible",
}
#: Tux Paint PNG stamps outside cartoon/ that are drawings, not photo cut-outs (seen on the contact sheets).
NOT_PHOTO = ("mammals/echidna.png", "hats/sombrero.png", "clothes/t_sock.png", "clothes/t_tshirt.png",
             "food/pizza.png", "christmas/stocking.png", "halloween/jackolantern_mean.png",
             "hanukkah/holiday_candle.png")
#: (caption substring, wnid) pairs dropped as false friends found reading the captions.
FALSE_FRIENDS = {
    ("Wireless transmitter", "n02892767"): "a radio transmitter, not a brassiere",
    ("brown hair boy face", "n03759954"): "a face, no microphone",
    ("glace_italienne", "n03594734"): "an ice cream, not jeans",
    ("roasted sweet potato", "n03840681"): "a sweet potato, not an ocarina",
    ("Golf Driver Swing", "n04371774"): "a golf swing, not a playground swing",
    ("SCUBA Tank", "n04389033"): "a scuba cylinder, not a (military) tank",
    ("bellhop bell", "n03017168"): "a desk bell, not a chime",
    ("oil drum", "n03249569"): "an oil barrel, not a (musical) drum",
    ("book_01", "n03291819"): "a book, not an envelope",
    ("Nicu Buculei - bee (unsorted)", "n04507155"): "caption and image disagree",
    ("AIGA_Symbol_Signs", ""): "a pictogram sign, not the object",
    ("SVG Road Signs", ""): "a road sign, not the object",
    ("nws government website", "n06359193"): "a bitmap of a web page",
    ("Double helix", "n03476684"): "a DNA helix, not a coil",
    ("with cancellation stroke", ""): "a 'muted' symbol",
    ("hammer and", ""): "two tools in one image",
    ("orange color", "n07747607"): "a colour swatch, not the fruit",
    ("head", "n09399592"): "a human head, not a promontory",
    ("Wing (airtravel", "n04592741"): "an aeroplane pictogram",
}
EXACT_FALSE_FRIENDS = {("ear", "n13133613"): "a human ear, not an ear of corn", ("mouse", "n03793489"): "the animal"}

#: The sample photos, labelled by a reviewer with EfficientNet-Lite0's top-5 beside them (None = unlabelled).
SAMPLE_LABELS = {
    "skimage/data/camera.png": ("n04485082", "a camera on a tripod; the tripod fills the frame"),
    "skimage/data/chelsea.png": ("n02123045", "a tabby; Lite0 splits tiger cat / Egyptian cat / tabby"),
    "skimage/data/coffee.png": ("n07920052", "an espresso cup on a saucer"),
    "matplotlib/mpl-data/sample_data/grace_hopper.jpg": ("n03763968", "US Navy dress uniform"),
}


def _drop_reason(source: str, path: str, wnid: str, caption: str) -> str | None:
    for suffix, reason in DROPS.items():
        if path.endswith(suffix):
            return reason
    for (needle, bad_wnid), reason in FALSE_FRIENDS.items():
        if needle in caption and (not bad_wnid or bad_wnid == wnid):
            return reason
    return EXACT_FALSE_FRIENDS.get((caption, wnid))


def main(candidates: str) -> None:
    pool = {(name, item.path): item for name in SOURCES for item in list_items(name)}
    rows, dropped = [], []
    for cand in csv.DictReader(open(candidates, encoding="utf-8")):
        source = SOURCE_OF.get(cand["source"])
        if source is None:
            continue  # Twemoji / OpenMoji / Fluent / Art4Apps: not built by the demo
        path = cand["path"]
        if source == "openclipart":
            svg = Path("/" + path.replace("/png/", "/svg/")).with_suffix(".svg")
            path = str(svg.resolve() if svg.is_symlink() else svg).lstrip("/")
        item = pool.get((source, path))
        if item is None:
            dropped.append((path, "not in this build's pool"))
            continue
        reason = _drop_reason(source, path, cand["wnid"], item.caption)
        if reason:
            dropped.append((path, reason))
            continue
        photo = (cand["fmt"] == "tux-photo" and path.endswith(".png")) or cand["fmt"] == "gc-photo"
        photo = photo and not path.endswith(NOT_PHOTO)
        rows.append([source, item.package, path, cand["wnid"], item.caption, int(photo), cand["fmt"]])
    for path, (wnid, note) in SAMPLE_LABELS.items():
        item = pool[("samples", path)]
        rows.append(["samples", item.package, path, wnid, item.caption, 1, note])
    unique = {(r[0], r[2]): r for r in rows}  # the PNG->SVG mapping can merge duplicates
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["source", "package", "path", "wnid", "caption", "photo_like", "note"])
        writer.writerows(sorted(unique.values(), key=lambda r: (list(SOURCES).index(r[0]), r[2])))
    print(f"{len(unique)} rows -> {OUT}; dropped {len(dropped)}:")
    for path, reason in dropped:
        print(f"  {path}: {reason}")


if __name__ == "__main__":
    main(sys.argv[1])
