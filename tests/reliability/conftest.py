"""Fixtures of the reliability suite.

The helpers of ``tests/provider/convox_support.py`` are reused as they are: that directory is put
on ``sys.path`` the way pytest does when it collects ``tests/provider`` (its test modules import
``convox_support`` as a top-level module), so both suites share one copy of the module.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_PROVIDER_TESTS = str(Path(__file__).resolve().parents[1] / "provider")
if _PROVIDER_TESTS not in sys.path:
    sys.path.insert(0, _PROVIDER_TESTS)

from convox_provider.client.retry import RetryConfig  # noqa: E402 - after the path set-up
from convox_provider.hooks import convox as hook_module  # noqa: E402
from convox_provider.hooks.convox import shared_async_clients  # noqa: E402

BACKOFF_BASE = 0.01
"""Seconds of the first retry's backoff ceiling in this suite (the client's default is 0.5)."""


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the jittered backoff between retries; which requests are retried is unchanged.

    The connection form has no backoff setting, so the hook's ``RetryConfig`` is given a smaller
    ``backoff_base``. ``Retry-After`` is still honoured exactly (the 429 cells use 0.05 s).
    """
    monkeypatch.setattr(
        hook_module, "RetryConfig", functools.partial(RetryConfig, backoff_base=BACKOFF_BASE)
    )


@pytest.fixture(autouse=True)
def _no_leaked_async_clients() -> Iterator[None]:
    """As in ``tests/provider/conftest.py``: every trigger releases its shared client."""
    yield
    assert shared_async_clients() == 0, "a test left a shared async client open"
