"""``client.api``: any route by path, for what the typed resources do not cover."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from convox_provider.client.effects import DEFAULT_TIMEOUT, _Default
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.operation import Call, D, Resource, operation

__all__ = ["Api"]


def _pairs(values: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(values.items()) if values else ()


def _path(path: str) -> str:
    if not path.startswith("/") or "://" in path:
        raise ConvoxInputError(f"api path must start with '/' and be relative, got {path!r}")
    return path


def _parse(response: httpx.Response) -> Any:
    """JSON when the body is JSON, ``None`` when it is empty, else the trimmed text (``ok``),
    as the official SDK's ``client.api`` answers."""
    text = response.text.strip()
    if not text:
        return None
    if "json" in response.headers.get("content-type", ""):
        return json.loads(response.content)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _raw(  # noqa: PLR0917 - one private builder of the four methods
    method: str,
    path: str,
    params: Mapping[str, str] | None,
    data: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    content: bytes | None,
    timeout: float | _Default | None,
) -> Call[Any]:
    if data and content is not None:
        raise ConvoxInputError("give data or content, not both")
    return Call(
        method,
        _path(path),
        _parse,
        form=_pairs(data),
        query=_pairs(params),
        headers=_pairs(headers),
        content=content,
        timeout=timeout,
    )


class Api(Resource[D]):
    """Raw access: ``client.api.get("/apps")`` returns decoded JSON, ``None`` for an empty
    answer, or the trimmed text (``ok``), as the official SDK's ``client.api``.

    Each method takes the SDK's keywords ``params`` (query), ``data`` (form), ``headers``
    (option headers), ``content`` (raw body) and ``timeout`` (seconds, for this request).
    Values are sent as given: encode booleans, durations and maps with
    :mod:`convox_provider.client.encoding` first. Only ``get`` is retried.
    """

    @operation
    def get(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | _Default | None = DEFAULT_TIMEOUT,
    ) -> Call[Any]:
        """GET ``path`` with query ``params``."""
        return _raw("GET", path, params, None, headers, None, timeout)

    @operation
    def post(
        self,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | _Default | None = DEFAULT_TIMEOUT,
    ) -> Call[Any]:
        """POST form ``data`` (or raw ``content``) with option ``headers``."""
        return _raw("POST", path, params, data, headers, content, timeout)

    @operation
    def put(
        self,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | _Default | None = DEFAULT_TIMEOUT,
    ) -> Call[Any]:
        """PUT form ``data`` (or raw ``content``)."""
        return _raw("PUT", path, params, data, headers, content, timeout)

    @operation
    def delete(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | _Default | None = DEFAULT_TIMEOUT,
    ) -> Call[Any]:
        """DELETE ``path``; the server never reads DELETE bodies, so options go in the query."""
        return _raw("DELETE", path, params, None, headers, None, timeout)
