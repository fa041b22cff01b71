from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from tests.paths import SANDBOX_DEVICES


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def read_warnings() -> Iterator[list[str]]:
    """The lines the read stage logs during the test (whatever the CLI did to logging)."""
    handler = _Lines()
    logger = logging.getLogger("pipeline.read")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """``plan_file(source, config_text)``: plan one export (or several, in one run) against the
    sample doors; returns the exit code, the plan (None when none was written) and stderr's
    ``error:`` lines."""

    def run(
        source: Path | Sequence[Path], config: str | None = None
    ) -> tuple[int, pl.DataFrame | None, list[str]]:
        out = tmp_path / "plan.csv"
        extra = []
        if config is not None:
            (tmp_path / "pipeline.toml").write_text(config, encoding="utf-8")
            extra = ["--config", str(tmp_path / "pipeline.toml")]
        sources = [source] if isinstance(source, Path) else source
        code = main(
            [
                "plan",
                *(str(path) for path in sources),
                "--devices",
                str(SANDBOX_DEVICES),
                "--out",
                str(out),
                *extra,
            ]
        )
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        return code, (pl.read_csv(out, infer_schema=False) if out.exists() else None), errors

    return run
