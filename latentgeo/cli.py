"""The ``latentgeo`` command line: ``demo``, ``analyze`` and ``info``.

Exit codes: 0 success; 1 runtime failure (a corrupt store, a store still being written, an
error while computing); 2 usage error (bad arguments, a missing store, an unknown layer).
Errors print one line to stderr, ``latentgeo: error: ...``, never a traceback (set
``LATENTGEO_DEBUG=1`` to get the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_EPILOG = (
    "exit codes: 0 ok, 1 runtime failure (corrupt or busy store, computation error), "
    "2 usage error (bad arguments, missing store, unknown layer)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``latentgeo`` command (one sub-command per task)."""
    from latentgeo import __version__

    parser = argparse.ArgumentParser(
        prog="latentgeo",
        description=(
            "Record, probe and follow the symmetry of latent representations over training."
        ),
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"latentgeo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="train plain, rot90- and flip-augmented CNNs and a P4CNN on digits; compare them",
        description=(
            "Train a plain SmallCNN, the same CNN with random rot90 augmentation, the same CNN "
            "with random left-right flips and a P4CNN (C4 group convolutions) on "
            "scikit-learn's 8x8 digits; record 4 layers of each under the C4 rotation orbit "
            "(D4 for the flip-trained CNN) of held-out digits on a log-spaced schedule; probe "
            "equivariance, invariance, irreps and the subgroups each layer respects; follow "
            "the layers' subspaces over training; write figures, summary.json and a "
            "self-contained report.html."
        ),
        epilog=_EPILOG,
    )
    demo.add_argument(
        "--out", default="demo_out", help="output folder (default: %(default)s)", metavar="DIR"
    )
    demo.add_argument(
        "--quick", action="store_true", help="tiny settings that finish in under a minute"
    )
    demo.add_argument(
        "--device", default="cpu", help="torch device for training and probes (default: cpu)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data split and models")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    analyze = sub.add_parser(
        "analyze",
        help="probe a run store, follow its geometry, write figures and a report",
        description=(
            "Run the probes (equivariance R² with null level and bootstrap intervals, "
            "invariance, irrep spectrum, homomorphism error) and subspace trajectories on a "
            "run store, caching results in the store; write figures, summary.json and "
            "report.html."
        ),
        epilog=_EPILOG,
    )
    analyze.add_argument("store", help="path or URL of a run store (*.zarr)")
    analyze.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default: STORE_analysis)"
    )
    analyze.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    analyze.add_argument(
        "--layers", nargs="+", default=None, help="layers to analyse (default: all)"
    )
    analyze.add_argument(
        "--format",
        nargs="+",
        default=["png"],
        choices=["png", "pdf", "svg"],
        dest="formats",
        help="figure file formats (default: png; the report always embeds PNG)",
    )
    analyze.add_argument("--no-progress", action="store_true", help="hide progress bars")

    info = sub.add_parser(
        "info",
        help="describe a run store: layers, shapes, steps, group, size",
        description="Describe a run store without loading its latents.",
        epilog=_EPILOG,
    )
    info.add_argument("store", help="path or URL of a run store (*.zarr)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from latentgeo import pipeline

    if args.command == "info":
        print(pipeline.format_info(pipeline.info(args.store)))
        return EXIT_OK
    if args.command == "analyze":
        out = args.out or f"{str(args.store).rstrip('/')}_analysis"
        summary = pipeline.analyze(
            args.store,
            out,
            device=args.device,
            layers=args.layers,
            progress=not args.no_progress,
            formats=args.formats,
        )
        print(pipeline.format_summary(summary))
        return EXIT_OK
    if args.command == "demo":
        summary = pipeline.demo(
            out=args.out,
            quick=args.quick,
            device=args.device,
            seed=args.seed,
            progress=not args.no_progress,
        )
        print(pipeline.format_demo_summary(summary))
        return EXIT_OK
    raise RuntimeError(f"unhandled command {args.command!r}")  # argparse rejects others


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``latentgeo`` console script.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 ok, 1 runtime failure, 2 usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (argparse prints it)
        return int(exit_.code or 0)

    from latentgeo.pipeline import CorruptStoreError, PipelineError, StoreBusyError, UsageError

    try:
        return _run(args)
    except UsageError as err:
        print(f"latentgeo {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (PipelineError, StoreBusyError, CorruptStoreError) as err:
        print(f"latentgeo {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("latentgeo: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("LATENTGEO_DEBUG") == "1":
            traceback.print_exc()
        print(
            f"latentgeo {args.command}: error: {type(err).__name__}: {err} "
            "(set LATENTGEO_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
