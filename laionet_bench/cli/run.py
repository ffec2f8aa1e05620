"""``laionet-bench run``: evaluate models on LAIONet (and ImageNet-val / -V2), resumably."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping

from ..evaluation.options import PROTOCOLS
from ._datasets import AMP_CHOICES, WORKERS_HELP, add_data_options, image_store_from_args, imagenet_from_args
from ._options import add_ray_address
from .index import add_hub_options

__all__ = ["EXIT_PARTIAL", "add_parser", "engine_options", "exit_status", "model_specs", "parse_weights", "print_failures",
           "print_report", "run", "run_demo_command", "run_plan_command", "summary_rows"]

EPILOG = """examples:
  laionet-bench run --demo                   the embedded demo benchmark end to end (offline, a few minutes)
  laionet-bench run --models resnet50 convnext_tiny.fb_in1k --images ~/laionet-images --imagenet ~/imagenet/val
  laionet-bench run --models 'convnext_*' --exclude '*_384*' --dataset laionet:clip_top50 --images shards/
  laionet-bench run --models @models.txt --index my_index.parquet --images imgs/ --limit-per-class 5
  laionet-bench run --models tf_efficientnet_lite0 --weights tf_efficientnet_lite0=lite0.safetensors ...
  laionet-bench run --models openclip:ViT-B-32/openai --amp bf16 --channels-last ...
  laionet-bench run --models all --plan --max-memory 24     the waves of every model on 24 GiB, offline
  laionet-bench run --models all --devices all --images imgs/ --out res/   every local GPU
  laionet-bench run --models all --shard 2/4 --images imgs/ --out res/     one of 4 processes filling res/
Re-running the same command skips every prediction already stored (also after kill -9). Predictions live in
one shared store (default <cache>/predictions; laionet-bench cache info), so another --out reuses them too.

exit status (run and run --demo): 0 every model has a result; 3 partial: some models FAILED (printed with
their reasons, also in OUT/failures.json) and the others' results were written; 1 an error, or every model
failed (with --shard, which writes no results: any failed model).
"""

#: Exit status of a run in which some models failed and the others' results were written.
EXIT_PARTIAL = 3


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="evaluate models on LAIONet and ImageNet-val", epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    demo = parser.add_argument_group("demo")
    demo.add_argument("--demo", action="store_true",
                      help="run the embedded demo benchmark end to end: build it if needed, rebuild LAIONet-demo, "
                      "evaluate, intra-class similarity, leaderboard ('all' = every model with local weights)")
    demo.add_argument("--leaderboard", metavar="DIR", help="demo: leaderboard folder (default: OUT/leaderboard)")
    models = parser.add_argument_group("models")
    models.add_argument("--models", nargs="+", metavar="SPEC",
                        help="timm names/tags, wildcards, @FILE, 'all', a set ('paper'), or openclip:ARCH/TAG "
                        "(required, except with --demo: default all)")
    models.add_argument("--prompts", choices=("paper", "openai"),
                        help="zero-shot prompt set of every openclip: model: the paper's synset texts or OpenAI's "
                        "80 templates (default: what each spec says, else paper)")
    models.add_argument("--protocol", choices=PROTOCOLS, default="ours",
                        help="metrics: ours, or official = the reference's exact rules (ImageNet-val over every "
                        "label-pickle key found in val, Wilson SE / 1.96, HF heads by its lemma rule; "
                        "docs/evaluation.md) (default: %(default)s)")
    models.add_argument("--exclude", nargs="+", default=[], metavar="PATTERN", help="fnmatch patterns to drop")
    models.add_argument("--weights", nargs="+", default=[], metavar="SPEC=PATH", help="local weights per model")
    data = add_data_options(parser)
    data.add_argument("--dataset", help="laionet[:variant] or a local index parquet (default: the dataset setting, "
                      "LAIONET_BENCH_DATASET or [tool.laionet-bench] dataset, else laionet)")
    data.add_argument("--limit", type=int, metavar="N", help="evaluate at most N images per dataset (smoke runs)")
    data.add_argument("--limit-per-class", type=int, metavar="N", help="at most N images per class")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--out", metavar="DIR", help="results folder (default: results_dir setting or ./results)")
    engine.add_argument("--predictions", metavar="DIR",
                        help="the prediction store every results folder shares, keyed by run key (default: "
                        "predictions setting / LAIONET_BENCH_PREDICTIONS, else <cache>/predictions); shards on "
                        "several machines need one on a shared filesystem")
    engine.add_argument("--devices", "--device", dest="device", metavar="DEVICES",
                        help="all (every GPU), cuda:0,cuda:1, cuda, mps or cpu (default: best available device); "
                        "the waves of one group run on all of them at once, fed by one decode stream")
    engine.add_argument("--shard", metavar="I/N",
                        help="do only the I-th of N parts (1-based) of the (model, dataset) work, so N processes "
                        "(a SLURM array, several machines) fill one prediction store; then run without --shard to "
                        "write the results")
    engine.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    engine.add_argument("--workers", type=int, default=2, help=WORKERS_HELP)
    engine.add_argument("--amp", choices=AMP_CHOICES, help="autocast dtype (default: float32)")
    engine.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    engine.add_argument("--compile", action="store_true", help="torch.compile each model")
    engine.add_argument("--max-memory", type=float, metavar="GIB",
                        help="memory per device the model waves are packed into (default: 90%% of each CUDA "
                        "device's free memory, half the available RAM on CPU)")
    engine.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: this machine's --devices; ray: the waves on a Ray cluster's GPUs (or CPU nodes), "
                        "the store written here (default: %(default)s)")
    add_ray_address(engine)
    plan = parser.add_argument_group("plan (dry run: no images, no index)")
    plan.add_argument("--plan", action="store_true",
                      help="print the groups, the waves (device, models, memory, preprocessing), the decodes per "
                      "image and what the prediction store already holds, then exit")
    plan.add_argument("--json", action="store_true", help="with --plan: one JSON object with a 'waves' list")
    estimate = parser.add_argument_group("estimate (with --plan: how long the run takes on a cluster, from any machine)")
    estimate.add_argument("--cluster", metavar="NODESxGPUS",
                          help="plan for this many nodes of GPUs (1x8, 8x8) instead of this machine, and estimate the "
                          "wall time; needs --max-memory (GiB per GPU)")
    estimate.add_argument("--gpu", default="rtx4090", metavar="KIND",
                          help="the shipped throughput table: rtx4090 or rtx-pro-6000-maxq (timm's published "
                          "benchmark, AMP) (default: %(default)s)")
    estimate.add_argument("--gpu-scale", type=float, default=1.0, metavar="FACTOR",
                          help="your GPU's images/s ÷ the table's (e.g. one model timed on yours) (default: %(default)s)")
    estimate.add_argument("--throughput", metavar="FILE", help="your own table, in timm's benchmark-infer CSV format")
    estimate.add_argument("--image-count", type=int, metavar="N",
                          help="images per model, all datasets (default: ImageNet-val + LAIONet, about 850,000)")
    estimate.add_argument("--decode-ms", type=float, default=7.0, metavar="MS",
                          help="decode cost per image and core (default: %(default)s); see --measure-decode")
    estimate.add_argument("--measure-decode", action="store_true",
                          help="measure the decode cost on this machine instead (a 500x375 JPEG to 224 px)")
    estimate.add_argument("--decode-cores", type=int, default=64, metavar="N",
                          help="CPU cores per node that decode (default: %(default)s)")
    add_hub_options(parser)
    parser.set_defaults(handler=run)


def model_specs(args: argparse.Namespace) -> list[str]:
    """``--models`` minus ``--exclude``, expanded, with ``--prompts`` applied to the zero-shot specs."""
    from ..errors import ConfigError, ModelSpecError
    from ..models import expand_model_specs
    from ..models.registry import with_prompts

    if not args.models:
        raise ConfigError("run needs --models (names, wildcards, @FILE or all); only --demo defaults to all")
    specs = expand_model_specs(args.models, exclude=args.exclude)
    if not specs:
        raise ModelSpecError(f"no model left from {args.models} after excluding {args.exclude}")
    return [with_prompts(spec, args.prompts) for spec in specs] if args.prompts else specs


def parse_weights(pairs: list[str]) -> dict[str, str]:
    """``["SPEC=PATH", ...]`` → ``{SPEC: PATH}``."""
    from ..errors import ConfigError

    weights = {}
    for pair in pairs:
        spec, sep, path = pair.partition("=")
        if not sep or not spec or not path:
            raise ConfigError(f"--weights expects SPEC=PATH, got {pair!r}")
        weights[spec] = path
    return weights


def _fmt(value: float) -> float | str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else round(100 * value, 2)


def summary_rows(results) -> list[tuple]:
    """One row per model: LAIONet / ImageNet top-1 (equi and LAION-weighted), gap, robustness, counts."""
    rows = []
    for r in results:
        laion, imnet = r.datasets["laionet"], r.datasets.get("imagenet")
        gap = r.gaps.get("top1")
        rows.append((r.model, _fmt(imnet.top1.value) if imnet else "-", _fmt(laion.top1.value), _fmt(laion.lw_top1.value),
                     _fmt(gap.value) if gap else "-", _fmt(r.effective_robustness), laion.n_evaluated, laion.n_failed))
    return rows


def run_demo_command(args: argparse.Namespace) -> int:
    """``run --demo``: the whole demo flow through the library, then the leaderboard table."""
    from ..demo.benchmark import run_demo
    from ..leaderboard.render import to_markdown

    demo = run_demo(args.models or ["all"], out=args.out or "results-demo", leaderboard_dir=args.leaderboard,
                    device=args.device, batch_size=args.batch_size, workers=args.workers, amp=args.amp,
                    channels_last=args.channels_last, predictions=args.predictions)
    print(to_markdown(demo.leaderboard, title="LAIONet-demo leaderboard"))
    if demo.results:
        laion, imnet = (demo.results[0].datasets[k] for k in ("laionet", "imagenet"))
        print(f"LAIONet-demo: {laion.n_evaluated} images over {laion.n_classes} classes; ImageNet-demo: "
              f"{imnet.n_evaluated} images over {imnet.n_classes} classes (1-10 images per class: per-class "
              "recalls are very noisy; read the standard errors).")
    print_failures(demo.evaluation)
    print(f"results: {demo.out}   leaderboard: {demo.leaderboard_dir}")
    return exit_status(demo.evaluation)


def run_plan_command(args: argparse.Namespace) -> int:
    """``run --plan``: the waves a run would execute, and what the store holds, from timm's registry alone."""
    import json

    from ..errors import ConfigError
    from ..evaluation.cache import prediction_cache
    from ..evaluation.engine import plan_run, plan_targets
    from ..evaluation.estimate import parse_cluster
    from ..evaluation.planner import device_budgets, format_plan, stored_runs

    options = engine_options(args)
    options.check()
    budgets: Mapping[str, int] | None
    if args.cluster:  # a target cluster, planned from anywhere: its GPUs need not be here
        cluster = parse_cluster(args.cluster)
        if args.max_memory is None:
            raise ConfigError(f"--cluster {args.cluster} plans GPUs that are not here: give --max-memory GIB per GPU")
        devices = cluster.devices()
        budgets = device_budgets(devices, max_memory=args.max_memory)
    else:
        targets = plan_targets(options)  # this machine's devices, or the Ray cluster's slots with --executor ray
        devices, budgets = list(targets.devices), targets.budgets
    specs = model_specs(args)
    plan = plan_run(specs, options=options, devices=devices, budgets=budgets)  # before skipping stored work
    estimate = _estimate(args, plan, cluster) if args.cluster else None
    store = prediction_cache(args.predictions)
    stored = stored_runs(store, specs) if store.is_dir() else None
    if args.json:
        print(json.dumps({**plan.to_dict(), "devices": devices, "batch_size": options.batch_size,
                          "dtype": options.dtype, **({"stored": stored} if stored is not None else {}),
                          **({"estimate": estimate.to_dict()} if estimate else {})}))
    else:
        print(format_plan(plan, stored=stored))
        if estimate:
            print(estimate.format())
    return 0


def _estimate(args: argparse.Namespace, plan, cluster):
    """``--cluster``'s estimate of ``plan`` from the estimate option group."""
    from ..evaluation.estimate import DEFAULT_IMAGES, estimate_plan, load_throughput, measure_decode_ms

    table = load_throughput(gpu=args.gpu, scale=args.gpu_scale, path=args.throughput)
    decode_ms = measure_decode_ms() if args.measure_decode else args.decode_ms
    return estimate_plan(plan, cluster, table, images=args.image_count or DEFAULT_IMAGES, decode_ms=decode_ms,
                         decode_cores=args.decode_cores)


def engine_options(args: argparse.Namespace):
    """The ``engine`` option group as :class:`EngineOptions`; the device resolved as ``evaluate`` would."""
    from ..evaluation.engine import EngineOptions, parse_shard, resolve_device

    return EngineOptions(device=resolve_device(args.device), batch_size=args.batch_size, workers=args.workers,
                         amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                         max_memory=args.max_memory, shard=None if args.shard is None else parse_shard(args.shard),
                         executor=args.executor, ray_address=args.ray_address, protocol=args.protocol)


def exit_status(report) -> int:
    """The exit status of a run's :class:`EvaluationReport`: 0 when no model failed, :data:`EXIT_PARTIAL` when
    some failed and others have results, 1 when none has (every model failed, or a shard, which writes none)."""
    if not report.failures:
        return 0
    return EXIT_PARTIAL if report.results else 1


def print_failures(report) -> None:
    """One ``FAILED model: dataset: reason; ...`` line per failed model."""
    for spec, reasons in report.failure_reasons().items():
        print(f"FAILED {spec}: " + "; ".join(f"{k}: {v}" for k, v in reasons.items()))


def print_report(report, *, with_imagenet: bool) -> None:
    """The summary table, the failed models with their reasons, and where the results went."""
    from tabulate import tabulate

    headers = ["model", "ImageNet top1", "LAIONet top1", "LAIONet lw top1", "gap top1", "eff. robustness", "images", "failed"]
    if report.results:
        print(tabulate(summary_rows(report.results), headers=headers))
    if not with_imagenet:
        print("\nno --imagenet given: the ImageNet-val → LAIONet gap needs ImageNet-val (pass --imagenet PATH)")
    print_failures(report)
    print(f"\n{len(report.results)} result(s) written to {report.out}")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..evaluation.evaluator import evaluate
    from .index import load_from_args

    if args.json and not args.plan:
        raise ConfigError("--json goes with --plan (the plan as JSON); drop --json or add --plan")
    if args.plan:
        if args.demo:
            raise ConfigError("--plan plans a real run and --demo runs the demo: drop one of them")
        return run_plan_command(args)
    if args.demo:
        return run_demo_command(args)
    from ..evaluation.engine import resolve_devices

    options = engine_options(args)
    options.check()
    resolve_devices(options.device)  # a bad --shard, --max-memory or --devices fails before the index loads
    specs = model_specs(args)  # and so does a bad model spec
    index = load_from_args(args, args.index or args.dataset)
    imagenet = imagenet_from_args(args)
    report = evaluate(
        specs, engine=options, dataset=args.dataset or "laionet", images=image_store_from_args(args, index), imagenet=imagenet,
        imagenet_v2=args.imagenet_v2, index=index, limit_per_class=args.limit_per_class, limit=args.limit,
        out=args.out, weights=parse_weights(args.weights), exclude=args.exclude, predictions=args.predictions,
    )
    if options.shard:
        print_failures(report)
        print(f"shard {args.shard} stored in the prediction store; when every shard is done, run the same command "
              "without --shard to write the results (it computes nothing)")
    else:
        print_report(report, with_imagenet=bool(imagenet))
    return exit_status(report)
