"""``laionet-bench publish``: upload the leaderboard folder and the result files to a Hub dataset repo."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from .leaderboard import add_results_option, results_dir

logger = logging.getLogger(__name__)

EPILOG = """examples:
  laionet-bench leaderboard --results results/ --out leaderboard/
  laionet-bench publish --repo me/laionet-leaderboard                    leaderboard/ + results/ to main
  laionet-bench publish --repo me/laionet-leaderboard --revision pr-42 --token-env CI_HF_TOKEN
  laionet-bench publish --repo me/laionet-index --folder rebuilt/ --no-results --no-card

The token comes from huggingface_hub's usual sources (HF_TOKEN, 'hf auth login'), or from the
environment variable named by --token-env. It is never printed or logged.
"""

def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("publish", help="upload the leaderboard and results to a Hub dataset repo",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_argument_group("target")
    target.add_argument("--repo", metavar="ID", required=True, help="Hub dataset repo, owner/name")
    target.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created if missing; default: main)")
    target.add_argument("--private", action="store_true", help="create the repo private")
    target.add_argument("--no-create", action="store_true", help="fail instead of creating a missing repo")
    target.add_argument("--message", metavar="TEXT", default="Publish LAIONet leaderboard with laionet-bench",
                        help="commit message (default: %(default)r)")
    target.add_argument("--token-env", metavar="VAR", help="read the Hub token from this environment variable")
    content = parser.add_argument_group("content")
    content.add_argument("--folder", metavar="DIR", default="leaderboard", help="folder to upload (default: %(default)s)")
    add_results_option(content)
    content.add_argument("--no-results", action="store_true", help="upload the folder only")
    content.add_argument("--no-card", action="store_true", help="keep the folder's own README.md (no generated card)")
    parser.set_defaults(handler=run)


def _token(args: argparse.Namespace) -> str | None:
    from ..errors import ConfigError

    if not args.token_env:
        return None
    value = os.environ.get(args.token_env)
    if not value:
        raise ConfigError(f"--token-env {args.token_env}: that environment variable is not set or empty")
    return value


def run(args: argparse.Namespace) -> int:
    from ..leaderboard.publish import publish_leaderboard

    results = None if args.no_results else Path(results_dir(args))
    if results is not None and not results.is_dir() and args.results is None:
        logger.warning("no results folder %s: publishing %s only", results, args.folder)
        results = None
    outcome = publish_leaderboard(args.folder, repo_id=args.repo, results=results, revision=args.revision,
                                  token=_token(args), commit_message=args.message, create=not args.no_create,
                                  private=True if args.private else None, card=not args.no_card)
    print(f"published {len(outcome.files)} file(s) to {outcome.repo_id}@{outcome.revision}: "
          f"{outcome.commit_url or outcome.commit}")
    return 0
