"""Objects: the app's upload area, where build sources go before a build (docs/rack-api.md §4.2)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, Iterable

from convox_provider.client.encoding import Fields, object_key
from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import Object
from convox_provider.client.operation import (
    Call,
    D,
    Flow,
    Resource,
    parse_bytes,
    parse_model,
    parse_ok,
    route,
)
from convox_provider.client.resources._common import (
    TRANSFER_TIMEOUT,
    Destination,
    app_path,
    download,
    header_pairs,
    pairs,
    parse_strings,
    raw_body,
)

__all__ = ["Objects", "delete", "fetch", "fetch_to", "list", "store"]


def _object_path(app: str, key: str) -> str:
    return app_path(app, "objects", object_key(key))


def store(
    app: str,
    key: str | None,
    data: bytes | Iterable[bytes] | AsyncIterable[bytes],
    *,
    public: bool | None = None,
    timeout: float | None = TRANSFER_TIMEOUT,
) -> Call[Object]:
    """Upload ``data`` as a raw ``application/octet-stream`` body; returns its ``object://``
    URL.

    ``key=None`` lets the rack pick a random key under ``tmp/``. ``public`` (AWS racks) makes
    the object public-read and the answer its S3 URL. ``data`` is bytes, or chunks streamed
    without being held in memory (an iterable for the sync client, an async iterable for
    the async one). ``timeout`` bounds each read and write wait, in seconds (``None``: no
    limit). Retried only when ``key`` is given and ``data`` is ``bytes``: storing the same bytes
    under the same key again leaves the same object (a stream cannot be replayed).
    """
    path = app_path(app, "objects", "") if key is None else _object_path(app, key)
    body = raw_body(data)
    return Call(
        "POST",
        path,
        parse_model(Object),
        headers=header_pairs(Fields().add("Public", public)),
        content=body,
        timeout=timeout,
        retry_safe=key is not None and isinstance(body, bytes),
    )


def fetch(app: str, key: str) -> Call[bytes]:
    """Download an object into memory; 404 ``object not found`` when missing."""
    return Call("GET", _object_path(app, key), parse_bytes)


def fetch_to(
    app: str,
    key: str,
    sink: Destination,
    *,
    timeout: float | None = TRANSFER_TIMEOUT,
) -> Call[int] | Flow[int]:
    """Stream an object chunk by chunk to ``sink``; returns its size.

    ``sink`` is a path, a binary file object (left open) or a callable taking each chunk. A
    path is replaced only once the whole object arrived (through a temporary file beside
    it). A connection that breaks mid-stream raises ``ConvoxConnectionError`` and is not
    retried: a file object or callable already has part of the bytes.
    """
    return download(_object_path(app, key), sink, timeout=timeout)


def delete(app: str, key: str) -> Call[None]:
    """Delete an object; 404 when it does not exist."""
    return Call("DELETE", _object_path(app, key), parse_ok)


def list(app: str, *, prefix: str | None = None) -> Call[builtins.list[str]]:
    """Full storage keys under ``prefix`` (AWS racks); 501 on the generic Kubernetes provider.

    A prefix with a ``..`` segment is refused here (the rack answers 400 ``invalid prefix``).
    """
    if isinstance(prefix, str) and ".." in prefix.split("/"):
        raise ConvoxInputError(f"invalid object prefix {prefix!r}: '..' segments are refused")
    return Call(
        "GET",
        app_path(app, "objects"),
        parse_strings,
        query=pairs(Fields().add("prefix", prefix)),
    )


class Objects(Resource[D]):
    """``client.objects`` (the official SDK has no objects API, §8 item 4).

    There is no ``exists``: ``HEAD /apps/{app}/objects/{key}`` answers 200 whether or not the
    object exists (the server writes its answer into a HEAD body, which is discarded) and needs
    the write role. Use unique keys, or :meth:`fetch` and catch ``ConvoxNotFoundError``.
    Keys may contain ``/``; ``..`` segments, empty segments and whitespace are refused before
    sending (the rack cleans keys and refuses ``..``).
    """

    store = route(store)
    fetch = route(fetch)
    fetch_to = route(fetch_to)
    delete = route(delete)
    list = route(list)
