"""The ``cryonb`` console script: one module per command, each callable in-process.

Every command module exposes ``add_args(parser)`` and ``main(args)``; a ``description`` comes from
the module docstring. Errors cryonb raises on bad input are printed as one line, not a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from ..core.errors import CryonbError

COMMANDS = ("demo", "info", "simulate", "backproject", "fsc", "train", "abinit", "downsample", "share", "analyze", "variability")


def _module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="cryonb", description="Cryo-EM heterogeneity analysis, notebook first.")
    parser.add_argument("--version", action="version", version=f"cryonb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _module(name)
        doc = (module.__doc__ or "").strip()
        cmd = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args._main(args)
    except CryonbError as err:
        print(f"cryonb {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk or a file that may not be read or written, wherever it happened
        from ..core.io.atomic import DENIED, DISK_FULL

        if err.errno not in DISK_FULL + DENIED:
            raise
        where = f"{err.filename}: " if err.filename else ""
        if err.errno in DISK_FULL:
            problem, fix = "no space left on the disk", "free some space, or write to another disk, and run the command again"
        else:
            problem = "read-only file system" if err.errno == errno.EROFS else "permission denied"
            fix = "check the permissions of that file and its folder, or write to another folder"
        print(f"cryonb {args.command}: error: {where}{problem}. Fix: {fix}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
