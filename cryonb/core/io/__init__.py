"""Reading and writing the files of cryo-EM practice: MRC, RELION STAR, cryoSPARC, cryoDRGN pickles."""

from ..ctf import CTF_COLUMNS
from .atomic import atomic_path, atomic_write
from .cryosparc import CsFile, read_cs, write_cs_subset
from .describe import describe
from .mrc import MrcHeader, MrcStack, open_stack, read_header, read_map, write_map, write_stack
from .pickles import (
    load_pickle,
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    read_index,
    write_index_npy,
    write_index_pickle,
)
from .sources import ArraySource, ImageSource, MrcStackSource, MultiStackSource
from .star import StarFile, read_star, write_blocks, write_star_subset

__all__ = [
    "CTF_COLUMNS",
    "ArraySource",
    "CsFile",
    "ImageSource",
    "MrcHeader",
    "MrcStack",
    "MrcStackSource",
    "MultiStackSource",
    "StarFile",
    "atomic_path",
    "atomic_write",
    "describe",
    "load_pickle",
    "open_stack",
    "read_cryodrgn_ctf",
    "read_cryodrgn_poses",
    "read_cs",
    "read_header",
    "read_index",
    "read_map",
    "read_star",
    "write_cs_subset",
    "write_index_npy",
    "write_index_pickle",
    "write_map",
    "write_blocks",
    "write_stack",
    "write_star_subset",
]
