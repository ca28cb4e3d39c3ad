"""A cryoDRGN run's configuration (``config.yaml``, or ``config.pkl`` of old versions), read safely.

YAML is read with a safe loader: the only Python tags admitted are those cryoDRGN itself
wrote for numbers (numpy scalars and dtypes, tuples), rebuilt from their bytes without calling
anything. A ``config.pkl`` goes through cryonb's restricted unpickler.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..errors import InputError
from ..io.pickles import load_pickle

CONFIG_NAMES = ("config.yaml", "config.pkl")
FIX = "pass the folder cryoDRGN wrote (train_vae, train_nn or abinit) with its config.yaml"
_APPLY = "tag:yaml.org,2002:python/object/apply:"
_NUMPY_SCALAR = {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"}
_NUMPY_DTYPE = "numpy.dtype"


class _ConfigLoader(yaml.SafeLoader):
    """yaml's SafeLoader plus the few Python tags cryoDRGN configs contain (numpy scalars, tuples)."""


def _tuple(loader, node):
    return tuple(loader.construct_sequence(node, deep=True))


def _apply(loader, suffix, node):
    if suffix == _NUMPY_DTYPE:
        spec = loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode) else {"args": loader.construct_sequence(node, deep=True)}
        code = (spec.get("args") or [None])[0]
        if not isinstance(code, str) or np.dtype(code).kind not in "biuf":
            raise yaml.constructor.ConstructorError(None, None, f"refusing numpy dtype {code!r}", node.start_mark)
        return np.dtype(code)
    if suffix in _NUMPY_SCALAR:
        args = loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node, deep=True).get("args", [])
        if len(args) != 2 or not isinstance(args[0], np.dtype) or not isinstance(args[1], bytes) or len(args[1]) != args[0].itemsize:
            raise yaml.constructor.ConstructorError(None, None, "malformed numpy scalar", node.start_mark)
        return np.frombuffer(args[1], dtype=args[0])[0].item()
    raise yaml.constructor.ConstructorError(None, None, f"refusing to build Python object {suffix}", node.start_mark)


_ConfigLoader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)
_ConfigLoader.add_multi_constructor(_APPLY, _apply)


def find_config(folder: str | Path) -> Path | None:
    """The folder's ``config.yaml`` (or ``config.pkl``), None if it has neither."""
    for name in CONFIG_NAMES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_config(path: str | Path) -> dict:
    """The configuration dictionary of a ``config.yaml``/``config.pkl``, checked to be cryoDRGN's."""
    path = Path(path)
    if path.suffix == ".pkl":
        config = load_pickle(path)
    else:
        try:
            config = yaml.load(path.read_text(errors="replace"), Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader)
        except yaml.YAMLError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(path, f"is not a readable cryoDRGN config ({first})", FIX) from None
        except OSError as err:
            raise InputError(path, f"cannot be read ({err.strerror or err})", FIX) from None
    if not isinstance(config, dict) or not isinstance(config.get("model_args"), dict):
        raise InputError(path, "has no model_args section: not a cryoDRGN run's configuration", FIX)
    return config


def require(config: dict, section: str, key: str, path) -> int:
    """The positive integer ``config[section][key]``, or an :class:`InputError` naming what is wrong."""
    value = (config.get(section) or {}).get(key)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise InputError(path, f"{section}.{key} is {value!r}, not the positive integer cryoDRGN writes", FIX)
    return int(value)
