"""``laionet-bench download``: fetch LAIONet images into webdataset shards plus a manifest."""

from __future__ import annotations

import argparse

from ._options import renamed
from .index import add_hub_options

EPILOG = """examples:
  laionet-bench download                                  default variant from the Hub into the cache
  laionet-bench download --dataset laionet:clip_top50 --concurrency 64
  laionet-bench download --index my_index.parquet --out imgs --official-filter
  laionet-bench download --out imgs --retry-failed        also retry 404s, non-images, ... of an earlier run
  laionet-bench download --out imgs --engine img2dataset --img2dataset-bin ~/venvs/i2d/bin/img2dataset

Re-running the same command resumes: only rows not yet ok are fetched. Interrupting (Ctrl-C or kill -9)
keeps every completed image.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("download", help="fetch LAIONet images into webdataset shards + a manifest",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", metavar="SPEC", help="laionet or laionet:<variant> from the Hub, or a local index "
                        "parquet (default: the dataset setting, LAIONET_BENCH_DATASET or [tool.laionet-bench] "
                        "dataset, else laionet)")
    source.add_argument("--index", metavar="PARQUET", help="a local index parquet file or folder instead")
    add_hub_options(parser)
    parser.add_argument("--out", metavar="DIR", help="image store folder (default: the images setting, else <cache>/images/<variant>; "
                        "run and similarity read the same default)")
    parser.add_argument("--engine", choices=("native", "img2dataset"), default="native",
                        help="who fetches: our fetcher, or img2dataset's CLI (default: %(default)s)")
    parser.add_argument("--img2dataset-bin", metavar="PATH", help="img2dataset executable (default: found on PATH)")

    fetch = parser.add_argument_group("fetching")
    fetch.add_argument("--concurrency", type=int, default=32, metavar="N", help="requests in flight (default: %(default)s)")
    renamed(fetch, "--workers", "--concurrency", dest="concurrency", type=int,
            why="requests in flight; --workers means image decoders in run and similarity")
    fetch.add_argument("--per-host", type=int, default=8, help="concurrent requests per host (default: %(default)s)")
    fetch.add_argument("--timeout", type=float, default=10.0, help="connect/read timeout, seconds (default: %(default)s)")
    fetch.add_argument("--retries", type=int, default=2, help="extra attempts for retryable failures (default: %(default)s)")
    fetch.add_argument("--max-bytes", type=int, default=20 * 2**20, help="largest body kept (default: %(default)s)")
    fetch.add_argument("--max-redirects", type=int, default=5, help="redirect hops followed (default: %(default)s)")
    fetch.add_argument("--allow-private", action="store_true",
                       help="allow URLs resolving to loopback/private/link-local/reserved addresses")
    fetch.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                       help="allow one non-public network, e.g. 127.0.0.0/8 (repeatable)")
    fetch.add_argument("--user-agent", metavar="UA", help="User-Agent header (default: laionet-bench/<version> + URL)")

    images = parser.add_argument_group("images")
    images.add_argument("--official-filter", action="store_true",
                        help="keep only mode RGB images of >= 100 pixels, like the reference (others: filtered)")
    images.add_argument("--resize", type=int, metavar="SIZE",
                        help="shrink so the shorter side is at most SIZE (re-encodes; default: keep bytes)")
    images.add_argument("--max-pixels", type=int, default=89_478_485,
                        help="decompression-bomb limit on width*height (default: %(default)s)")

    run = parser.add_argument_group("resume and output")
    run.add_argument("--retry-failed", action="store_true", help="also re-fetch rows whose failure was permanent")
    run.add_argument("--limit", type=int, metavar="N", help="fetch at most N rows this run")
    run.add_argument("--shard-size", type=int, default=1000, help="samples per tar shard (default: %(default)s)")
    run.add_argument("--checkpoint-seconds", type=float, default=30.0,
                     help="how often the manifest is rewritten during a run (default: %(default)s)")
    parser.set_defaults(handler=run_download)


def _policy_and_options(args: argparse.Namespace):
    from ..images.download import DownloadOptions
    from ..images.fetch import DEFAULT_USER_AGENT, FetchPolicy

    policy = FetchPolicy(
        timeout=args.timeout, total_timeout=max(60.0, 6 * args.timeout), max_redirects=args.max_redirects,
        max_bytes=args.max_bytes, allow_private=args.allow_private, allow_networks=tuple(args.allow_network),
        per_host=args.per_host, user_agent=args.user_agent or DEFAULT_USER_AGENT,
    )
    options = DownloadOptions(
        retry_failed=args.retry_failed, official_filter=args.official_filter, limit=args.limit,
        resize=args.resize, max_pixels=args.max_pixels, workers=args.concurrency, retries=args.retries,
        shard_size=args.shard_size, checkpoint_seconds=args.checkpoint_seconds,
    )
    return policy, options


def run_download(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..images.store import check_store_folder, default_image_store
    from .index import load_from_args

    policy, options = _policy_and_options(args)  # bad flags fail here, before the index is fetched
    if args.out:
        check_store_folder(args.out)  # and so does an --out that is a file or read-only
    index = load_from_args(args, args.index or args.dataset)
    out = str(default_image_store(index, args.out))
    if args.engine == "img2dataset":
        from ..images.img2dataset import download_with_img2dataset

        report = download_with_img2dataset(index, out, policy=policy, options=options,
                                           executable=args.img2dataset_bin, progress=not args.no_progress)
    else:
        from ..images.download import download_images

        report = download_images(index, out, policy=policy, options=options, progress=not args.no_progress)
    totals = report.counts
    statuses = sorted(set(totals) | set(report.run_counts), key=lambda s: (s != "ok", s))
    rows = [(s, report.run_counts.get(s, 0), totals.get(s, 0)) for s in statuses]
    print(tabulate(rows, headers=["status", "this run", "in manifest"], tablefmt="github"))
    print(f"\n{report.attempted} rows fetched in {report.seconds:.1f}s ({report.images_per_second:.1f} images/s)")
    print(f"store: {out}  manifest sha256: {report.manifest.sha256}")
    return 0
