"""``laionet-bench explain``: the paper's Section-4 experiments, each a thin layer over ``laionet_bench.explain``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._datasets import add_image_encoder_options
from ._options import add_ray_address

EPILOG = """examples:
  laionet-bench explain captions --demo                      ImageNet-Captions-like texts of the demo (offline)
  laionet-bench explain captions --captions imagenet_captions.json --index clip_0.82.parquet
  laionet-bench explain v2-frequency --index clip_0.82.parquet --images imgs/ --imagenet val/ \\
      --imagenet-v2 threshold-0.7=v2-a/ --imagenet-v2 matched-frequency=v2-b/ --imagenet-v2 top-images=v2-c/ \\
      --results results-a/ results-b/ results-c/
  laionet-bench explain v2-frequency --demo                  three V2-like folds of the demo (pipeline check only)
  laionet-bench explain text-search --captions imagenet_captions.json --parts 'laion/part-*.parquet' \\
      --work ts-work --kind ivfpq --executor ray
  laionet-bench explain text-search --demo
  laionet-bench explain multimodal --index clip_0.72.parquet --images imgs/ --imagenet val/ --rows 535000
  laionet-bench explain multimodal --demo

Files go to <out>/explain/<experiment>/: a results table (csv), summary.json and PNG figures.
See docs/explain.md for what each experiment asks and what the paper found.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="the paper's Section-4 experiments: why LAIONet differs",
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    _captions_parser(actions)
    _frequency_parser(actions)
    _text_search_parser(actions)
    _multimodal_parser(actions)


def _examples(experiment: str) -> str:
    """The lines of :data:`EPILOG` that run ``experiment``, as that subcommand's own epilog."""
    lines, keep = [], False
    for line in EPILOG.splitlines()[1:]:
        if line.startswith("  laionet-bench"):
            keep = line.split()[2] == experiment
        elif not line.startswith("      "):
            keep = False
        if keep:
            lines.append(line)
    return "\n".join(["examples:", *lines, "", "See docs/explain.md."])


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run and results")
    group.add_argument("--demo", action="store_true", help="run on the embedded demo (offline; builds it if needed)")
    group.add_argument("--out", metavar="DIR", help="results root (default: LAIONET_BENCH_RESULTS, "
                       "[tool.laionet-bench] results_dir, or ./results)")
    group.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    group.add_argument("--format", choices=("table", "json"), default="table")


def _image_encoder_options(parser: argparse.ArgumentParser) -> None:
    add_image_encoder_options(parser, title="image encoder (intra-class similarity)", flag="--image-encoder",
                              what="image-encoder")


def _captions_parser(actions) -> None:
    p = actions.add_parser("captions", help="§4.3: ImageNet-Captions texts against their synset texts (Fig. 8)",
                           epilog=_examples("captions"), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", metavar="JSON", help="the ImageNet-Captions json (required without --demo)")
    p.add_argument("--index", metavar="PARQUET", help="LAIONet index to compare with (Fig. 8a)")
    p.add_argument("--encoder", default="openclip:ViT-B-32/openai", metavar="NAME",
                   help="text encoder, as for rebuild (default: %(default)s)")
    p.add_argument("--threshold", type=float, help="LAIONet's selection threshold (default: the encoder's)")
    p.add_argument("--chunk", type=int, default=4096, help="captions per block (memory ~ chunk x 1000)")
    p.add_argument("--bins", type=int, default=20, help="similarity bins of Fig. 8b (default: %(default)s)")
    p.add_argument("--device", help="torch device for the text encoder")
    _common(p)
    p.set_defaults(handler=_run_captions)


def _frequency_parser(actions) -> None:
    p = actions.add_parser("v2-frequency", help="§4.1: intra-class similarity vs ImageNet-V2 selection frequency",
                           epilog=_examples("v2-frequency"), formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("datasets")
    data.add_argument("--index", metavar="PARQUET", help="LAIONet index (required without --demo)")
    data.add_argument("--images", metavar="DIR", help="LAIONet images")
    data.add_argument("--imagenet", metavar="PATH", help="ImageNet-val (the second reference; optional)")
    data.add_argument("--imagenet-v2", action="append", default=[], metavar="VARIANT=PATH",
                      help="an ImageNet-V2 variant folder (repeat for threshold-0.7, matched-frequency, top-images)")
    data.add_argument("--results", nargs="+", default=[], metavar="DIR",
                      help="'run' results, one folder per V2 variant, for the accuracy table")
    _image_encoder_options(p)
    _common(p)
    p.set_defaults(handler=_run_frequency)


def _text_search_parser(actions) -> None:
    p = actions.add_parser("text-search", help="§4.4: ImageNet recreated by nearest-caption search (FAISS)",
                           epilog=_examples("text-search"), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", metavar="JSON", help="the ImageNet-Captions json (required without --demo)")
    p.add_argument("--parts", nargs="+", metavar="PART", help="LAION parts, as for rebuild (files, globs, hf://...)")
    p.add_argument("--work", metavar="DIR", default="text-search-work", help="embeddings + FAISS index (resumable)")
    p.add_argument("--encoder", default="openclip:ViT-B-32/openai", metavar="NAME", help="text encoder (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=0.7, help="keep a top-1 neighbour above this (default: %(default)s)")
    p.add_argument("--kind", choices=("flat", "ivfpq"), default="flat", help="FAISS index (default: %(default)s)")
    p.add_argument("--nlist", type=int, help="IVF lists (default: 4 sqrt(n))")
    p.add_argument("--pq-m", type=int, help="PQ sub-quantisers (must divide the dimension; default: <= 64)")
    p.add_argument("--pq-bits", type=int, default=8, help="bits per PQ code (default: %(default)s)")
    p.add_argument("--faiss-index", metavar="DIR", help="search this prebuilt index (index.faiss + index.json) "
                   "instead of embedding --parts; refused if built with another encoder or dimension")
    p.add_argument("--nprobe", type=int, default=32, help="IVF lists searched per query (default: %(default)s)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="where parts are embedded")
    add_ray_address(p, old="--address")
    p.add_argument("--text-device", help="torch device for the text encoder")
    cmp = p.add_argument_group("comparison with ImageNet (optional)")
    cmp.add_argument("--images", metavar="DIR", help="images of the found LAION rows (<row_id>.<ext> or shards)")
    cmp.add_argument("--imagenet", metavar="PATH", help="ImageNet-val")
    _image_encoder_options(p)
    _common(p)
    p.set_defaults(handler=_run_text_search)


def _named_threshold(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not (sep and name):
            raise ValueError(text)
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=TEXT_THRESHOLD (e.g. A=0.81)") from None


def _multimodal_parser(actions) -> None:
    p = actions.add_parser("multimodal", help="§4.2: datasets A-D selected on caption and image (CLIP)",
                           epilog=_examples("multimodal"), formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("datasets")
    data.add_argument("--index", metavar="PARQUET", help="candidate pool in our schema, selected at or below the "
                      "lowest text threshold (e.g. rebuild --threshold 0.72); required without --demo")
    data.add_argument("--images", metavar="DIR", help="the pool's images")
    data.add_argument("--imagenet", metavar="PATH", help="ImageNet-val, to compare each dataset with (optional)")
    sel = p.add_argument_group("selection")
    sel.add_argument("--text-thresholds", nargs="+", type=float, metavar="T",
                     help="text thresholds to scan (default: 0.72 ... 0.82 by 0.01)")
    sel.add_argument("--datasets", nargs="+", type=_named_threshold, metavar="NAME=T",
                     help="variants to write (default: the paper's A=0.81 B=0.79 C=0.76 D=0.72)")
    sel.add_argument("--rows", type=int, help="rows every dataset keeps (default: those passing the strictest "
                     "text threshold alone; the paper fixed ~535k)")
    sel.add_argument("--model", default="openclip:ViT-B-32/openai", metavar="SPEC",
                     help="image-to-synset-text model, as for run (default: the paper's CLIP %(default)s)")
    sel.add_argument("--model-weights", metavar="FILE", help="local weights for --model")
    _image_encoder_options(p)
    _common(p)
    p.set_defaults(handler=_run_multimodal)


def _require(args: argparse.Namespace, *names: str) -> None:
    from ..errors import ConfigError

    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(args, n)]
    if missing:
        raise ConfigError(f"explain {args.experiment} needs {' '.join(missing)} (or --demo)")


def _out(args: argparse.Namespace) -> str:
    from .. import constants
    from ..config import resolve_setting

    return resolve_setting("results_dir", args.out, env=constants.RESULTS_DIR)


def _demo_image_encoder(args: argparse.Namespace) -> None:
    """The demo's intra-class similarity encoder: EfficientNet-Lite0's pooled features, bundled weights."""
    from ..demo.benchmark import SIMILARITY_MODEL
    from ..models.bundled import bundled_weights_file

    args.image_encoder = f"timm:{SIMILARITY_MODEL.partition('.')[0]}"
    args.weights = str(bundled_weights_file(SIMILARITY_MODEL))


def _embed_options(args: argparse.Namespace):
    from ..evaluation.engine import resolve_device
    from ..similarity import EmbedOptions

    return EmbedOptions(weights=args.weights, device=resolve_device(args.device), amp=args.amp,
                        batch_size=args.batch_size, workers=args.workers)


def _print(args: argparse.Namespace, result: dict, lines: list[str]) -> None:
    print(json.dumps(result, indent=2, default=str) if args.format == "json" else "\n".join(lines))


def _run_captions(args: argparse.Namespace) -> int:
    from ..explain.captions import run_captions
    from ..index.load import load_index
    from ..rebuild.textsim import default_threshold

    index = args.index
    if args.demo:
        from ..demo.benchmark import TEXT_ENCODER, TEXT_THRESHOLD, prepare_demo
        from ..demo.explain import write_demo_captions

        data = prepare_demo()
        args.captions = str(write_demo_captions(data.root / "explain" / "imagenet_captions.json"))
        index, args.encoder, args.threshold = str(data.index), TEXT_ENCODER, TEXT_THRESHOLD
    _require(args, "captions")
    result = run_captions(args.captions, encoder=args.encoder, out=_out(args),
                          laionet=load_index(index).table if index else None,
                          threshold=args.threshold if args.threshold is not None else default_threshold(args.encoder),
                          chunk=args.chunk, bins=args.bins, device=args.device, plot=not args.no_plots)
    _print(args, result, [
        f"{result['n_captions']:,} captions over {result['n_classes']} classes ({args.encoder})",
        f"  own-synset similarity: mean {result['mean_similarity']:.3f}, median {result['median_similarity']:.3f}"
        + (f" (LAIONet median {result['laionet_median_similarity']:.3f})" if index else ""),
        f"  another synset text more similar than the own one: {result['frac_not_top1']:.1%} of captions; "
        f"mean share of the other synsets more similar {result['mean_share_more_similar']:.2%}",
        f"written to {Path(result['files']['summary']).parent}"])
    return 0


def _run_frequency(args: argparse.Namespace) -> int:
    from ..datasets import create_dataset
    from ..evaluation.evaluator import load_datasets
    from ..explain.frequency import run_v2_frequency

    if args.demo:
        from ..demo.benchmark import prepare_demo
        from ..demo.explain import write_demo_v2

        data = prepare_demo()
        args.index, args.images, args.imagenet = str(data.index), str(data.images), str(data.imagenet)
        folders = write_demo_v2(data.root, data.root / "explain" / "imagenet-v2")
        args.imagenet_v2 = [f"{name}={path}" for name, path in folders.items()]
        _demo_image_encoder(args)
    _require(args, "index", "images", "imagenet_v2")
    _, sets = load_datasets(index=args.index, images=args.images, imagenet=args.imagenet)
    classes = sets["laionet"].wnids()
    variants = {}
    for value in args.imagenet_v2:
        name, _, path = value.partition("=")
        variants[name] = create_dataset(f"imagenet-v2:{name}", root=path, classes=classes)
    result = run_v2_frequency(sets["laionet"], variants, imagenet=sets.get("imagenet"), encoder=args.image_encoder,
                              out=_out(args), results_dirs=args.results, embed=_embed_options(args),
                              plot=not args.no_plots)
    lines = [f"{'reference':14s} {'variant':18s} {'freq':>5s} {'tested':>6s} {'lower':>7s} {'higher':>7s} {'mean delta':>10s}"]
    lines += [f"{c['reference']:14s} {c['variant']:18s} {c['selection_frequency']:5.2f} {c['n_classes_tested']:6d} "
              f"{c['frac_lower']:7.1%} {c['frac_higher']:7.1%} {c['mean_delta']:+10.4f}"
              + ("  (too few classes to conclude)" if c["too_few_classes"] else "") for c in result["comparisons"]]
    _print(args, result, lines + [f"written to {Path(result['files']['summary']).parent}"])
    return 0


def _run_text_search(args: argparse.Namespace) -> int:
    from ..explain._compare import compare_with_imagenet
    from ..explain._output import experiment_dir, write_table
    from ..explain.text_search import run_text_search

    if args.demo:
        from ..demo.benchmark import TEXT_ENCODER, prepare_demo
        from ..demo.explain import write_demo_captions

        data = prepare_demo()
        args.captions = str(write_demo_captions(data.root / "explain" / "imagenet_captions.json"))
        args.parts, args.encoder = [str(data.root / "pool.parquet")], TEXT_ENCODER
        args.images, args.imagenet = str(data.images), str(data.imagenet)
        args.work = args.work if args.work != "text-search-work" else str(data.root / "explain" / "text-search-work")
        _demo_image_encoder(args)
    _require(args, "captions", "parts")
    report = run_text_search(args.captions, args.parts, encoder=args.encoder, work_dir=args.work, out=_out(args),
                             threshold=args.threshold, kind=args.kind, nlist=args.nlist, pq_m=args.pq_m,
                             pq_bits=args.pq_bits, nprobe=args.nprobe, index_dir=args.faiss_index, executor=args.executor, address=args.ray_address, device=args.text_device)
    result = report.to_dict()
    lines = [f"{report.n_captions:,} captions; {report.n_above_threshold:,} with a LAION neighbour above "
             f"{report.threshold:g}; variant {report.variant}: {report.n_rows:,} rows over {report.n_classes} classes"]
    if args.images and args.imagenet and "variant" in report.files:
        folder = experiment_dir(_out(args), "text-search")
        table = compare_with_imagenet({report.variant: report.files["variant"]}, images=args.images,
                                      imagenet=args.imagenet, encoder=args.image_encoder, folder=folder / "similarity",
                                      embed=_embed_options(args), plot=not args.no_plots)
        write_table(table, folder, "similarity_vs_imagenet")
        result["similarity_vs_imagenet"] = table.to_dict(orient="records")
        for row in result["similarity_vs_imagenet"]:
            lines.append(f"  intra-class similarity {row['variant_mean']:.3f} vs ImageNet {row['imagenet_mean']:.3f}; "
                         f"{row['frac_lower']:.1%} of {row['n_classes_tested']} tested classes significantly lower"
                         + (" (too few classes to conclude)" if row["too_few_classes"] else ""))
    _print(args, result, lines + [f"written to {Path(report.files['summary']).parent}"])
    return 0


def _run_multimodal(args: argparse.Namespace) -> int:
    from ..datasets import create_dataset
    from ..explain._compare import compare_with_imagenet
    from ..explain._output import experiment_dir, write_table
    from ..explain.multimodal import PAPER_DATASETS, TEXT_THRESHOLDS, run_multimodal
    from ..index.load import load_index

    text_thresholds, datasets = args.text_thresholds or TEXT_THRESHOLDS, dict(args.datasets or PAPER_DATASETS)
    if args.demo:
        from ..demo.benchmark import SIMILARITY_MODEL, prepare_demo
        from ..demo.explain import DEMO_DATASETS, DEMO_TEXT_THRESHOLDS
        from ..models.bundled import register_bundled_weights

        data = prepare_demo()
        register_bundled_weights()
        args.index, args.images, args.imagenet = str(data.index), str(data.images), str(data.imagenet)
        args.model = SIMILARITY_MODEL
        text_thresholds, datasets = args.text_thresholds or DEMO_TEXT_THRESHOLDS, dict(args.datasets or DEMO_DATASETS)
        _demo_image_encoder(args)
    _require(args, "index", "images")
    index = load_index(args.index)
    pool = create_dataset("laionet", index=index, images=args.images)
    device = _embed_options(args).device
    result = run_multimodal(pool, index.table, out=_out(args), text_thresholds=text_thresholds, datasets=datasets,
                            target=args.rows, model=args.model,
                            weights={args.model: args.model_weights} if args.model_weights else None, device=device,
                            batch_size=args.batch_size, workers=args.workers)
    lines = [f"{'dataset':8s} {'text':>6s} {'image':>8s} {'rows':>8s} {'classes':>7s} {'empty':>6s}"]
    lines += [f"{n:8s} {d['text_threshold']:6.2f} {d['image_threshold']:8.4f} {d['rows']:8,d} {d['classes']:7d} "
              f"{d['empty_classes']:6d}" for n, d in result["datasets"].items()]
    lines += [f"{n}: {why}; not written" for n, why in result["skipped"].items()]
    if args.imagenet and result["variants"]:
        folder = experiment_dir(_out(args), "multimodal")
        table = compare_with_imagenet(result["variants"], images=args.images, imagenet=args.imagenet,
                                      encoder=args.image_encoder, folder=folder / "similarity",
                                      embed=_embed_options(args), plot=not args.no_plots)
        write_table(table, folder, "similarity_vs_imagenet")
        result["similarity_vs_imagenet"] = table.to_dict(orient="records")
        lines += [f"{r['variant']}: intra-class similarity {r['variant_mean']:.3f} vs ImageNet {r['imagenet_mean']:.3f}; "
                  f"{r['frac_lower']:.1%} of {r['n_classes_tested']} tested classes significantly lower"
                  + (" (too few classes to conclude)" if r["too_few_classes"] else "")
                  for r in result["similarity_vs_imagenet"]]
    _print(args, result, lines + [f"written to {Path(result['files']['summary']).parent}"])
    return 0
