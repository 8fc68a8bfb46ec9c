"""Every Python block of the README and the documentation runs, so that none can rot.

A block preceded by ``<!-- no-run -->`` is shown only (it needs a real rack). A block preceded by
``<!-- file: PATH -->`` is a file of a user's project: those files are written to a temporary
project and its tests run under pytest, in a process of their own (Airflow is configured once
per process), as a user would run them. Any other ``python`` block is executed here, with the
emulator's fixtures in scope (``convox_rack``, ``rack``, ``convox_rack_factory``); the
``test_*`` functions it defines are then called with them.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from convox_provider.testing import RackEmulator

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(
    r"(?:<!--\s*(?P<mark>[^>]*?)\s*-->\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```",
    re.M | re.S,
)


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    lang: str
    mark: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks() -> Iterator[Block]:
    for document in DOCUMENTS:
        text = document.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            yield Block(document, line, match["lang"], match["mark"] or "", match["code"])


RUNNABLE = [
    b for b in blocks() if b.lang == "python" and not b.mark.startswith(("no-run", "file:"))
]
PROJECTS: dict[Path, list[Block]] = {}
for _block in blocks():
    if _block.mark.startswith("file:"):
        PROJECTS.setdefault(_block.document, []).append(_block)


def test_the_documents_have_blocks_to_run() -> None:
    assert len(RUNNABLE) >= 5
    assert ROOT / "README.md" in PROJECTS


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.name)
def test_python_block_runs(
    block: Block,
    convox_rack: RackEmulator,
    convox_rack_factory: Callable[..., RackEmulator],
) -> None:
    convox_rack.create_app("shop")
    fixtures: dict[str, Any] = {
        "convox_rack": convox_rack,
        "rack": convox_rack,
        "convox_rack_factory": convox_rack_factory,
    }
    namespace: dict[str, Any] = {"__name__": "docs_block", **fixtures}
    exec(compile(block.code, block.name, "exec"), namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            fresh = convox_rack_factory()
            arguments = {**fixtures, "convox_rack": fresh, "rack": fresh}
            value(**{p: arguments[p] for p in inspect.signature(value).parameters})


@pytest.mark.parametrize("document", sorted(PROJECTS), ids=lambda p: p.name)
def test_project_files_pass_their_own_tests(document: Path, tmp_path: Path) -> None:
    for block in PROJECTS[document]:
        path = tmp_path / block.mark.removeprefix("file:").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code)
        if path.suffix == ".py" and path.parent != tmp_path:
            (path.parent / "__init__.py").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CONVOX_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
