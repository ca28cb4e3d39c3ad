"""The files that make a bundle a repository of its own: README, notebook, Binder configuration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..io.atomic import atomic_write

CPU_TORCH = "--extra-index-url https://download.pytorch.org/whl/cpu"

NOTEBOOK_CELLS = [
    ("markdown", "# {title}\n\n"
                 "A shared cryonb analysis: {n:,} particles, a {zdim}-dimensional latent space, maps of {box}³ voxels at "
                 "{apix:g} Å. The bundle holds the trained decoder, the latents and the particle metadata, not the "
                 "images: it shows the latent space, selects particles, generates a map for any latent and writes "
                 "selections that apply to the original particle file. Run the cells from the top."),
    ("code", "import cryonb\nfrom cryonb.core.share import open_bundle\n\nbundle = open_bundle(\".\")  # this folder\nbundle"),
    ("markdown", "## The latent space\n\nEvery particle's latent in the sharer's 2D view, coloured by their clusters. "
                 "Draw a **lasso** or a **box** with the plot's tools to select particles; the gallery shows the "
                 "thumbnails the bundle holds of them, and **Mean-z volume** the map at their mean latent."),
    ("code", "view = cryonb.explore(bundle)\nview"),
    ("markdown", "## The sharer's selections\n\nSelections saved with the bundle, by name (rows of `bundle.run.z`). "
                 "Selecting in code does the same as a lasso."),
    ("code", "print({name: len(rows) for name, rows in bundle.selections.items()})\n"
             "if bundle.selections:\n    view.explorer.select(next(iter(bundle.selections.values())))\n"
             "print(view.explorer.summary)"),
    ("markdown", "## A map at any latent\n\nThe decoder generates the map at the mean latent of the selection "
                 "(or of all particles), shown as an isosurface."),
    ("code", "from cryonb.widgets import VolumeViewer\n\n"
             "positions = view.explorer.positions if len(view.explorer.positions) else slice(None)\n"
             "viewer = VolumeViewer(bundle.run).show(bundle.run.z[positions].mean(0))\nviewer"),
    ("markdown", "## A trajectory\n\nA traversal the sharer saved, or else the first principal component of the "
                 "latents, played as maps."),
    ("code", "from cryonb.core.analysis import pc_traversal\nfrom cryonb.widgets import TrajectoryPlayer\n\n"
             "zs = next(iter(bundle.traversals.values())) if bundle.traversals else pc_traversal(bundle.run.z, 0, n=8)\n"
             "player = TrajectoryPlayer(bundle.run, zs)\nplayer"),
    ("markdown", "## Save a selection for your copy of the data\n\n"
                 "`save` writes a `.{fmt}` with the selected rows of the particle file (the same rows as in the "
                 "original `{source}`) and `.ind.npy`/`.ind.pkl` index files of their original row numbers. "
                 "Apply either to your own copy of the data (RELION, cryoSPARC, cryoDRGN or cryonb)."),
    ("code", "if len(view.explorer.positions):\n    written = view.explorer.save(\"my_selection\")\n"
             "    print(written)\nelse:\n    print(\"select some particles first\")"),
]


def notebook(manifest: dict) -> dict:
    """The bundle's ``explore.ipynb`` (nbformat 4, no outputs)."""
    fields = {"title": manifest["title"], "n": manifest["n_particles"], "zdim": manifest["zdim"], "box": manifest["box"],
              "apix": manifest["apix"], "fmt": manifest["particles"]["format"],
              "source": manifest["particles"]["source"] or "particle file"}
    cells = []
    for kind, text in NOTEBOOK_CELLS:
        source = text.format(**fields) if kind == "markdown" else text
        cell = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def readme(manifest: dict, sizes: dict[str, int]) -> str:
    """The bundle's README: what it holds, how to open it, how to apply a selection."""
    p, z = manifest["particles"], manifest["latents"]
    source = p["source"] or "the particles held in memory"
    precision = (f"float16 (the largest rounding, {z['max_error']:.2g}, changes the decoder's output by "
                 f"{z['map_change']:.1e} of its norm: nothing visible)" if z["dtype"] == "float16" else "float32")
    rows = "\n".join(f"| `{name}` | {_size(size)} |" for name, size in sorted(sizes.items()))
    thumbs = manifest.get("thumbnails")
    return f"""# {manifest['title']}

A shared cryonb analysis of {manifest['n_particles']:,} particles
(latent space of {manifest['zdim']} dimensions, maps of {manifest['box']}³ voxels at {manifest['apix']:g} Å),
written by {manifest['written_by']} on {manifest['created']}. It holds no particle images, only what
exploring the run needs.

## Open it

- **On Binder**: push this folder to a public repository, then open
  `https://mybinder.org/v2/gh/OWNER/REPO/HEAD?labpath=explore.ipynb` (OWNER/REPO: that repository).
  `binder/` installs the CPU build of torch and the cryonb version that wrote the bundle.
- **On your machine**: `pip install -r binder/requirements.txt`, then `jupyter lab explore.ipynb`; or in
  Python, `cryonb.explore("path/to/this/folder")`.

## Apply a selection to your data

A selection saved from the bundle (`view.explorer.save("name")`) is a `.{p['format']}` holding the
selected rows of `particles/{p['file'].removesuffix('.gz')}`, whose rows are those of {source}
in the same order, plus `name.ind.npy`/`name.ind.pkl` with their original row numbers. Image names
are as the original file wrote them: use the `.{p['format']}` where the original file lay (a RELION
project folder), or apply the index files to your copy (cryoDRGN's `--ind`, or
`cryonb.load_particles(file).subset(np.load("name.ind.npy"))`).

## What is inside

| part | size |
|---|---|
{rows}

- `run/`: `decoder.pt` (weights only), `config.json`, `z.npy` (latents, {precision}), and where
  saved the 2D view (`coords.npy`), cluster labels (`clusters.npy`) and traversals (`traversals/`).
- `particles/`: the particle metadata without images ({p['columns']} columns of the {p['source_format']}
  source, gzip-compressed: `gunzip -k` gives the plain file), `rows.npy` (each particle's row in it).
- `selections/`: the sharer's selections, rows of `z.npy`.
- `thumbnails/`: {f"{thumbs['count']} particle images of {thumbs['box']}² pixels for the gallery" if thumbs else "none"}.
- `cryonb-bundle.json`: the manifest (bundle format {manifest['cryonb_bundle_version']}, every file's size
  and SHA-256). Reading a bundle runs no code from it: arrays are read without pickles and the weights
  with `torch.load(weights_only=True)`.
"""


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def requirements(requirement: str) -> str:
    return (f"# Written by cryonb share. The CPU build of torch (not several GB of CUDA packages).\n{CPU_TORCH}\n"
            f"torch\n# The cryonb that wrote this bundle, with its notebook views. If it is not installable by this\n"
            f"# name, replace the line by where it comes from (e.g. a git URL at a fixed commit).\n{requirement}\n"
            f"jupyterlab>=4\n")


def write_files(folder: Path, manifest: dict, requirement: str) -> None:
    """README.md, explore.ipynb, binder/ and .gitignore into ``folder``."""
    sizes: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            part = path.relative_to(folder).parts[0]
            sizes[part] = sizes.get(part, 0) + path.stat().st_size
    (folder / "binder").mkdir(exist_ok=True)
    texts = {
        "README.md": readme(manifest, sizes),
        "explore.ipynb": json.dumps(notebook(manifest), indent=1) + "\n",
        "binder/requirements.txt": requirements(requirement),
        "binder/runtime.txt": f"python-3.{max(sys.version_info.minor, 10)}\n",
        ".gitignore": ".cache/\n.ipynb_checkpoints/\n",
    }
    for name, text in texts.items():
        with atomic_write(folder / name, "w") as f:
            f.write(text)
