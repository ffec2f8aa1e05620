"""Publish the leaderboard to a Hugging Face Hub dataset repo: its card, and the board with its results.

The upload itself is generic and lives in the Hub layer (:func:`laionet_bench.hub.upload.publish_folder`,
which a rebuilt index uses too). What only a leaderboard has is here: :func:`leaderboard_card` (what
the board measures, its table, how to reproduce it) and :func:`publish_leaderboard`, which stages the
board folder and the result files into one folder so they go up in one commit, the card in the staged
copy only.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import ResultsError
from ..hub import check_repo_id
from ..hub.upload import PublishResult, dataset_card, publish_folder
from .table import Leaderboard, load_leaderboard

__all__ = ["RESULT_PATTERNS", "leaderboard_card", "publish_leaderboard"]

#: Result files copied under results/ in the repo (per model folder, plus similarity summaries).
RESULT_PATTERNS = ("*/result.json", "*/per_class.parquet", "*/per_class.csv", "similarity/*/summary.json")


def leaderboard_card(board: Leaderboard, *, repo_id: str) -> str:
    """The card of a published leaderboard: what it measures, the table, how to reproduce it."""
    from .render import to_markdown

    table = to_markdown(board, title="Leaderboard").split("\n", 2)[2]  # drop the H1: the card has its own
    body = f"""# LAIONet leaderboard

How much accuracy ImageNet models lose on LAIONet, the LAION-based recreation of ImageNet
(Shirali & Hardt, "What Makes ImageNet Look Unlike LAION", [arXiv:2306.15769](https://arxiv.org/abs/2306.15769)),
measured with laionet-bench.

Files: `leaderboard.csv` / `leaderboard.json` (every column, numbers as numbers), `leaderboard.md`,
`index.html` (sortable), figures (`*.png`) and the per-model results under `results/`.

## Reproduce

```bash
laionet-bench leaderboard --results results/ --out leaderboard/
laionet-bench publish --repo {repo_id} --folder leaderboard/ --results results/
```

{table}"""
    return dataset_card(body, pretty_name="LAIONet leaderboard",
                        tags=["laionet", "imagenet", "laion", "robustness", "leaderboard"],
                        data_files={"default": "leaderboard.csv"})


def _stage(folder: Path, results: Path | None, staging: Path) -> None:
    """Copy the folder, and the result files under results/, into the staging folder."""
    if not folder.is_dir():
        raise ResultsError(f"{folder}: no such folder; run 'laionet-bench leaderboard --out {folder}' first")
    shutil.copytree(folder, staging, dirs_exist_ok=True)
    if results is None:
        return
    for pattern in RESULT_PATTERNS:
        for path in results.glob(pattern):
            target = staging / "results" / path.relative_to(results)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def publish_leaderboard(
    folder: str | Path,
    *,
    repo_id: str,
    results: str | Path | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Publish LAIONet leaderboard with laionet-bench",
    create: bool = True,
    private: bool | None = None,
    card: bool = True,
) -> PublishResult:
    """Upload the leaderboard ``folder`` and the result files of ``results`` in one commit.

    ``folder`` itself is left untouched: both are copied to a temporary staging folder first.

    Args:
        folder: the board written by ``laionet-bench leaderboard`` (or any folder to publish as is).
        repo_id: ``owner/name`` of the Hub dataset repo.
        results: results folder whose :data:`RESULT_PATTERNS` files go under ``results/``; None: none.
        revision, token, commit_message, create, private: as for :func:`~laionet_bench.hub.upload.publish_folder`.
        card: generate the leaderboard's card (``README.md``) from ``results``; without results, or with
            False, the folder's own README.md (if any) is kept.
    """
    check_repo_id(repo_id)  # before the results are read and staged
    results = Path(results) if results is not None else None
    card_text = leaderboard_card(load_leaderboard(results), repo_id=repo_id) if card and results else None
    with tempfile.TemporaryDirectory(prefix="laionet-publish-") as tmp:
        staging = Path(tmp) / "repo"
        _stage(Path(folder), results, staging)
        return publish_folder(staging, repo_id=repo_id, revision=revision, token=token,
                              commit_message=commit_message, create=create, private=private, card=card_text)
