"""The documentation site builds warning-free, and its reference shows real return types."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def _text(page: Path) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())))


def test_the_client_reference_shows_what_callers_get(site: Path) -> None:
    text = _text(site / "reference" / "client" / "index.html")
    assert "Flow [" not in text
    assert "Flow[" not in text
    # environment.get: a Flow[dict[str, str]] in the source, what the call returns here
    assert "get ( app : str , release : str | None = None ) -> dict [ str , str ]" in text
    assert "On AsyncConvoxClient the call is awaited" in text


def test_every_guide_and_protocol_page_is_built(site: Path) -> None:
    for page in ("guides/run", "deferrable", "testing", "emulator", "rack-api", "benchmarks"):
        assert (site / page / "index.html").is_file(), page


def test_the_docs_changelog_is_the_changelog() -> None:
    assert (ROOT / "docs" / "changelog.md").read_text() == (ROOT / "CHANGELOG.md").read_text()
