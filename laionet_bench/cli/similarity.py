"""``laionet-bench similarity``: intra-class similarity of datasets under a CLIP or timm encoder (SPEC §5)."""

from __future__ import annotations

import argparse
import json

from ._datasets import add_data_options, add_image_encoder_options, image_store_from_args, imagenet_from_args
from .index import add_hub_options

EPILOG = """examples:
  laionet-bench similarity --images laionet_images --imagenet ~/data/imagenet/val
  laionet-bench similarity --images imgs/ --index my_index.parquet --imagenet val/ --encoder timm:convnext_base.fb_in1k
  laionet-bench similarity --datasets laionet:clip_top50 imagenet-val imagenet-v2 --images imgs/ \\
      --imagenet val/ --imagenet-v2 matched-frequency=imagenetv2-matched-frequency/ --per-class 50 --sample random
  laionet-bench similarity --images imgs/ --imagenet val/ --encoder timm:tf_efficientnet_lite0 --weights lite0.safetensors

The datasets are read exactly as 'laionet-bench run' reads them (LAIONet always, since its classes
restrict ImageNet). The first of --datasets is compared with each of the others (delta = first - other).
Files go to <out>/similarity/<encoder>/: summary.json, per_class.parquet/.csv, selection.parquet,
histogram.csv and PNG figures; per-class recall is joined from the 'run' results in --results.
Embeddings are cached there and a re-run resumes where an interrupted one stopped.
"""

def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "similarity", help="intra-class image similarity, the paper's Fig. 6, joined to per-class recall",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = add_data_options(parser)
    data.add_argument("--dataset", help="LAIONet: laionet[:variant] or a local index parquet, as in run "
                      "(default: the dataset setting, else laionet)")
    data.add_argument("--datasets", nargs="+", default=["laionet", "imagenet-val"], metavar="NAME",
                      help="laionet (the --dataset one; laionet:VARIANT also works), imagenet-val, imagenet-v2; the "
                           "first is compared with the others (default: laionet imagenet-val)")
    sel = parser.add_argument_group("selection")
    sel.add_argument("--per-class", type=int, metavar="N",
                     help="images per class (default: reference — LAIONet the first 100 listed, the others all)")
    sel.add_argument("--sample", choices=("reference", "random"), default="reference",
                     help="first listed rows or a seeded random draw (default: %(default)s)")
    sel.add_argument("--seed", type=int, default=0, help="random draw and histogram seed (default: %(default)s)")
    add_image_encoder_options(parser, title="encoder", flag="--encoder", what="encoder")
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", help="results root (default: LAIONET_BENCH_RESULTS, "
                     "[tool.laionet-bench] results_dir, or ./results)")
    out.add_argument("--results", metavar="DIR", help="'run' results to join recall from (default: --out)")
    out.add_argument("--model", help="recall of this model only (default: mean over the results' models)")
    out.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    out.add_argument("--format", choices=("table", "json"), default="table")
    add_hub_options(parser)
    parser.set_defaults(handler=run)


def parse_dataset_names(specs: list[str], *, imagenet: str | None, imagenet_v2: str | None,
                        dataset: str | None = None) -> tuple[str, list[str]]:
    """``--datasets`` → (the LAIONet spec to load, the dataset names in comparison order).

    Only LAIONet takes a variant here (``laionet:clip_top50``); ImageNet-V2's comes with its folder
    (``--imagenet-v2 VARIANT=PATH``), as in ``run``. Each named ImageNet set needs its path.
    """
    from ..datasets import parse_dataset_spec
    from ..errors import ConfigError

    laionet, names = "laionet", []
    for spec in specs:
        kind, variant = parse_dataset_spec(spec)
        if variant is not None and kind != "laionet":
            raise ConfigError(f"--datasets {spec}: only laionet takes a variant here; give ImageNet-V2's "
                              "as --imagenet-v2 VARIANT=PATH")
        if kind in names:
            raise ConfigError(f"--datasets names {kind} twice")
        if kind == "laionet" and variant is not None and dataset not in (None, spec):
            raise ConfigError(f"--datasets {spec} and --dataset {dataset} name two LAIONets: keep one")
        laionet = spec if kind == "laionet" else laionet
        names.append(kind)
    laionet = dataset or laionet
    if "imagenet-val" in names and imagenet is None:
        raise ConfigError("--datasets imagenet-val needs --imagenet PATH (or [tool.laionet-bench] imagenet)")
    if "imagenet-v2" in names and imagenet_v2 is None:
        raise ConfigError("--datasets imagenet-v2 needs --imagenet-v2 [VARIANT=]PATH")
    return laionet, names


def run(args: argparse.Namespace) -> int:
    from .. import constants
    from ..config import resolve_setting
    from ..errors import ConfigError
    from ..evaluation.engine import resolve_devices
    from ..evaluation.evaluator import load_datasets
    from ..similarity import EmbedOptions, compute_similarity
    from ..similarity.encoders import parse_encoder_spec
    from ..similarity.join import result_key
    from .index import load_from_args

    parse_encoder_spec(args.encoder)  # a typo fails here, before any index or image listing is read
    devices = resolve_devices(args.device)  # so does a device this machine lacks
    if len(devices) > 1:
        raise ConfigError(f"--device {args.device}: similarity embeds on one device; name one, e.g. {devices[0]}")
    imagenet = imagenet_from_args(args)
    laionet, names = parse_dataset_names(args.datasets, imagenet=imagenet, imagenet_v2=args.imagenet_v2,
                                         dataset=args.dataset)
    named = args.index or args.dataset or (None if laionet == "laionet" else laionet)  # a bare laionet: the setting
    index = load_from_args(args, named)
    index, sets = load_datasets(
        dataset=laionet, images=image_store_from_args(args, index), index=index,
        imagenet=imagenet if "imagenet-val" in names else None,
        imagenet_v2=args.imagenet_v2 if "imagenet-v2" in names else None,
    )
    summary = compute_similarity(
        {name: sets[result_key(name)] for name in names},
        encoder=args.encoder,
        out=resolve_setting("results_dir", args.out, env=constants.RESULTS_DIR),
        per_class=args.per_class,
        sample=args.sample,
        seed=args.seed,
        results_dir=args.results,
        model=args.model,
        class_weights=index.class_weights(),
        embed=EmbedOptions(weights=args.weights, device=devices[0],
                           amp=args.amp, batch_size=args.batch_size, workers=args.workers),
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
        if not c["n_classes_tested"]:
            lines += ["", f"{c['a']} vs {c['b']}: no class with >= {c['min_pairs']} pairs in both"]
            continue
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
