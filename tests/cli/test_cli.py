"""The console script: every command has --help, and bad input gives one line, not a traceback."""

import subprocess
import sys

import pytest

from cryonb.cli import COMMANDS, main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cryonb {command}") and len(out.splitlines()) > 3


def test_top_level_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "cryonb", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(command in out for command in COMMANDS)


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "broken.star"
    bad.write_text("data_\nloop_\n_rlnImageName #1\n")
    proc = subprocess.run([sys.executable, "-m", "cryonb", "info", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("cryonb info: error: ") and str(bad) in proc.stderr and "Fix:" in proc.stderr
