"""Train the heterogeneous model on a particle set, headless (the same Trainer a notebook drives).

Writes RUN/config.json, RUN/checkpoints/ (the last two) and, at the end, RUN/z.npy (latent means in
the particle set's order). Running again with the same --outdir continues from the last complete
checkpoint; it applies a new --epochs or --lr, and refuses options that would change the model (use
a new --outdir). Ctrl-C stops with a checkpoint, exits 130 and marks RUN/INTERRUPTED.
--gpus K > 1 relaunches itself under torchrun (one process per GPU, DistributedDataParallel).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def add_args(parser):
    parser.add_argument("particles", help=".star, .cs or .mrcs (with --poses/--ctf) particle file")
    parser.add_argument("--outdir", "-o", type=Path, required=True, help="run folder (created, or continued)")
    parser.add_argument("--epochs", type=int, help="epochs to train in total (default: 16 on a GPU, 20 on a CPU, or the number a continued run was given)")
    parser.add_argument("--zdim", type=int, help="latent dimension; 0 for a homogeneous model (default: 8)")
    parser.add_argument("--datadir", help="folder of the image stacks (default: next to the particle file)")
    parser.add_argument("--apix", type=float, help="pixel size in Å, overriding the files'")
    parser.add_argument("--poses", help="cryoDRGN poses .pkl (for a bare stack)")
    parser.add_argument("--ctf", help="cryoDRGN CTF .pkl (for a bare stack)")
    parser.add_argument("--box", type=int, help="Fourier-crop the images to this box first")
    parser.add_argument("--width", type=int, help="encoder and decoder width (default: 1024 on a GPU, 256 on a CPU)")
    parser.add_argument("--depth", type=int, help="encoder and decoder hidden layers (default: 3)")
    parser.add_argument("--decoder", choices=("mlp", "gmm"), help="mlp (default) or gmm: a Gaussian mixture fitted to --neutral-map "
                        "whose Gaussians move with the latent (cryonb.core.gmm)")
    parser.add_argument("--gmm-mode", choices=("both", "position", "amplitude"),
                        help="with --decoder gmm: what the latent changes, positions (conformations), amplitudes (composition) or both (default)")
    parser.add_argument("--gmm-mask", help="with --decoder gmm: a mask map; only the Gaussians inside it move (focused analysis)")
    parser.add_argument("--neutral-map", help="with --decoder gmm: the consensus map (e.g. from cryonb backproject) or a .npz mixture")
    parser.add_argument("--encoding", help="positional encoding: gaussian, geometric, geometric_lowf (default: gaussian on a GPU, geometric on a CPU)")
    parser.add_argument("--plain", action="store_true", help="plain hidden layers (default: residual layers on a GPU, plain on a CPU)")
    parser.add_argument("--batch-size", type=int, help="images per step, over all GPUs (default: 32 on a GPU, 64 on a CPU)")
    parser.add_argument("--lr", type=float, help="learning rate (default: 3e-4 on a GPU, 1e-4 on a CPU)")
    parser.add_argument("--decoder-lr-scale", type=float,
                        help="the decoder's learning rate as a multiple of --lr (default: 1). 2 gave better maps at box 128 "
                        "but a less stable Gaussian-mixture clustering on one benchmark set (docs/benchmarks.md)")
    parser.add_argument("--pixel-fraction", type=float,
                        help="the share of each image's pixels a step fits, a fresh random draw per step (default: 1). "
                        "With --batch-size 16 --lr 2e-4 --epochs 20, 0.5 drew better maps in less time on the benchmark suite at "
                        "box 128, but found compositional classes less steadily (docs/benchmarks.md)")
    parser.add_argument("--pixel-core", type=float,
                        help="with --pixel-fraction below 1, fit every pixel within this fraction of Nyquist at every step and "
                        "draw the share from the pixels beyond it, weighted so that the error stays unbiased (default: 0, a "
                        "uniform draw). 0.5 with --pixel-fraction 0.5 took 24 %% less time at box 128 on the benchmark suite, "
                        "with the same latents, but slightly weaker maps on its compositional set (docs/benchmarks.md)")
    parser.add_argument("--pixel-until", type=float,
                        help="the share of the planned epochs over which --pixel-fraction applies; every pixel is fitted after "
                        "it (default: 1, throughout). 0.75 with --pixel-fraction 0.5 --pixel-core 0.5 did not give back the "
                        "compositional set's maps that the share cost at box 128 (docs/benchmarks.md)")
    parser.add_argument("--slice-filters", type=int,
                        help="the encoder also reads each image's correlations with this many learned 3D filters at its pose "
                        "(default: 32 on a GPU, reaching 16 pixels of frequency, 32 from box 128 up: they found more on the "
                        "benchmark suite at boxes 64 and 128, motions at SNR 0.01 among it; 0 on a CPU; docs/benchmarks.md)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"),
                        help="cosine: a short warm-up, then down to a tenth by the last epoch (default: cosine on a GPU, constant on a CPU)")
    parser.add_argument("--no-graphs", action="store_true", help="launch each step's GPU kernels from Python instead of replaying a CUDA graph")
    parser.add_argument("--beta", type=float, help="KL weight (default: 0 on a GPU from a box of 128 with known poses, else 1/zdim)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")
    parser.add_argument("--device", help="auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs to train on with DistributedDataParallel, the same steps as one GPU, faster "
                        "from 256 images per GPU on (default: 1)")
    nodes = parser.add_argument_group("several nodes (run the same command on each; docs: Training on a cluster)")
    nodes.add_argument("--nnodes", type=int, default=1, help="nodes of the job (default: 1)")
    nodes.add_argument("--node-rank", type=int, default=0, help="this node's number, 0 to nnodes-1 (default: 0)")
    nodes.add_argument("--master-addr", default="127.0.0.1", help="address of node 0 (default: 127.0.0.1)")
    nodes.add_argument("--master-port", type=int, default=29500, help="a free port on node 0 (default: 29500)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (faster for long GPU runs)")
    parser.add_argument("--no-amp", action="store_true", help="train in float32 instead of bfloat16 autocast")
    parser.add_argument("--checkpoint-every", type=int, help="epochs between checkpoints (default: 1)")
    stream = parser.add_mutually_exclusive_group()
    stream.add_argument("--stream", action="store_true", help="stream the images from a disk cache (OUTDIR/cache) "
                        "instead of holding them in memory (default: only when they would not fit in half the free memory)")
    stream.add_argument("--no-stream", action="store_true", help="hold the images in memory even if they seem too large")
    parser.add_argument("--cache-dtype", choices=("complex64", "float16", "bfloat16"),
                        help="numbers of the streamed cache: bfloat16/float16 halve its size and reads (default: complex64)")
    parser.add_argument("--cache-dir", type=Path, help="folder of the streamed cache (default: OUTDIR/cache); a cache is "
                        "reused only when its images, box and numbers match, so runs on one stack can share one")


# Options that define the model and its training path: a continued run keeps the ones it was started with.
# option -> (config fields, the config value the option stands for)
FIXED = {
    "zdim": (("zdim",), lambda v: v), "width": (("enc_width", "dec_width"), lambda v: v),
    "depth": (("enc_depth", "dec_depth"), lambda v: v), "encoding": (("encoding",), lambda v: v),
    "plain": (("residual",), lambda v: False), "box": (("box",), lambda v: v), "batch_size": (("batch_size",), lambda v: v),
    "lr_schedule": (("lr_schedule",), lambda v: v), "beta": (("beta",), lambda v: v), "seed": (("seed",), lambda v: v),
    "decoder": (("decoder",), lambda v: v), "neutral_map": (("neutral_map",), lambda v: str(Path(v).resolve())),
    "gmm_mode": (("gmm_mode",), lambda v: v), "gmm_mask": (("gmm_mask",), lambda v: str(Path(v).resolve())),
    "decoder_lr_scale": (("decoder_lr_scale",), lambda v: v), "pixel_fraction": (("pixel_fraction",), lambda v: v),
    "pixel_core": (("pixel_core",), lambda v: v), "pixel_until": (("pixel_until",), lambda v: v),
    "slice_filters": (("slice_filters",), lambda v: v),
}
# Options a continued run takes up.
CHANGEABLE = {
    "epochs": ("epochs", lambda v: v), "lr": ("lr", lambda v: v), "device": ("device", lambda v: v),
    "checkpoint_every": ("checkpoint_every", lambda v: v), "compile": ("compile", lambda v: True),
    "no_graphs": ("cuda_graphs", lambda v: False), "no_amp": ("amp", lambda v: False),
    "stream": ("stream", lambda v: True), "no_stream": ("stream", lambda v: False), "cache_dtype": ("cache_dtype", lambda v: v),
    "cache_dir": ("cache_dir", lambda v: str(Path(v).resolve())),
}
NEW_RUN_DEFAULTS = {"zdim": 8, "depth": 3, "seed": 0, "device": "auto", "checkpoint_every": 1}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _continue(args, particles, given):
    """Continue the run in --outdir: refuse options that would change what it is, apply the others."""
    from dataclasses import asdict

    from ..core.errors import InputError
    from ..core.training import Trainer, TrainConfig, read_run_config

    run = asdict(TrainConfig.from_dict(read_run_config(args.outdir)["config"]))  # as the run resolves it (older keys too)
    conflicts = []
    for name, (keys, value) in FIXED.items():
        if name in given and any(run.get(key) != value(given[name]) for key in keys):
            was = run.get(keys[0]) if keys[0] != "residual" else ("residual" if run.get("residual") else "plain")
            conflicts.append(f"{_flag(name)} {given[name] if given[name] is not True else ''}".rstrip() + f" (the run has {was})")
    if conflicts:
        raise InputError(args.outdir, "is a run started with other settings, which cannot change when it continues: " + "; ".join(conflicts),
                         "pass a new --outdir to start a new run with these settings, or leave these options out to continue this one")
    changes = {CHANGEABLE[name][0]: CHANGEABLE[name][1](v) for name, v in given.items() if name in CHANGEABLE}
    changes = {key: v for key, v in changes.items() if run.get(key) != v}
    lr = changes.pop("lr", None)
    trainer = Trainer.from_run(args.outdir, particles, **changes)
    if lr is not None:
        trainer.set_learning_rate(lr)
        changes["lr"] = lr
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process:
        print(f"continuing {args.outdir} from epoch {trainer.epoch}")
        given_path, recorded = str(Path(args.particles).resolve()), run.get("particles")
        if recorded and recorded != given_path:
            print(f"note: the run was started on {recorded}; continuing on {given_path} "
                  f"({len(particles)} particles, as before: make sure they are the same ones)", file=sys.stderr)
    if changes:
        if main_process:
            trainer._write_config()  # so that the next continuation starts from these
            print("applied to the continued run: " + ", ".join(f"{key} {run.get(key)} -> {v}" for key, v in changes.items()))
        if "epochs" in changes and trainer.config.lr_schedule == "cosine":
            print(f"note: the cosine schedule now ends at epoch {trainer.config.epochs}")
    return trainer


def _relaunch_under_torchrun(args) -> int:
    argv = [a for a in sys.argv[1:]]
    for i, a in enumerate(argv):  # drop --gpus K / --gpus=K; the children are one GPU each
        if a == "--gpus":
            del argv[i : i + 2]
            break
        if a.startswith("--gpus="):
            del argv[i]
            break
    where = ["--standalone"] if args.nnodes == 1 else [
        f"--nnodes={args.nnodes}", f"--node_rank={args.node_rank}", f"--master_addr={args.master_addr}", f"--master_port={args.master_port}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc_per_node={args.gpus}", "-m", "cryonb", *argv]
    return subprocess.call(cmd)


def main(args):
    if (args.gpus > 1 or args.nnodes > 1) and "WORLD_SIZE" not in os.environ:
        from ..core.errors import InputError

        if not 0 <= args.node_rank < args.nnodes:
            raise InputError(None, f"--node-rank {args.node_rank} is not between 0 and --nnodes - 1 ({args.nnodes - 1})",
                             "number the nodes 0, 1, ..., nnodes - 1")
        return _relaunch_under_torchrun(args)

    from ..core.particles import load_particles, require_images
    from ..core.training import Trainer, TrainConfig, has_checkpoint

    particles = load_particles(args.particles, datadir=args.datadir, apix=args.apix, poses=args.poses, ctf=args.ctf)
    require_images(particles, "train on")
    # the options given (flags that are set; a number given as 0, e.g. --beta 0, counts)
    given = {name: value for name in (*FIXED, *CHANGEABLE) if (value := getattr(args, name)) is not None and value is not False}
    if has_checkpoint(args.outdir):
        trainer = _continue(args, particles, given)
    else:
        d = {**NEW_RUN_DEFAULTS, **given}
        config = TrainConfig(
            zdim=d["zdim"], enc_width=d.get("width"), enc_depth=d["depth"], dec_width=d.get("width"), dec_depth=d["depth"],
            encoding=d.get("encoding"), residual=False if d.get("plain") else None, box=d.get("box"), batch_size=d.get("batch_size"),
            lr=d.get("lr"), lr_schedule=d.get("lr_schedule"), epochs=d.get("epochs"), cuda_graphs=not d.get("no_graphs"),
            decoder_lr_scale=d.get("decoder_lr_scale", 1.0), pixel_fraction=d.get("pixel_fraction", 1.0),
            pixel_core=d.get("pixel_core", 0.0), pixel_until=d.get("pixel_until", 1.0),
            slice_filters=d.get("slice_filters"),
            beta=d.get("beta"), amp=not d.get("no_amp"), compile=bool(d.get("compile")), seed=d["seed"], device=d["device"],
            checkpoint_every=d["checkpoint_every"], particles=str(Path(args.particles).resolve()),
            stream=True if d.get("stream") else (False if d.get("no_stream") else None),
            cache_dtype=d.get("cache_dtype") or "complex64", cache_dir=str(Path(d.get("cache_dir") or args.outdir / "cache").resolve()),
            decoder=d.get("decoder") or "mlp", neutral_map=str(Path(d["neutral_map"]).resolve()) if d.get("neutral_map") else None,
            gmm_mode=d.get("gmm_mode"), gmm_mask=str(Path(d["gmm_mask"]).resolve()) if d.get("gmm_mask") else None,
        ).validate()
        trainer = Trainer(particles, config, run_dir=args.outdir)
    args.epochs = trainer.config.epochs
    trainer.interrupt_hint = "run the same command again to continue"
    trainer.fit(max(args.epochs - trainer.epoch, 0))
    code = _finish(args, trainer)
    trainer.close()  # not on an error: torchrun ends the other processes then
    return code


def _finish(args, trainer) -> int:
    """Latents and a summary when training completed; the interruption mark when it did not."""
    import numpy as np

    from ..core.io.atomic import atomic_write

    if trainer.interrupted:
        if trainer.dist.main:
            _mark_interrupted(args, trainer)
        return 130  # the shell's code for Ctrl-C: scripts and schedulers must not take this run as finished
    if trainer.dist.main:
        for h in trainer.history[-3:]:
            print(f"epoch {h['epoch']}: loss {h['loss']:.5f}  kl {h['kl']:.4f}  {h['images_per_s']:.0f} images/s")
        if trainer.config.zdim:
            with atomic_write(args.outdir / "z.npy") as f:
                np.save(f, trainer.embed())
            print(f"latents: {args.outdir / 'z.npy'}")
    return 0


def _mark_interrupted(args, trainer):
    """Leave RUN/INTERRUPTED (cleared when training continues) and no latents that look final."""
    from ..core.io.atomic import atomic_write
    from ..core.training import INTERRUPTED

    z = args.outdir / "z.npy"
    stale = z.exists()
    z.unlink(missing_ok=True)  # it would not match the checkpoint written now
    command = " ".join(["cryonb", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else f"cryonb train ... --outdir {args.outdir}"
    text = (f"training was interrupted (Ctrl-C) at epoch {trainer.epoch} of {args.epochs}, step {trainer.step_count}; "
            f"the checkpoint is complete but the model is not trained to the end and there is no z.npy. "
            f"Continue with: {command}")
    with atomic_write(args.outdir / INTERRUPTED, "w") as f:
        f.write(text + "\n")
    print(f"cryonb train: interrupted at epoch {trainer.epoch} of {args.epochs} (step {trainer.step_count}); "
          f"checkpoint written, {args.outdir / INTERRUPTED} marks the run as unfinished"
          + ("; the earlier z.npy was removed" if stale else "") + f". Continue with: {command}", file=sys.stderr)
