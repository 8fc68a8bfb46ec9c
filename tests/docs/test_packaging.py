"""The wheel and the sdist carry the LICENSE; the metadata says what the project is."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import convox_provider

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [uv, "build", "--quiet", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_the_wheel_and_the_sdist_carry_the_license(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("/LICENSE") for n in archive.getnames())
    assert "License-Expression: Apache-2.0" in text
    assert "Classifier: Development Status :: 4 - Beta" in text
    assert "Classifier: Programming Language :: Python :: 3.10" in text
    assert "Author-email:" in text or "Author:" in text
    assert text.split("\n\n", 1)[1].startswith("# airflow-provider-convox")


def test_the_readme_opens_with_the_install_and_keeps_the_developing_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.index("pip install airflow-provider-convox") < readme.index("## Connecting")
    assert readme.index("## Connecting") < readme.index("## A first DAG")
    developing = readme[readme.index("## Developing") :]
    assert "make test" in developing
    assert "make demo" in developing


def test_the_provider_info_has_its_changelog_and_versions() -> None:
    info = convox_provider.get_provider_info()
    assert info["versions"] == [convox_provider.__version__]
    assert f"## [{convox_provider.__version__}]" in (ROOT / "CHANGELOG.md").read_text()
