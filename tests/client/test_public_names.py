"""``convox_provider.client`` exports its public names lazily; every listed name must resolve."""

from __future__ import annotations

import subprocess
import sys

from convox_provider import client
from convox_provider.client import errors, models


def test_every_public_name_resolves_to_its_defining_module() -> None:
    for name in client.__all__:
        value = getattr(client, name)
        assert getattr(value, "__name__", name) == name, name


def test_every_convox_error_is_exported_from_the_package() -> None:
    convox_errors = {name for name in errors.__all__ if name.startswith("Convox")}
    assert convox_errors <= set(client.__all__)
    assert "ConvoxRolloutEndedError" in client.__all__
    assert "error_for_status" not in client.__all__


def test_exported_models_are_models_of_the_models_module() -> None:
    exported = {name for name in client.__all__ if isinstance(getattr(client, name), type)}
    model_names = {
        name for name in exported if issubclass(getattr(client, name), models.ConvoxModel)
    }
    assert model_names <= set(models.__all__)
    assert {"App", "Build", "Release", "Process", "Certificate", "Registry"} <= model_names
    assert len(client.__all__) == len(set(client.__all__))


def test_importing_the_package_or_its_errors_does_not_load_pydantic_or_httpx() -> None:
    code = (
        "import sys, convox_provider.client, convox_provider.client.errors;"
        "print('pydantic' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
