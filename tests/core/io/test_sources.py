import mrcfile
import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.io.mrc import write_stack
from cryonb.core.io.sources import ArraySource, MrcStackSource, MultiStackSource, resolve_stack_paths


@pytest.fixture
def stacks(tmp_path):
    """Two small stacks with recognisable images: image k of stack s is filled with 100*s + k."""
    paths = []
    for s, n in enumerate((4, 6)):
        images = (100 * s + np.arange(n, dtype=np.float32))[:, None, None] * np.ones((1, 8, 8), np.float32)
        write_stack(tmp_path / f"s{s}.mrcs", images, apix=1.0)
        paths.append(tmp_path / f"s{s}.mrcs")
    return paths


def _ids(images):
    return images[:, 0, 0].astype(int).tolist()


def test_array_source_indexing():
    images = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32)
    source = ArraySource(images)
    assert source.shape == (5, 4, 4) and source.box_size == 4 and len(source) == 5
    assert source[2].shape == (4, 4) and source[-1][0, 0] == 4
    assert _ids(source[1:4]) == [1, 2, 3]
    assert _ids(source[np.array([4, 0])]) == [4, 0]
    assert _ids(source[np.array([True, False, True, False, False])]) == [0, 2]
    assert _ids(source.subset([3, 1])[:]) == [3, 1]
    assert [_ids(c) for c in source.chunks(2)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(IndexError):
        source[5]


def test_multi_stack_reads_rows_across_files_in_requested_order(stacks):
    paths = [stacks[1], stacks[0], stacks[1], stacks[0], stacks[1]]
    rows = np.array([5, 3, 0, 0, 2])
    source = MultiStackSource(paths, rows)
    assert source.shape == (5, 8, 8)
    assert _ids(source[:]) == [105, 3, 100, 0, 102]
    assert _ids(source[np.array([4, 1, 0])]) == [102, 3, 105]
    sub = source.subset([2, 0])
    assert _ids(sub[:]) == [100, 105] and len(sub) == 2
    assert sub._stacks is source._stacks  # stacks are opened once and shared
    assert [_ids(c) for c in source.chunks(3)] == [[105, 3, 100], [0, 102]]
    paths_back, rows_back = sub.locations()
    assert paths_back == [stacks[1], stacks[1]] and rows_back.tolist() == [0, 5]


def test_multi_stack_checks_headers_up_front(stacks, tmp_path):
    with pytest.raises(InputError, match=r"refers to image 7 of .*s0\.mrcs, which holds 4 images"):
        MultiStackSource([stacks[0]], [6], referenced_by=tmp_path / "meta.star")
    with pytest.raises(InputError, match=r"missing\.mrcs: image stack not found.*Fix: pass datadir="):
        MultiStackSource([tmp_path / "missing.mrcs"], [0], referenced_by="meta.star", fix="pass datadir=")


def test_large_stack_is_memory_mapped_not_loaded(tmp_path):
    n, d = 2000, 64
    with mrcfile.new_mmap(tmp_path / "big.mrcs", shape=(n, d, d), mrc_mode=2) as mrc:
        mrc.set_image_stack()
        mrc.data[:] = np.arange(n, dtype=np.float32)[:, None, None]
    source = MrcStackSource(tmp_path / "big.mrcs")
    assert isinstance(source.stack.data, np.memmap)
    assert not any(isinstance(v, np.ndarray) and not isinstance(v, np.memmap) and v.nbytes > 1e6 for v in vars(source).values())
    batch = source[1500:1503]
    assert not isinstance(batch, np.memmap) and not np.shares_memory(batch, source.stack.data)
    assert _ids(batch) == [1500, 1501, 1502]
    assert _ids(source[np.array([1999, 3, 1000])]) == [1999, 3, 1000]
    assert _ids(source.subset(np.arange(10, 2000, 500))[:]) == [10, 510, 1010, 1510]


def test_resolve_stack_paths_falls_back_to_basename_in_datadir(tmp_path):
    (tmp_path / "flat.mrcs").touch()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/deep.mrcs").touch()
    got = resolve_stack_paths(["Extract/job1/flat.mrcs", "sub/deep.mrcs", "nowhere/x.mrcs"], tmp_path)
    assert got == [tmp_path / "flat.mrcs", tmp_path / "sub/deep.mrcs", tmp_path / "nowhere/x.mrcs"]
