"""Run one cryoDRGN command in-process: ``python3 drgn_cmd.py COMMAND ARGS...`` (as ``cryodrgn COMMAND ARGS...``).

For cryoDRGN installed without its console scripts (wheels unpacked with ``pip install --target``,
then ``PYTHONPATH=<target>``): imports ``cryodrgn.commands.COMMAND`` and runs its ``main``.
"""

import argparse
import importlib
import sys


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    module = importlib.import_module("cryodrgn.commands." + argv[0])
    parser = argparse.ArgumentParser(prog=f"cryodrgn {argv[0]}")
    module.add_args(parser)
    module.main(parser.parse_args(argv[1:]))


if __name__ == "__main__":
    main()
