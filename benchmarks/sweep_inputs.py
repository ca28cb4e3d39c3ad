"""Point cryonb at a folder of files and see how each one is handled.

For every file under FOLDER (recursively) with a suffix cryonb reads, this runs ``cryonb info``
(in-process, as the command line does) and, for particle files, ``load_particles`` followed by a
pass over the images, poses, shifts and CTF, and classifies each step:

    loaded       read without error (and every number finite)
    clear error  refused with a cryonb error (one line naming the file, the problem, the fix)
    traceback    any other exception: a bug to report (give the file if you can)
    non-finite   read, but holds NaN or infinite values that nothing refused

It prints one row per file and a summary, and exits 1 if any step gave a traceback or
non-finite data, so it can guard a folder of test files in CI:

    python benchmarks/sweep_inputs.py /data/my_project --max-images 5000
    python benchmarks/sweep_inputs.py ../shared/data/real --json sweep.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SUFFIXES = (".mrc", ".mrcs", ".map", ".ccp4", ".st", ".star", ".cs", ".pkl", ".npy")
PARTICLE_SUFFIXES = (".star", ".cs", ".mrcs", ".mrc", ".st")
LOADED, CLEAR, TRACEBACK, NON_FINITE, SKIPPED = "loaded", "clear error", "traceback", "non-finite", "-"
WORST = (TRACEBACK, NON_FINITE, CLEAR, LOADED, SKIPPED)  # the order in which a file's overall class is chosen


@dataclass
class Step:
    status: str
    detail: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Row:
    path: str
    info: Step
    load: Step

    @property
    def overall(self) -> str:
        return min((self.info.status, self.load.status), key=WORST.index)


def _one_line(text: str, width: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def run_step(fn) -> Step:
    """Run ``fn()``; a cryonb error is a clear error, any other exception a traceback.

    ``fn`` returns None (loaded) or a string saying what is not finite.
    """
    from cryonb.core.errors import CryonbError

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            problem = fn()
            step = Step(NON_FINITE, problem) if problem else Step(LOADED)
        except CryonbError as err:
            step = Step(CLEAR, _one_line(err))
        except (Exception, MemoryError, RecursionError) as err:  # noqa: BLE001 - classifying is the point
            frames = traceback.extract_tb(err.__traceback__)
            where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            step = Step(TRACEBACK, _one_line(f"{type(err).__name__}: {err}{where}"))
    step.seconds = time.perf_counter() - start
    step.warnings = [_one_line(w.message) for w in caught]
    return step


def info_step(path: Path, apix: float | None) -> Step:
    """``cryonb info FILE`` as the console script runs it: exit status 2 is a clear error."""
    from cryonb.cli import main as cli
    from cryonb.core.errors import CryonbError

    def call():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli(["info", str(path), *(["--apix", str(apix)] if apix else [])])
        if code == 2:
            raise CryonbError(err.getvalue().strip().removeprefix("cryonb info: error: "))
        if code:
            raise RuntimeError(f"exit status {code}: {err.getvalue().strip()}")
        text = out.getvalue().lower()
        return "the description shows nan or inf" if " nan" in text or " inf " in text else None

    return run_step(call)


def _is_map(path: Path) -> bool:
    """A .mrc whose data are a volume: load_particles refuses it, rightly; not a particle file to test."""
    from cryonb.core.io.mrc import read_header

    if path.suffix.lower() != ".mrc":
        return False
    try:
        return not read_header(path).looks_like_stack
    except Exception:  # noqa: BLE001 - let load_particles say what is wrong
        return False


def load_step(path: Path, datadir: str | None, apix: float | None, max_images: int | None, chunk: int = 256) -> Step:
    """``load_particles`` and a read of its images (up to ``max_images``) and metadata, checked finite."""
    from cryonb.core.particles import load_particles

    if path.suffix.lower() not in PARTICLE_SUFFIXES or _is_map(path):
        return Step(SKIPPED)

    def call():
        particles = load_particles(path, datadir=datadir, apix=apix)
        problems = []
        for name in ("rotations", "shifts", "ctf"):
            values = getattr(particles, name)
            if values is not None and not np.isfinite(np.asarray(values, dtype=np.float64)).all():
                problems.append(f"{name} not finite")
        if particles.images is not None:
            n = len(particles) if max_images is None else min(len(particles), max_images)
            for start in range(0, n, chunk):
                block = np.asarray(particles.images[start : min(n, start + chunk)], dtype=np.float32)
                bad = ~np.isfinite(block.reshape(len(block), -1)).all(1)
                if bad.any():
                    problems.append(f"image {start + int(np.argmax(bad))} not finite")
                    break
        return "; ".join(problems) or None

    return run_step(call)


def sweep(folder: str | Path, *, datadir: str | None = None, apix: float | None = None, max_images: int | None = None,
          progress=None) -> list[Row]:
    """Classify every readable-looking file under ``folder`` (or the one file ``folder``)."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    rows = []
    for path in files:
        rows.append(Row(str(path), info_step(path, apix), load_step(path, datadir, apix, max_images)))
        if progress is not None:
            progress(rows[-1])
    return rows


def table(rows: list[Row], root: str | Path | None = None, width: int = 100) -> str:
    """The rows as an aligned text table, then a count of each class."""
    def name(row):
        p = Path(row.path)
        with contextlib.suppress(ValueError):
            return str(p.relative_to(root)) if root is not None and Path(root).is_dir() else str(p)
        return str(p)

    names = [name(r) for r in rows]
    w = max([len("file"), *map(len, names)])
    lines = [f"{'file':<{w}}  {'overall':<11}  {'info':<11}  {'load_particles':<14}  detail"]
    for n, r in zip(names, rows):
        detail = next((s.detail for s in (r.load, r.info) if s.status == r.overall and s.detail), "")
        if not detail and r.overall == LOADED:
            detail = next((f"warning: {s.warnings[0]}" for s in (r.info, r.load) if s.warnings), "")
        lines.append(f"{n:<{w}}  {r.overall:<11}  {r.info.status:<11}  {r.load.status:<14}  {_one_line(detail, width)}")
    counts = {c: sum(r.overall == c for r in rows) for c in WORST if c != SKIPPED}
    lines.append("")
    lines.append(f"{len(rows)} files: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="folder (searched recursively) or a single file")
    parser.add_argument("--datadir", help="folder of the image stacks, passed to load_particles")
    parser.add_argument("--apix", type=float, help="pixel size in Å, passed to cryonb info and load_particles")
    parser.add_argument("--max-images", type=int, help="images read (and checked finite) per file (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quiet", action="store_true", help="no line per file while sweeping")
    args = parser.parse_args(argv)
    if not Path(args.folder).exists():
        print(f"sweep_inputs: {args.folder}: no such file or folder", file=sys.stderr)
        return 2

    def progress(row):
        if not args.quiet:
            print(f"  {row.overall:<11} {row.path}", file=sys.stderr)

    rows = sweep(args.folder, datadir=args.datadir, apix=args.apix, max_images=args.max_images, progress=progress)
    print(table(rows, args.folder))
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "overall": r.overall} for r in rows], indent=2))
    return int(any(r.overall in (TRACEBACK, NON_FINITE) for r in rows))


if __name__ == "__main__":
    sys.exit(main())
