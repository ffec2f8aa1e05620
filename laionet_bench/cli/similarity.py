"""``laionet-bench similarity``: intra-class similarity of datasets under a CLIP or timm encoder (SPEC §5)."""

from __future__ import annotations

import argparse
import json

EPILOG = """examples:
  laionet-bench similarity --datasets laionet imagenet-val --imagenet ~/data/imagenet
  laionet-bench similarity --datasets laionet imagenet-val --encoder timm:vit_base_patch16_224.augreg_in21k
  laionet-bench similarity --datasets laionet imagenet-v2:matched-frequency --per-class 50 --sample random --seed 1
  laionet-bench similarity --datasets laionet imagenet-val --encoder openclip:ViT-B-32 --weights clip.pt

The first dataset is compared with each of the others (delta = first - other). Files go to
<out>/similarity/<encoder>/: summary.json, per_class.parquet/.csv, selection.parquet, histogram.csv and
PNG figures; embeddings are cached there and a re-run resumes where an interrupted one stopped.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "similarity", help="intra-class image similarity, the paper's Fig. 6, joined to per-class recall",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("datasets")
    data.add_argument("--datasets", nargs="+", required=True, metavar="SPEC",
                      help="dataset specs, first compared with the others (e.g. laionet imagenet-val)")
    data.add_argument("--imagenet", metavar="PATH", help="ImageNet root (default: [tool.laionet-bench] imagenet)")
    data.add_argument("--images", metavar="DIR", help="LAIONet image shards + manifest")
    data.add_argument("--index", metavar="PARQUET", help="LAIONet index file instead of the Hub index")
    sel = parser.add_argument_group("selection")
    sel.add_argument("--per-class", type=int, metavar="N",
                     help="images per class (default: reference — LAIONet 100, the others all)")
    sel.add_argument("--sample", choices=("reference", "random"), default="reference",
                     help="first listed rows or a seeded random draw (default: %(default)s)")
    sel.add_argument("--seed", type=int, default=0, help="random draw and histogram seed (default: %(default)s)")
    enc = parser.add_argument_group("encoder")
    enc.add_argument("--encoder", default="openclip:ViT-B-32/openai", metavar="SPEC",
                     help="openclip:ARCH/TAG or timm:NAME (default: %(default)s)")
    enc.add_argument("--weights", metavar="FILE", help="local encoder checkpoint")
    enc.add_argument("--device", help="torch device (default: [tool.laionet-bench] device, else cuda if available)")
    enc.add_argument("--amp", action="store_true", help="autocast (bfloat16 on CPU, float16 on CUDA)")
    enc.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)")
    enc.add_argument("--workers", type=int, default=2, help="image decoding threads (default: %(default)s)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", help="results root (default: [tool.laionet-bench] results_dir, "
                     "LAIONET_BENCH_RESULTS, or ./results)")
    out.add_argument("--results", metavar="DIR", help="evaluation store to read recall from (default: --out)")
    out.add_argument("--model", help="recall of this model only (default: mean over the store's models)")
    out.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    out.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=run)


def _device(explicit: str | None) -> str:
    from ..config import resolve_setting

    device = resolve_setting("device", explicit)
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    from .. import constants
    from ..config import resolve_setting
    from ..datasets import create_dataset
    from ..similarity import EmbedOptions, compute_similarity

    imagenet = resolve_setting("imagenet", args.imagenet)
    datasets = {
        spec: create_dataset(spec, imagenet=imagenet, images=args.images, index=args.index) for spec in args.datasets
    }
    out = resolve_setting("results_dir", args.out, env=constants.RESULTS_DIR)
    summary = compute_similarity(
        datasets,
        encoder=args.encoder,
        out=out,
        per_class=args.per_class,
        sample=args.sample,
        seed=args.seed,
        results_dir=args.results,
        model=args.model,
        embed=EmbedOptions(weights=args.weights, device=_device(args.device), amp=args.amp,
                           batch_size=args.batch_size, workers=args.workers),
        plot=not args.no_plots,
    )
    if args.format == "json":
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        print(format_summary(summary))
    return 0


def format_summary(summary) -> str:
    """The summary as the table the CLI prints."""
    from tabulate import tabulate

    rows = [(name, d.n_classes, d.n_images, d.n_failed, d.mean, d.std) for name, d in summary.datasets.items()]
    lines = [f"encoder {summary.encoder} ({summary.encoder_info.get('weights_id')})", "",
             tabulate(rows, headers=["dataset", "classes", "images", "failed", "mean sim", "mean std"], floatfmt=".4f")]
    for c in summary.comparisons:
        lines += ["", f"{c['a']} vs {c['b']}: {c['n_classes_tested']} classes with >= {c['min_pairs']} pairs in both",
                  f"  significantly lower  {c['n_lower']:5d}  ({c['frac_lower']:.1%})",
                  f"  significantly higher {c['n_higher']:5d}  ({c['frac_higher']:.1%})",
                  f"  mean delta {c['mean_delta']:+.4f}; delta < 0 in {c['frac_delta_negative']:.1%} of classes"]
    if summary.correlation:
        r = summary.correlation
        lines += ["", f"delta recall vs delta similarity over {r['n']} classes: "
                      f"Pearson {r['pearson']:.3f}, Spearman {r['spearman']:.3f}"]
    lines += ["", f"written to {summary.files['per_class'].rsplit('/', 1)[0]}"]
    return "\n".join(lines)
