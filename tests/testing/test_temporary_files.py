"""Every stop of the emulator removes its temporary directory; a killed one's is swept later."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from convox_provider.testing import RackEmulator
from convox_provider.testing.emulator import PREFIX, sweep_abandoned

ROOT = Path(__file__).resolve().parents[2]


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{PREFIX}*"))


def _home(rack: RackEmulator) -> Path:
    return rack.state.storage.parent


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}


def test_stop_removes_the_directory() -> None:
    rack = RackEmulator().start()
    home = _home(rack)
    httpx.post(rack.url + "/apps/demo/objects/x", content=b"data", auth=("convox", "password"))
    assert home.is_dir()
    rack.stop()
    assert not home.exists()


def test_stop_async_and_serve_remove_the_directory() -> None:
    async def main() -> tuple[Path, Path]:
        first = await RackEmulator().start_async()
        await first.stop_async()
        second = await RackEmulator().start_async()
        task = asyncio.create_task(second.serve())
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return _home(first), _home(second)

    first, second = asyncio.run(main())
    assert not first.exists()
    assert not second.exists()


def test_a_stopped_emulator_cannot_start_again() -> None:
    rack = RackEmulator().start()
    rack.stop()
    with pytest.raises(RuntimeError, match="create a new one"):
        asyncio.run(rack.start_async())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_the_command_line_removes_it_on_each_stop_signal(tmp_path: Path, sig: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "convox_provider.testing", "--app", "demo"],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("Convox rack emulator listening on")
    assert len(_left(tmp_path)) == 1
    process.send_signal(sig)
    assert process.wait(timeout=10) == 0
    assert _left(tmp_path) == []


def test_the_command_line_removes_it_when_stopped_while_starting(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "convox_provider.testing", "--app", "demo"],
        stdout=subprocess.DEVNULL,
        env=_env(tmp_path),
    )
    deadline = time.monotonic() + 20
    while not _left(tmp_path):  # the directory exists: the rack is being set up
        assert time.monotonic() < deadline
        assert process.poll() is None
        time.sleep(0.001)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert _left(tmp_path) == []


def test_a_killed_emulators_directory_is_swept_by_the_next(tmp_path: Path) -> None:
    code = (
        "from convox_provider.testing import RackEmulator\n"
        "rack = RackEmulator().start()\n"
        "print(rack.state.storage.parent, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env(tmp_path)
    )
    assert process.stdout is not None
    killed = Path(process.stdout.readline().strip())
    process.kill()
    process.wait(timeout=10)
    assert killed.is_dir()  # SIGKILL: nothing could remove it
    unowned = tmp_path / f"{PREFIX}unowned"  # no owner file: not ours to judge
    unowned.mkdir()
    alive = tmp_path / f"{PREFIX}alive"
    alive.mkdir()
    (alive / "owner").write_text(f"{os.getpid()} \n")

    assert sweep_abandoned(tmp_path) == [killed]

    assert sorted(_left(tmp_path)) == sorted([unowned.name, alive.name])
