"""A .star that is not readable STAR text says what it is; encodings; re-reading a fixed file."""

import gzip
import pickle

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.errors import InputError
from cryonb.core.io import describe
from cryonb.core.io.star import read_blocks, read_star
from cryonb.core.particles import load_particles

_GOOD = "data_particles\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\n1@a.mrcs 10\n2@a.mrcs 20\n"


@pytest.mark.parametrize(
    "content, what",
    [
        (b"", "empty \\(0 bytes\\)"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 63045\n", "git-LFS pointer"),
        (bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)), "binary data"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", "numpy .npy array"),
        (gzip.compress(_GOOD.encode(), mtime=0), "gzip-compressed"),
        (pickle.dumps([1, 2, 3], protocol=4), "Python pickle"),
        (b"x,y,z\n1,2,3\n", "no data_ block, so not a STAR file \\(it begins 'x,y,z'\\)"),
    ],
)
def test_files_that_are_not_star_text_say_what_they_are(tmp_path, capsys, content, what):
    path = tmp_path / "particles.star"
    path.write_bytes(content)
    for read in (read_star, read_blocks, load_particles, describe):
        with pytest.raises(InputError, match=what) as info:
            read(path)
        assert str(path) in str(info.value)
    assert cli(["info", str(path)]) == 2
    assert "particles.star" in capsys.readouterr().err


def test_latin1_comment_is_read(tmp_path):
    path = tmp_path / "p.star"
    path.write_bytes(b"# written by Jos\xe9's script, 2 \xb5m defocus\n" + _GOOD.encode())
    star = read_star(path)
    assert len(star) == 2 and star.image_rows.tolist() == [0, 1]


def test_utf8_with_bom_is_read(tmp_path):
    path = tmp_path / "p.star"
    path.write_bytes(b"\xef\xbb\xbf" + _GOOD.encode())
    assert len(read_star(path)) == 2


def test_non_utf8_byte_in_the_data_gives_its_offset(tmp_path):
    path = tmp_path / "p.star"
    text = _GOOD.encode().replace(b"2@a.mrcs", b"2@caf\xe9.mrcs")
    path.write_bytes(text)
    offset = text.index(b"\xe9")
    with pytest.raises(InputError, match=rf"byte {offset} \(line 7\) is 0xe9, which is not UTF-8") as info:
        read_star(path)
    assert "UTF-8" in info.value.fix


def test_a_fixed_file_reads_right_after_a_failed_parse(tmp_path):
    """starfile's line cache must not keep the broken file's lines (a notebook user edits and re-runs)."""
    path = tmp_path / "p.star"
    path.write_text("data_general\n\n_rlnFoo 1 2\n\n" + _GOOD)
    with pytest.raises(InputError):
        read_star(path)
    path.write_text("data_general\n\n_rlnFoo 1\n\n" + _GOOD)
    assert len(read_star(path)) == 2
    path.write_text(_GOOD.replace("20\n", "20\n3@a.mrcs 30\n"))
    assert len(read_star(path)) == 3


def test_postprocess_star_is_named_by_info(real_data, capsys):
    assert cli(["info", str(real_data / "starfile/postprocess.star")]) == 0
    assert "post-processing result" in capsys.readouterr().out
