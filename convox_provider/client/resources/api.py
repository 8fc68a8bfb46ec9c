"""``client.api``: any route by path, for what the typed resources do not cover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.operation import Call, D, Resource, operation, parse_json

__all__ = ["Api"]


def _pairs(values: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(values.items()) if values else ()


def _path(path: str) -> str:
    if not path.startswith("/") or "://" in path:
        raise ConvoxInputError(f"api path must start with '/' and be relative, got {path!r}")
    return path


class Api(Resource[D]):
    """Raw access: ``client.api.get("/apps")`` returns decoded JSON, or the text of ``ok``.

    Values are sent as given: encode booleans, durations and maps with
    :mod:`convox_provider.client.encoding` first. Only ``get`` is retried.
    """

    @operation
    def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Call[Any]:
        """GET ``path`` with query ``params``."""
        return Call("GET", _path(path), parse_json, query=_pairs(params))

    @operation
    def post(
        self,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> Call[Any]:
        """POST form ``data`` (or raw ``content``) with option ``headers``."""
        return Call(
            "POST",
            _path(path),
            parse_json,
            form=_pairs(data),
            headers=_pairs(headers),
            content=content,
        )

    @operation
    def put(self, path: str, *, data: Mapping[str, str] | None = None) -> Call[Any]:
        """PUT form ``data``."""
        return Call("PUT", _path(path), parse_json, form=_pairs(data))

    @operation
    def delete(self, path: str, *, params: Mapping[str, str] | None = None) -> Call[Any]:
        """DELETE ``path``; the server never reads DELETE bodies, so options go in the query."""
        return Call("DELETE", _path(path), parse_json, query=_pairs(params))
