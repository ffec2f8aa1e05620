"""``laionet-bench demo build``: build the embedded demo benchmark's images from installed packages."""

from __future__ import annotations

import argparse
import json

EPILOG = """examples:
  laionet-bench demo build                          build into the cache (resumes; renders only what is missing)
  laionet-bench demo build --out demo --force       rebuild every image into ./demo
  laionet-bench demo build --sources tuxpaint,samples --limit 20 --allow-missing
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="build the embedded demo benchmark (offline, from installed packages)", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="demo_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build", help="render the LAION-demo pool and ImageNet-demo", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = build.add_argument_group("output")
    where.add_argument("--out", metavar="DIR", help="output folder (default: <cache>/demo)")
    where.add_argument("--force", action="store_true", help="re-render every image")
    where.add_argument("--format", choices=("text", "json"), default="text", help="summary format (default: %(default)s)")
    what = build.add_argument_group("what to build")
    what.add_argument("--sources", metavar="LIST", type=_comma_list,
                      help="comma-separated subset of: tuxpaint, openclipart, gcompris, emoji, samples")
    what.add_argument("--limit", metavar="N", type=_positive_int, help="first N images of each source only")
    what.add_argument("--allow-missing", action="store_true",
                      help="skip a source whose Debian package is missing instead of failing")
    what.add_argument("--workers", metavar="N", type=_positive_int, help="render processes (default: up to 4)")
    build.set_defaults(handler=run)


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from ..demo.build import build_demo

    build = build_demo(
        args.out, sources=args.sources, limit=args.limit, force=args.force,
        allow_missing=args.allow_missing, workers=args.workers,
    )
    summary = {
        "out": str(build.out), "manifest_sha256": build.manifest_sha256, "pool_rows": build.pool_rows,
        "rendered": build.rendered, "reused": build.reused, "failed": len(build.failed),
        "imagenet_demo_images": build.imagenet_images, "skipped_sources": build.skipped_sources,
    }
    if args.format == "json":
        print(json.dumps(summary, indent=1))
        return 0
    print(f"demo built in {build.out}")
    print(f"  pool: {build.pool_rows} rows ({build.rendered} rendered, {build.reused} reused, "
          f"{len(build.failed)} failed to render)")
    print(f"  ImageNet-demo: {build.imagenet_images} photo-like images")
    if build.skipped_sources:
        print(f"  skipped (package missing): {', '.join(build.skipped_sources)}")
    print(f"  manifest sha256: {build.manifest_sha256}")
    return 0
