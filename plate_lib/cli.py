"""The command line: ``plate generate | train | evaluate | predict | export | models | cache | report |
convert-checkpoint | average`` (or ``python -m plate_lib``).

Errors that a user can fix (config, data, checkpoint, a full disk) print one paragraph and exit with status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path

import numpy as np

from . import config as config_mod

CHECKPOINT_FIXES = ("model", "preprocess", "provinces")  # what a checkpoint's network was built and trained on
DEFAULT_MODEL = Path("models/plate_default.pt")  # the shipped model (make model; models/README.md)
REPO_MODEL = Path(__file__).resolve().parents[1] / DEFAULT_MODEL  # the same file, from any working directory
log = logging.getLogger("plate_lib")


def _cfg(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.load(config_mod.config_file(args.config), config_mod.collect_overrides(None, args.profile, args.set))


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def cmd_generate(args: argparse.Namespace) -> int:
    from .synth import generate_zip

    cfg = _cfg(args)
    synth = cfg.synth.model_copy(update={k: v for k, v in {"n_train": args.n, "n_test": args.n_test,
                                                          "seed": args.seed}.items() if v is not None})
    if args.n is not None and args.n_test is None:
        synth = synth.model_copy(update={"n_test": max(1, args.n // 10)})
    out = generate_zip(args.out or cfg.data.synthetic_path, synth, progress=not args.quiet and sys.stderr.isatty())
    print(f"wrote {synth.n_train} train + {synth.n_test} test plates to {out}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, docker stop, kill): a run stops as on Ctrl-C, said and logged; exit status 143."""


def _terminate(signum: int, frame) -> None:
    raise Terminated


def cmd_train(args: argparse.Namespace) -> int:
    import signal

    from .train import fit

    cfg = _cfg(args)
    before = signal.signal(signal.SIGTERM, _terminate)
    try:
        run_dir = fit(cfg, resume=args.resume, progress=not args.quiet)
    finally:
        signal.signal(signal.SIGTERM, before)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    print(f"best validation word accuracy {summary['best_val_word_acc']:.4f}; checkpoint {run_dir / 'best.pt'}")
    return 0


def _checkpoint(args: argparse.Namespace) -> Path:
    """``--checkpoint``, else the shipped model, else the report's run (``runs/default/best.pt``)."""
    if args.checkpoint:
        path = Path(args.checkpoint)
        if path.is_dir():
            inside = [n for n in ("best.pt", "last.pt") if (path / n).is_file()]
            raise FileNotFoundError(f"checkpoint {path} is a folder; pass a checkpoint file to --checkpoint"
                                    + (f", e.g. {path / inside[0]}" if inside else " (a .pt file, e.g. runs/<name>/best.pt)"))
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {path} not found; check the path given to --checkpoint (a run's is "
                                    "runs/<run.name>/best.pt; the shipped model models/plate_default.pt)")
        return path
    for candidate in (DEFAULT_MODEL, REPO_MODEL, Path("runs/default/best.pt")):
        if candidate.is_file():
            log.info("checkpoint: %s (pass --checkpoint for another)", candidate)
            return candidate
    raise FileNotFoundError(f"no --checkpoint given and neither {DEFAULT_MODEL} (make model) nor "
                            "runs/default/best.pt (make report) exists; train one with `plate train` first")


READING_DATA = ("skip_bad", "cache_dir", "max_file_mb", "label_fixes", "ccpd_crop")
"""data.* keys of how to read data, which ``--config``'s file applies over a checkpoint's config where it sets them;
the keys that decide the splits (val_fraction, ccpd_split) and the crops' size (resize_crops) stay the checkpoint's,
so its held-out plates stay held out."""


def _reading_keys(args: argparse.Namespace, here: config_mod.Config) -> dict:
    """The ``READING_DATA`` keys of the config file (``here``: it loaded, with ``--profile`` and ``--set``) as dotted
    overrides: those a ``--config FILE`` sets; of the default cfg.yaml, which spells out every key, those it sets away
    from the built-in defaults."""
    path = config_mod.config_file(args.config)
    if not path:
        return {}
    chosen = here.data
    if args.config == "cfg.yaml":
        default = config_mod.DataConfig()
        return {f"data.{k}": getattr(chosen, k) for k in READING_DATA if getattr(chosen, k) != getattr(default, k)}
    raw = config_mod.read_yaml(Path(path))
    data = raw.get("data") if isinstance(raw, dict) else None
    return {f"data.{k}": getattr(chosen, k) for k in READING_DATA if isinstance(data, dict) and k in data}


def _load_checkpoint(args: argparse.Namespace, here: config_mod.Config):
    """The checkpoint's model on ``--device`` and its stored config with the ``READING_DATA`` keys that ``--config``
    (cfg.yaml by default: none needed) sets, then ``--profile`` and ``--set``, applied (``here``: the config they
    make, which says how to read); its ``predict.runtime`` onnx: the model run by ONNX Runtime (``export.OnnxModel``), on the CPU only;
    auto: onnx on the CPU where ONNX Runtime is installed, else torch (``inference.pick_runtime``). ONNX Runtime
    on the CPU reads with the graph exported from the same checkpoint before where one is cached, torch not
    imported, and caches the one it exports (``graph.open_reader``)."""
    from .graph import open_reader

    ckpt = _checkpoint(args)
    model, cfg, device = open_reader(ckpt, args.device, here.predict.runtime)
    overrides = _reading_keys(args, here)
    overrides |= config_mod.collect_overrides(None, args.profile, args.set)
    if overrides:  # --profile and --set, as on cfg.yaml (data.ccpd_crop=bbox, …)
        new = config_mod.from_dict(config_mod.apply_overrides(cfg.to_dict(), overrides), "--profile/--set")
        fixed = [k for k in config_mod.config_changes(cfg.to_dict(), new.to_dict()) if k.split(".")[0] in CHECKPOINT_FIXES]
        if fixed:
            raise config_mod.ConfigError(f"{', '.join(fixed)}: fixed by the checkpoint {ckpt} (what its network was "
                                         "trained on), not to be overridden here (--profile/--set); a profile of a "
                                         "training recipe does not apply to reading")
        cfg = new
    return ckpt, device, model, cfg


NO_PLATES_FIX = "Point --data at a CCPD2019-dl1 zip, a folder of crops or a CCPD2019 folder that holds plates"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .dataset import load_split, open_cfg_source, require_plates
    from .inference import evaluate, pick_runtime

    here = _cfg(args)  # how to read (predict.*, the batch): cfg.yaml and --set, as plate predict reads
    settings = here.predict
    if args.out:  # before the evaluation, not after it: a folder that is not there is made
        _writable_file(args.out, "--out", "the CSV file to write, e.g. eval.csv")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    ckpt, device, model, cfg = _load_checkpoint(args, here)
    source = open_cfg_source(cfg, args.data, ccpd_split=cfg.data.ccpd_split)  # --data stands for data.source
    data = load_split(source, args.split, cfg.preprocess, cfg.data.cache_dir, args.skip_bad or cfg.data.skip_bad)
    require_plates(data, source, NO_PLATES_FIX, split_option=True)
    summary, rows = evaluate(model, data, list(cfg.provinces), here.training.eval_batch_size, device, source,
                             settings.rectify_below, settings.tta, settings.by_colour)
    out = {**_json_safe(summary), "checkpoint": str(ckpt), "data": str(args.data), "split": args.split,
           "skipped": len(data.skipped), "rectify_below": settings.rectify_below, "tta": settings.tta,
           "by_colour": settings.by_colour, "runtime": pick_runtime(settings.runtime, device)}
    if source.kind == "ccpd_photos":
        out["ccpd_crop"], out["ccpd_split"] = cfg.data.ccpd_crop, cfg.data.ccpd_split
    if "subset" in rows:
        out["subsets"] = {s: _json_safe({"n": int(len(g)), "word_acc": float(g["correct"].mean())})
                          for s, g in rows.groupby("subset")}
    if args.by_colour:  # each crop loaded again for its hue: the plate's colour as plate predict's kind calls it
        from .analysis import group_metrics, plate_colours

        rows["colour"] = plate_colours(source, rows)
        out["colours"] = {c: _json_safe(m) for c, m in group_metrics(rows, "colour").items()}
    if args.out:
        rows.to_csv(args.out, index=False)
    print(json.dumps(out, ensure_ascii=False))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """One row per image file; exit status 1 when any file could not be read (its row says why)."""
    from .predict import expand_inputs, read_files, write_rows

    here = _cfg(args)  # how to read (predict.*, the batch): cfg.yaml and --set, not the checkpoint's config
    settings = here.predict
    _, device, model, cfg = _load_checkpoint(args, here)
    inputs = expand_inputs(args.images, sys.stdin)
    progress = not args.quiet and len(inputs) > 8 and sys.stderr.isatty()
    rows = read_files(model, cfg, settings, inputs, device, progress, here.training.eval_batch_size)
    try:
        counts = write_rows(rows, args.format, sys.stdout)
        sys.stdout.flush()  # here, not at exit: a reader gone is said below
    except BrokenPipeError:
        return _stdout_gone()
    if not args.quiet:
        print(f"plate predict: {len(inputs)} file{'s' * (len(inputs) != 1)}: "
              + ", ".join(f"{n} {status}" for status, n in counts.items() if n), file=sys.stderr)
    return 1 if counts["error"] else 0


def _stdout_gone() -> int:
    """``plate predict … | head``: the reader of stdout has gone, so not every row was delivered: status 1, as
    Python's documentation does, without a traceback (and none at exit, flushing into the closed pipe)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1


def _writable_file(path: str, option: str, expected: str) -> None:
    """Refuse ``option``'s ``path`` before the work it would end, where it names a folder (``expected``: what to give)."""
    if Path(path).is_dir():
        raise config_mod.ConfigError(f"{option} {path} is a folder; expected {expected}")


def cmd_export(args: argparse.Namespace) -> int:
    from .dataset import load_split, require_plates
    from .export import check_parity, export_onnx
    from .inference import load_model
    from .sources import open_source

    ckpt = _checkpoint(args)
    _writable_file(args.onnx, "--onnx", "the .onnx file to write, e.g. model.onnx")
    from .inference import missing_onnx

    if missing := missing_onnx():  # the export and its parity check: said before the export, not after
        raise config_mod.ConfigError(f"plate export needs {' and '.join(missing)}, not installed: pip install "
                                     "'plate_lib[export]' (onnx and onnxruntime)")
    out = export_onnx(ckpt, args.onnx)
    print(f"wrote {out}")
    _, cfg = load_model(ckpt)
    pre = cfg.preprocess
    if args.data:
        source = open_source(args.data)
        data = load_split(source, args.split, pre, cfg.data.cache_dir, cfg.data.skip_bad, limit=args.n)
        images = require_plates(data, source, NO_PLATES_FIX, split_option=True).images
    else:  # random inputs still compare the logits; identical plates mean more on real crops (--data)
        images = np.random.default_rng(0).integers(0, 256, (args.n, pre.height, pre.width, pre.channels), np.uint8)
    parity = check_parity(ckpt, out, images)
    print(json.dumps(parity))
    if not parity["ok"]:
        print(f"plate export: parity check FAILED: max abs logit difference {parity['max_abs_diff']:.2e} "
              f"(limit 1e-4), plates identical: {parity['plates_identical']}", file=sys.stderr)
        return 1
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """List the decoded splits cached in ``data.cache_dir`` (least recently used first) and, with ``--prune DAYS``,
    delete those unused for that long."""
    import time

    from .dataset import cached_splits, prune_cache
    from .files import size_text

    folder = Path(args.dir or _cfg(args).data.cache_dir)
    if folder.exists() and not folder.is_dir():
        raise config_mod.ConfigError(f"{folder} is a file; plate cache takes the cache folder (data.cache_dir, or "
                                     "--dir FOLDER)")
    if not folder.is_dir():
        print(f"{folder} holds no cache (data.cache_dir; it is made when a split is first decoded)", file=sys.stderr)
        return 0
    if args.prune is not None:
        gone = prune_cache(folder, args.prune)
        for c in gone:
            print(f"deleted {c.name} ({size_text(c.bytes)}, {c.about.get('source', 'source not recorded')})",
                  file=sys.stderr)
        left = cached_splits(folder)
        print(f"{len(gone)} cached split(s) unused for {args.prune:g} day(s) deleted, {size_text(sum(c.bytes for c in gone))} "
              f"freed; {len(left)} kept in {folder}, {size_text(sum(c.bytes for c in left))}", file=sys.stderr)
        return 0
    caches = cached_splits(folder)
    try:
        print("last_used\tsplit\tplates\tsize\tsource\tcache")
        for c in caches:
            split = c.about.get("split", c.name.rsplit("-", 1)[0])
            source = c.about.get("source", "(not recorded: a cache from before plate_lib recorded its source)")
            print(f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(c.last_used))}\t{split}\t"
                  f"{'' if c.plates is None else c.plates}\t{size_text(c.bytes)}\t{source}\t{c.name}")
        sys.stdout.flush()
    except BrokenPipeError:  # plate cache | head
        return _stdout_gone()
    print(f"{len(caches)} cached split(s) in {folder}, {size_text(sum(c.bytes for c in caches))}; "
          "`plate cache --prune DAYS` deletes those unused for DAYS days", file=sys.stderr)
    return 0


def cmd_convert_checkpoint(args: argparse.Namespace) -> int:
    from .checkpoints import convert_checkpoint

    out = convert_checkpoint(args.old, args.new)
    print(f"wrote {out}: data only, it loads with torch.load(..., weights_only=True)")
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from .checkpoints import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.out)
    print(f"wrote {out}: the mean of {len(args.checkpoints)} checkpoints' weights")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import run_report

    return run_report(args)


OPENCV = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")


def version_text() -> str:
    """``plate --version``: plate_lib's version, Python's and the installed versions of what reads and trains
    (read from the packages' metadata: nothing is imported), for a bug report."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    def installed(*names: str) -> str:  # the first of the names (one library's distributions) installed
        for name in names:
            try:
                return f"{name} {version(name)}"
            except PackageNotFoundError:
                pass
        return f"{names[0]} not installed"

    libs = ", ".join(installed(*names) for names in (("torch",), ("torchvision",), OPENCV, ("onnxruntime",)))
    return f"plate_lib {__version__} (Python {sys.version.split()[0]}; {libs})"


def positive(text: str) -> int:
    """A count of 1 or more, as an option's argument."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more; got {text!r}")
    return n


def days(text: str) -> float:
    """``plate cache --prune``'s argument: a number of days, 0 or more."""
    try:
        n = float(text)
    except ValueError:
        n = -1.0
    if not n >= 0 or math.isinf(n):
        raise argparse.ArgumentTypeError(f"expected a number of days, 0 or more (0 deletes every cache); got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    plain = argparse.ArgumentParser(add_help=False)  # commands that read no config: checkpoints carry their own
    plain.add_argument("--debug", action="store_true", help="show tracebacks")
    plain.add_argument("--quiet", action="store_true", help="no progress bars")
    plain.set_defaults(config="cfg.yaml", profile=None, set=None)
    common = argparse.ArgumentParser(add_help=False, parents=[plain])
    common.add_argument("--config", default="cfg.yaml", help="config file (default: cfg.yaml, else built-in defaults)")
    common.add_argument("--profile", action="append", metavar="YAML",
                        help="a file of dotted-key overrides (profiles/), applied before --set; repeat to stack")
    common.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. training.epochs=3")

    p = argparse.ArgumentParser(prog="plate", description="Chinese licence-plate recognition on CCPD.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # --version's line unwrapped
    p.add_argument("--version", action="version", version=version_text(),
                   help="show plate_lib's version and those of the libraries it runs on, and exit")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", parents=[common], help="write synthetic plates as a CCPD2019-dl1-layout zip")
    g.add_argument("--out", help="zip to write (default: data.synthetic_path)")
    g.add_argument("--n", type=int, help="training plates (default: synth.n_train); test gets n/10")
    g.add_argument("--n-test", type=int, help="test plates")
    g.add_argument("--seed", type=int, help="generator seed (default: synth.seed)")
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", parents=[common], help="train as configured")
    t.add_argument("--resume", action="store_true", help="continue from runs/<name>/last.pt")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", parents=[common], help="evaluate a checkpoint; prints one JSON object")
    e.add_argument("--checkpoint", help="default: models/plate_default.pt, else runs/default/best.pt")
    e.add_argument("--data", required=True, help="a dl1 zip, a crops folder or a CCPD2019 folder")
    e.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="the split read (default: test; all: every plate of the source)")
    e.add_argument("--skip-bad", action="store_true", help="skip bad images and labels (counted)")
    e.add_argument("--device", default="auto", help="auto (cuda when a GPU answers, else cpu), cpu, cuda, cuda:N or mps")
    e.add_argument("--out", help="also write one CSV row per plate here")
    e.add_argument("--by-colour", action="store_true",
                   help="also measure blue, yellow and green plates apart (colours: green by 8 characters, else "
                        "the crop's hue, as plate predict's kind; unknown where it has none)")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", parents=[common], help="read the plate in each image: plate crops, CCPD2019 "
                       "photos with their annotation in the file name, or whole photos (the plate found by its "
                       "colour); one row per file",
                       description="One row per image file: file, plate, confidence, kind (blue, yellow, green, "
                       "unknown), status (ok; low_confidence: below predict.min_confidence, check by eye; not_a_crop: "
                       "no plate crop's size or shape and no plate found in it, not read; error: the file cannot be "
                       "read, the error column says why), error, box (a whole photo: where the plate read was found, "
                       "x1 y1 x2 y2). Exit status 0, or 1 when any row is an error.")
    r.add_argument("images", nargs="+", metavar="IMAGE",
                   help="an image file, a folder (its images, recursively), a zip (its images, read in place), "
                        "a glob pattern, or - (paths on stdin)")
    r.add_argument("--format", default="tsv", choices=["tsv", "csv", "json"],
                   help="columns file, plate, confidence, kind, status, error, box (default: tsv)")
    r.add_argument("--checkpoint", help="default: models/plate_default.pt, else runs/default/best.pt")
    r.add_argument("--device", default="auto", help="auto (cuda when a GPU answers, else cpu), cpu, cuda, cuda:N or mps")
    r.set_defaults(func=cmd_predict)

    x = sub.add_parser("export", parents=[plain], help="export a checkpoint to ONNX and check parity with PyTorch")
    x.add_argument("--checkpoint", help="default: models/plate_default.pt, else runs/default/best.pt")
    x.add_argument("--onnx", required=True, help="the .onnx file to write")
    x.add_argument("--data", help="check parity on this data's crops (default: random images)")
    x.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="the split of --data the parity check reads (default: test)")
    x.add_argument("--n", type=positive, default=256, help="images for the parity check (default: 256)")
    x.set_defaults(func=cmd_export)

    m = sub.add_parser("models", parents=[plain], help="list the registered models")
    m.set_defaults(func=cmd_models)

    ca = sub.add_parser("cache", parents=[common], help="list the decoded splits cached in data.cache_dir; "
                        "--prune DAYS deletes those unused for that long")
    ca.add_argument("--prune", type=days, metavar="DAYS",
                    help="delete the cached splits not read for DAYS days (0: all); they are decoded again when needed")
    ca.add_argument("--dir", help="the cache folder (default: data.cache_dir)")
    ca.set_defaults(func=cmd_cache)

    rep = sub.add_parser("report", parents=[common], help="run the notebooks 01-03 (data, training, error analysis) "
                         "with papermill into reports/ and HTML, as `make report` does")
    rep.add_argument("--data", help="a dl1 zip, crops folder or CCPD2019 folder (default: data.source)")
    rep.set_defaults(func=cmd_report)

    c = sub.add_parser("convert-checkpoint", parents=[plain],
                       help="rewrite an older plate_lib checkpoint as data only; this loads OLD in full, which runs "
                            "any code it holds: only for a file you made or trust")
    c.add_argument("old", help="the checkpoint that plate_lib refuses to load")
    c.add_argument("new", help="where to write the converted checkpoint")
    c.set_defaults(func=cmd_convert_checkpoint)

    a = sub.add_parser("average", parents=[plain],
                       help="a checkpoint whose weights are the mean of those of one run's checkpoints (e.g. the "
                            "epochs training.keep_epochs keeps)")
    a.add_argument("checkpoints", nargs="+", help="two or more checkpoints of the same model")
    a.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    a.set_defaults(func=cmd_average)
    return p


USER_ERRORS = (config_mod.ConfigError, FileNotFoundError)


def _user_error(args: argparse.Namespace, e: BaseException) -> int:
    print(f"plate {args.command}: error: {e}", file=sys.stderr)
    print("(run with --debug for the traceback)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from .errors import DISK_FULL, CheckpointError, DiskFullError, ModelError
    from .plates import PlateError
    from .sources import DataError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except (*USER_ERRORS, DataError, PlateError, CheckpointError, ModelError, DiskFullError) as e:
        if args.debug:
            raise
        return _user_error(args, e)
    except OSError as e:  # a full disk anywhere else (run logs, CSV rows, the synthetic zip)
        if args.debug or e.errno not in DISK_FULL:
            raise
        where = f" while writing {e.filename}" if e.filename else ""
        return _user_error(args, f"no space left on the device{where} ({e.strerror}); free some space, or write "
                                 "elsewhere (training.out_dir, data.cache_dir, data.synthetic_path), then run again")
    except KeyboardInterrupt as e:
        hint = "; `plate train --resume` continues from the last checkpoint" if args.command == "train" else ""
        print(f"plate {args.command}: interrupted{hint}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
