"""The leaderboard: tables (Markdown, CSV, JSON, HTML) and figures from stored results, result-set
comparison for CI, and publishing to a Hugging Face Hub dataset repo.

Modules: ``columns`` (every column, metric directions), ``table`` (the frame), ``render`` (formats),
``plots`` (figures), ``export`` (write a folder), ``compare`` (diff two result sets), ``publish`` (the board's
card, and the board with its results uploaded through :mod:`laionet_bench.hub.upload`). Pretrain groups are
facts about a model: :mod:`laionet_bench.models.groups`.
"""

from ..models.groups import GROUPS as GROUPS
from ..models.groups import pretrain_group as pretrain_group
from .export import write_leaderboard as write_leaderboard
from .table import Leaderboard as Leaderboard
from .table import build_leaderboard as build_leaderboard
from .table import load_leaderboard as load_leaderboard

__all__ = ["GROUPS", "Leaderboard", "build_leaderboard", "load_leaderboard", "pretrain_group", "write_leaderboard"]
