"""Numbers are validated at the edge: a negative, absurd or non-finite flag is a usage error naming the flag."""

from __future__ import annotations

import pytest

from delivery.cli import main as delivery_main
from rollout.cli import main as rollout_main

REFUSED = [
    (delivery_main, ["gc", "--keep", "-1"], "--keep"),
    (delivery_main, ["gc", "--keep", "1", "--window-days", "-5"], "--window-days"),
    (delivery_main, ["gc", "--keep", "1", "--window-days", "0"], "--window-days"),
    (delivery_main, ["gc", "--keep", "99999999999"], "--keep"),
    (delivery_main, ["scan", "--org", "acme", "--max-wait", "-1"], "--max-wait"),
    (delivery_main, ["scan", "--org", "acme", "--max-wait", "nan"], "--max-wait"),
    (delivery_main, ["webhook", "serve", "--secret-env", "S", "--org", "acme", "--port", "70000"], "--port"),
    (rollout_main, ["executions", "list", "--limit", "-3"], "--limit"),
    (rollout_main, ["serve", "--port", "-1"], "--port"),
    (rollout_main, ["serve", "--workers", "0"], "--workers"),
    (rollout_main, ["watch", "alpha", "--wait", "inf"], "--wait"),
    (rollout_main, ["watch", "alpha", "--wait", "-2"], "--wait"),
]


@pytest.mark.parametrize(("main", "argv", "flag"), REFUSED, ids=[" ".join(a) for _, a, _ in REFUSED])
def test_a_negative_or_absurd_number_is_a_usage_error_naming_the_flag(
        main: object, argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)  # type: ignore[operator]
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and ("out of range" in err or "not a" in err)
