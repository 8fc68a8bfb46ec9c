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
    body: Any,
    content: bytes | None,
    headers: Mapping[str, str] | None,
    timeout: float | _Default | None,
) -> Call[Any]:
    present = (("data", bool(data)), ("json", body is not None), ("content", content is not None))
    given = [name for name, there in present if there]
    if len(given) > 1:
        raise ConvoxInputError(f"give one body: data, json or content, not {' and '.join(given)}")
    extra: tuple[tuple[str, str], ...] = ()
    if body is not None:
        content = json.dumps(body).encode("utf-8")
        extra = (("Content-Type", "application/json"),)
    return Call(
        method,
        _path(path),
        _parse,
        form=_pairs(data),
        query=_pairs(params),
        headers=_pairs(headers) + extra,
        content=content,
        timeout=timeout,
    )


def _verb(method: str) -> operation[..., Any]:
    """One of the four methods of :class:`Api`: they take the same keywords."""

    def send(
        self: Resource[Any],
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | _Default | None = DEFAULT_TIMEOUT,
    ) -> Call[Any]:
        return _raw(method, path, params, data, json, content, headers, timeout)

    send.__name__ = send.__qualname__ = method.lower()
    send.__doc__ = f"""{method} ``path``: query ``params``; form ``data``, a ``json`` body or raw
        ``content`` (one of them); option ``headers``; ``timeout`` in seconds."""
    return operation(send)


class Api(Resource[D]):
    """Raw access: ``client.api.get("/apps")`` returns decoded JSON, ``None`` for an empty
    answer, or the trimmed text (``ok``), as the official SDK's ``client.api``.

    Each method takes the keywords the SDK passes on to httpx: ``params`` (query), ``data``
    (form), ``json`` (a JSON body), ``content`` (raw body), ``headers`` (option headers) and
    ``timeout`` (seconds, for this request). Values are sent as given: encode booleans,
    durations and maps with :mod:`convox_provider.client.encoding` first. Only ``get`` is
    retried. The rack reads no body on GET and DELETE (§2.1): put their options in ``params``.
    """

    get = _verb("GET")
    post = _verb("POST")
    put = _verb("PUT")
    delete = _verb("DELETE")
