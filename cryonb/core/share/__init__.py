"""Share an analysis without the particle stack: a bundle folder that opens anywhere, Binder included.

:func:`share` writes a trained run's decoder, latents, particle metadata (no images), selections,
cluster labels, traversals and a few hundred thumbnails into a folder ready to be a repository of
its own, with a README, a notebook and Binder configuration. :func:`open_bundle` reads one back,
checking its format version and every file's checksum, and never unpickles anything.
"""

from .bundle import BUNDLE_VERSION, MANIFEST, Bundle, ShareReport, Thumbnails, latent_precision, lossless_in_float16, pick_thumbnails, share
from .read import SharedModel, is_bundle, open_bundle, read_manifest, thumbnails_of, verify

__all__ = [
    "BUNDLE_VERSION",
    "MANIFEST",
    "Bundle",
    "ShareReport",
    "SharedModel",
    "Thumbnails",
    "is_bundle",
    "latent_precision",
    "lossless_in_float16",
    "open_bundle",
    "pick_thumbnails",
    "read_manifest",
    "share",
    "thumbnails_of",
    "verify",
]
