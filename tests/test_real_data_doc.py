"""docs/real-data.md, command for command: each route runs as the page writes it, from nothing to a run.

The page's fenced ``bash`` commands are read from the file and run through the CLI's ``main``, route by route,
each in a fresh working folder, against loopback servers: the fake Hub (``tests/fakes/hub.py``) and an image
server behind every URL. The inputs are tiny files in the real schemas: the reference's parquet and label pickle
as ``shared/notes/reference_files.md`` describes them (route A), LAION-400M's metadata parts (route B), an index
repo with its ``manifest.json`` (route C). A command added to the page is run here too, or the test fails.

A test has four things less than a user, and :func:`adapt` stands in for exactly these:

* pretrained weights: ``resnet50.a1_in1k`` becomes timm's ``test_resnet.r160_in1k`` with random weights
  (``--weights``), and ``similarity`` embeds with timm's ``test_vit`` instead of CLIP ViT-B/32;
* the CLIP text tower of ``rebuild all``: a tiny open_clip model in a local folder (``--encoder``), with the
  default encoder's threshold (``--threshold 0.82``: a stand-in has no threshold of its own). The matched
  captions are the classes' synset texts, so any encoder scores them 1.0, and the variant names
  (``clip_0.82``, ``clip_top50``) stay the page's;
* the public internet: the image server is on 127.0.0.1, which ``download`` refuses unless allowed
  (``--allow-network 127.0.0.0/8``);
* ImageNet-val: ``/data/imagenet/val`` becomes wnid folders of a few images.

``--workers 0`` (no decoder processes) and ``similarity --no-plots`` only save time.
"""

from __future__ import annotations

import json
import pickle
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laionet_bench import constants
from laionet_bench.catalog import load_catalog
from laionet_bench.cli import main
from laionet_bench.evaluation.results import read_results
from laionet_bench.images.manifest import read_manifest
from laionet_bench.index.schema import write_index

from .conftest import make_index_frame
from .fakes.eval_data import image_bytes, tiny_weights, wnid_folders
from .fakes.images import ImageServer, Reply
from .fakes.laion import make_tiny_openclip

# webdataset leaves its tar file handles to the garbage collector.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed file .*shards:ResourceWarning")

PAGE = Path(__file__).parent.parent / "docs" / "real-data.md"
#: Tench, whistle, great white shark: each one's synset text names only its own class under the official
#: lemma rule (the husky's names the Eskimo dog too), so a caption that is the synset text is one match.
CLASSES = ["n01440764", "n04579432", "n01484850"]
PER_CLASS = 4
MODEL, PAGE_MODEL = "test_resnet.r160_in1k", "resnet50.a1_in1k"
PAGE_IMAGENET = "/data/imagenet/val"
ROUTES = {"A": "Route A", "B": "Route B", "C": "Route C"}


# -- the page ------------------------------------------------------------------------------------------------
def page_blocks() -> list[tuple[str, str, str]]:
    """Every fenced block of the page as (the ``##`` heading above it, language, text), in order."""
    blocks, heading = [], ""
    for match in re.finditer(r"^## ([^\n]*)$|^```(\w*)\n(.*?)^```$", PAGE.read_text("utf-8"), re.M | re.S):
        if match.group(1) is not None:
            heading = match.group(1)
        else:
            blocks.append((heading, match.group(2), match.group(3)))
    return blocks


def bash_commands(text: str) -> list[list[str]]:
    """The commands of a bash block: ``\\`` continuations joined, comment lines dropped, split as a shell would."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def route_steps(route: str) -> list[tuple[str, object]]:
    """The route's steps: ``("cli", argv)``, ``("export", (variable, value))`` or ``("toml", text)``."""
    steps = []
    for heading, language, text in page_blocks():
        if not heading.startswith(ROUTES[route]):
            continue
        if language == "toml":
            steps.append(("toml", text))
        for argv in bash_commands(text) if language == "bash" else []:
            if argv[0] == "export":
                variable, _, value = argv[1].partition("=")
                steps.append(("export", (variable, value)))
            else:
                assert argv[0] == "laionet-bench", f"{PAGE.name}: {shlex.join(argv)} is no laionet-bench command"
                steps.append(("cli", argv[1:]))
    return steps


def test_every_command_of_the_page_belongs_to_a_route():
    """So the route tests below run all of them: a bash block outside a route would go untested."""
    outside = [(heading, text) for heading, language, text in page_blocks()
               if language in ("bash", "toml") and not heading.startswith(tuple(ROUTES.values()))]
    assert not outside
    assert all(any(kind == "cli" for kind, _ in route_steps(route)) for route in ROUTES)


# -- the sandbox's stand-ins -------------------------------------------------------------------------------------
@dataclass
class Sandbox:
    """What :func:`adapt` puts in place of what a user has: weights, an encoder, ImageNet-val."""

    weights: Path
    vit: Path
    clip: str
    imagenet: Path


@pytest.fixture
def sandbox(tmp_path_factory) -> Sandbox:
    import timm
    import torch

    folder = tmp_path_factory.mktemp("sandbox")
    torch.manual_seed(0)
    vit = folder / "test_vit.pth"
    torch.save(timm.create_model("test_vit").state_dict(), vit)
    return Sandbox(weights=tiny_weights(folder, "test_resnet"), vit=vit, clip=make_tiny_openclip(folder / "clip"),
                   imagenet=wnid_folders(folder / "val", wnids=CLASSES, per_class=3))


def adapt(argv: list[str], sandbox: Sandbox) -> list[str]:
    """The page's command as this sandbox runs it (the module docstring says why each change)."""
    argv = [str(sandbox.imagenet) if a == PAGE_IMAGENET else MODEL if a == PAGE_MODEL else a for a in argv]
    if argv[0] == "run":
        argv += ["--weights", f"{MODEL}={sandbox.weights}", "--workers", "0"]
    if argv[0] == "similarity":
        argv += ["--encoder", "timm:test_vit", "--weights", str(sandbox.vit), "--workers", "0", "--no-plots"]
    if argv[0] == "download":
        argv += ["--allow-network", "127.0.0.0/8"]
    if argv[:2] == ["rebuild", "all"]:
        argv += ["--encoder", sandbox.clip, "--threshold", "0.82"]  # the default encoder's threshold
    return argv


def run_route(route: str, sandbox: Sandbox, monkeypatch, capsys) -> dict[str, str]:
    """Run the route's steps in the working folder; returns each command's output by its first two words."""
    setting = {variable: name for name, variable in constants.SETTING_VARIABLES.items()}
    printed = {}
    for kind, step in route_steps(route):
        if kind == "export":
            variable, value = step
            monkeypatch.setitem(constants.ENV_SETTINGS, setting[variable], value)  # as constants reads it
        elif kind == "toml":
            Path("pyproject.toml").write_text(step)
        else:
            code = main(adapt(step, sandbox))
            out = capsys.readouterr()
            assert code == 0, f"{shlex.join(step)}: exit {code}: {out.err}"
            printed[" ".join(step[:2])] = out.out
    return printed


# -- the inputs, in the real schemas -----------------------------------------------------------------------------
def serve(urls: list[str], server: ImageServer) -> None:
    for i, url in enumerate(urls):
        server.add(url.removeprefix(server.base), Reply(image_bytes(i, (64, 48))))


@pytest.fixture
def images():
    with ImageServer() as server:
        yield server


def reference_files(folder: Path, server: ImageServer) -> None:
    """``reference/clip_top50.parquet`` and its label pickle, as the reference publishes them."""
    catalog = load_catalog()
    wnids = [w for w in CLASSES for _ in range(PER_CLASS)]
    rows = [300_000_000 + 17 * i for i in range(len(wnids))]  # part 3: global id = part * 10^8 + row in part
    n = len(rows)
    frame = pd.DataFrame({
        "URL": [server.url(f"/ref/{r}.jpg") for r in rows],
        "TEXT": [f"a {catalog.get(w).name} in the wild" for w in wnids],
        "name_def_wnid": [catalog.get(w).query for w in wnids],
        "text_to_name_def_wnid_similarity_clip-vit-base-patch32": np.linspace(0.83, 0.9, n),
        "wnid_is_in_recognized_text": [i == 5 for i in range(n)],
        "recognized_text": ["whistle" if i == 5 else "" for i in range(n)],
        "SAMPLE_ID": np.arange(n, dtype=float) + 1e6,
        "HEIGHT": np.full(n, 48.0), "WIDTH": np.full(n, 64.0),
        "LICENSE": ["?"] * n, "NSFW": ["UNLIKELY"] * n, "similarity": np.full(n, 0.31),
        "top_1_is_correct_resnet-50": pd.Series([True, False, None] * (n // 3), dtype=object).to_numpy(),
        "top_5_is_correct_resnet-50": pd.Series([True, True, None] * (n // 3), dtype=object).to_numpy(),
    }, index=pd.Index(rows, dtype="int64"))
    labels = {w: [r for r, x in zip(rows, wnids, strict=True) if x == w] for w in CLASSES}
    labels |= {"n01443537": [], "n02112837": []}  # keys without rows: an empty class, the husky's own wnid
    (folder / "reference").mkdir()
    frame.to_parquet(folder / "reference" / "clip_top50.parquet")
    (folder / "reference" / "clip_top50_labels.pkl").write_bytes(pickle.dumps(labels))
    serve(list(frame["URL"]), server)


def laion_parts(folder: Path, server: ImageServer) -> None:
    """Two LAION-400M metadata parts (its file names and columns): per class, captions that are its synset
    text, plus captions that match nothing, two classes at once, or are not NSFW-safe."""
    catalog = load_catalog()
    for part in range(2):
        texts = [catalog.get(w).query for w in CLASSES for _ in range(PER_CLASS // 2)]
        texts += ["a sunset over the hills", "my Siberian husky next to a tench", catalog.get(CLASSES[0]).query]
        nsfw = ["UNLIKELY"] * (len(texts) - 1) + ["UNSURE"]
        urls = [server.url(f"/laion/{part}/{i}.jpg") for i in range(len(texts))]
        frame = pd.DataFrame({"SAMPLE_ID": range(part * 1000, part * 1000 + len(texts)), "URL": urls, "TEXT": texts,
                              "HEIGHT": 48, "WIDTH": 64, "LICENSE": "?", "NSFW": nsfw, "similarity": 0.31})
        (folder / "laion400m").mkdir(exist_ok=True)
        frame.to_parquet(folder / "laion400m" / f"part-{part:05d}-5b54c5d5-bbcf-484d-a2ce-0d6f73df1a36-c000.snappy.parquet")
        serve(urls, server)


def published_repo(hub, folder: Path, server: ImageServer) -> str:
    """``laionet-bench/laionet`` with ``data/clip_top50.parquet`` and its manifest, as a rebuild publishes it."""
    frame = make_index_frame([w for w in CLASSES for _ in range(PER_CLASS)], variant="clip_top50")
    frame["url"] = [server.url(f"/hub/{r}.jpg") for r in frame["row_id"]]
    digest = write_index(frame, folder / "published.parquet")
    manifest = {"files": {"data/clip_top50.parquet": {"sha256": digest, "rows": len(frame)}}}
    serve(list(frame["url"]), server)
    return hub.commit("laionet-bench/laionet", {"data/clip_top50.parquet": (folder / "published.parquet").read_bytes(),
                                                 "manifest.json": json.dumps(manifest).encode(), "README.md": b"# LAIONet\n"})


# -- the routes ------------------------------------------------------------------------------------------------
def _ran_on(variant: str) -> None:
    """The run wrote a result on LAIONet ``variant`` and ImageNet-val, from the images download fetched."""
    (result,) = read_results(constants.RESULTS_DIR)
    assert result.model == MODEL and result.datasets["laionet"].dataset == f"laionet:{variant}"
    assert result.datasets["laionet"].n_evaluated > 0 and result.datasets["imagenet"].n_evaluated == 3 * len(CLASSES)


def test_route_a_from_the_references_published_files(tmp_path, sandbox, images, fake_hub, monkeypatch, capsys):
    reference_files(tmp_path, images)
    printed = run_route("A", sandbox, monkeypatch, capsys)
    assert "wrote 12 rows over 3 classes to clip_top50.parquet" in printed["index import-official"]
    assert re.search(r"label-pickle keys\s+5\b", printed["index info"])
    manifest = read_manifest(constants.CACHE_DIR / "images" / "clip_top50")
    assert (manifest.table["status"] == "ok").sum() == 12
    _ran_on("clip_top50")
    assert (constants.RESULTS_DIR / "similarity" / "timm_test_vit" / "summary.json").is_file()
    assert not fake_hub.requests  # the route needs no Hub


def test_route_b_from_laion_metadata(tmp_path, sandbox, images, fake_hub, monkeypatch, capsys):
    laion_parts(tmp_path, images)
    printed = run_route("B", sandbox, monkeypatch, capsys)
    for variant in ("clip_0.82", "clip_top50"):  # the page's names, from the default threshold
        assert (tmp_path / "work" / "dataset" / "data" / f"{variant}.parquet").is_file()
    assert re.search(r"rows\s+12\b", printed["index info"])  # 2 parts x 6 synset texts; the rest dropped
    assert (read_manifest(constants.CACHE_DIR / "images" / "clip_top50").table["status"] == "ok").sum() == 12
    _ran_on("clip_top50")  # download and run took the index from LAIONET_BENCH_DATASET
    # the toml block names the same index for a project, without the variable
    monkeypatch.delitem(constants.ENV_SETTINGS, "dataset")
    assert main(["index", "info"]) == 0
    assert str(tmp_path / "work" / "dataset" / "data" / "clip_top50.parquet") in capsys.readouterr().out
    assert not fake_hub.requests


def test_route_c_from_a_published_index(tmp_path, sandbox, images, fake_hub, monkeypatch, capsys):
    commit = published_repo(fake_hub, tmp_path, images)
    printed = run_route("C", sandbox, monkeypatch, capsys)
    path = tmp_path / "hf" / "hub" / "datasets--laionet-bench--laionet" / "snapshots" / commit / "data" / "clip_top50.parquet"
    assert f"path: {path}" in printed["index download"]
    assert (read_manifest(constants.CACHE_DIR / "images" / "clip_top50").table["status"] == "ok").sum() == 12
    _ran_on("clip_top50")
    (result,) = read_results(constants.RESULTS_DIR)
    assert result.datasets["laionet"].identity["index"]["revision"] == commit


def test_the_dead_end_reads_as_the_page_says(fake_hub, capsys):
    """The page quotes the error of a Hub with no index (wrapped): it is the command's one line, word for word."""
    (quoted,) = [text for heading, language, text in page_blocks() if language == "text"]
    assert main(["index", "info"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert " ".join(quoted.split()) == line
