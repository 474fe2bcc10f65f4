"""Both CLIs: `--help` everywhere, exit codes 0/1/2, one error handler with no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from delivery.cli import main as delivery_main
from rollout.cli import main as rollout_main


@pytest.mark.parametrize("main", [delivery_main, rollout_main])
def test_top_level_help_exits_0(main: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])  # type: ignore[operator]
    assert caught.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_delivery_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        delivery_main(["--help"])
    out = capsys.readouterr().out
    assert "manifest" in out


def test_every_delivery_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["manifest", "--help"], ["manifest", "validate", "--help"], ["manifest", "schema", "--help"]):
        with pytest.raises(SystemExit) as caught:
            delivery_main(argv)
        assert caught.value.code == 0, argv
        assert "usage:" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert delivery_main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        delivery_main(["frobnicate"])
    assert caught.value.code == 2


def test_console_scripts_are_installed() -> None:
    for module in ("delivery.cli", "rollout.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "0.1.0" in done.stdout


def test_a_reader_that_leaves_early_is_not_an_error() -> None:
    script = "import sys; from delivery.cli import main; sys.exit(main(['manifest', 'schema']))"
    done = subprocess.run(f"{sys.executable} -c \"{script}\" | head -c 10", shell=True, capture_output=True, text=True,
                          check=False)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
