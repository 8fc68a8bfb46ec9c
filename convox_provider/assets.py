"""Convox apps as Airflow assets: ``convox://<rack>/<app>``.

``<rack>`` names the rack the way its connection reaches it:

* through a console, ``<org>/<rack>`` (the connection's ``rack`` extra), so
  ``convox://acme/production/web``;
* directly, the rack API host (``host[:port]``, without scheme or credentials), so
  ``convox://api.0a1b2c3d.convox.cloud/web``.

The URI never holds credentials: a rack URL as terraform prints it
(``https://convox:<password>@api.<domain>``) is reduced to its host, and the handler Airflow
calls for every ``convox://`` URI (registered as ``asset-uris`` in provider info) drops any user
info, lowercases the rack, and refuses a URI that names no app or an invalid one. A consumer DAG
can therefore write the URI by hand (``Asset("convox://acme/production/web")``) or with
:func:`convox_app_asset`; both name the same asset.

This module imports neither the client nor Airflow's asset classes at import time: the handler
runs in every Airflow process that parses an asset.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import Asset

__all__ = ["SCHEME", "asset_uri", "convox_app_asset", "rack_name", "sanitize_uri"]

SCHEME = "convox"

_APP = re.compile(r"[a-z][a-z0-9-]*")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_HOST = re.compile(r"[a-z0-9.\-\[\]:]+")
_DEFAULT_PORTS = {"https": 443, "http": 80, "": 443}


def rack_name(rack: str) -> str:
    """The rack part of the URI: ``org/rack`` for a console rack, else the host of a rack URL
    (scheme, credentials and trailing ``/`` dropped), lowercased. Raises ``ValueError``."""
    if not isinstance(rack, str) or not rack.strip():
        raise ValueError(
            "rack must name the rack: '<org>/<rack>' for a console connection, or the rack API "
            "host (api.<rack-domain>) for a direct one"
        )
    text = rack.strip()
    if "://" in text or "@" in text:
        return _host(urlsplit(text if "://" in text else f"//{text}"))
    text = text.strip("/").lower()
    if "/" in text:
        org, _, name = text.partition("/")
        if not (_NAME.fullmatch(org) and _NAME.fullmatch(name)):
            raise ValueError(f"rack {_shown(text)} is not '<org>/<rack>' (e.g. acme/production)")
        return f"{org}/{name}"
    return _host(urlsplit(f"//{text}"))


def _host(url: SplitResult) -> str:
    """The lowercase host of a rack URL, with its port unless it is the scheme's default;
    credentials and any path dropped."""
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host, port = None, None
    if not host or not _HOST.fullmatch(host):
        raise ValueError(
            "rack is not a host name or '<org>/<rack>': give the rack API host "
            "(api.<rack-domain>) or the console rack as <org>/<rack>"
        )
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(url.scheme.lower(), 443):
        return f"{host}:{port}"
    return host


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _app(app: str) -> str:
    if not isinstance(app, str) or not _APP.fullmatch(app):
        raise ValueError(
            f"app {app!r} is not a Convox app name (a lowercase letter, then lowercase "
            "letters, digits or '-'); an asset is named when the DAG is parsed, so the app "
            "cannot be a template"
        )
    return app


def asset_uri(rack: str, app: str) -> str:
    """``convox://<rack>/<app>`` for ``rack`` (see :func:`rack_name`) and ``app``."""
    return f"{SCHEME}://{rack_name(rack)}/{_app(app)}"


def convox_app_asset(rack: str, app: str, **asset: Any) -> Asset:
    """The Airflow ``Asset`` of ``app`` on ``rack``: schedule a DAG on it, or declare it as an
    outlet. ``asset`` goes to ``Asset`` (``name``, ``group``, ``extra``...)."""
    from airflow.sdk import Asset  # noqa: PLC0415 - see the module doc

    return Asset(uri=asset_uri(rack, app), **asset)


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's handler of ``convox://`` URIs: normalise, or raise ``ValueError`` naming the
    problem. Airflow has already lowercased the scheme and dropped a password (with a warning);
    this drops a user name too, and any query and fragment."""
    host = uri.netloc.rpartition("@")[2]
    segments = [part for part in uri.path.split("/") if part]
    if not host or not segments:
        raise ValueError(
            f"a convox asset URI is convox://<rack>/<app>; {uri.geturl()!r} names no app"
        )
    if uri.query:
        raise ValueError(f"a convox asset URI takes no query: {uri.geturl()!r}")
    if len(segments) > 2:
        raise ValueError(
            f"a convox asset URI is convox://<org>/<rack>/<app> or convox://<host>/<app>; "
            f"{uri.geturl()!r} has too many parts"
        )
    rack = rack_name("/".join([host, *segments[:-1]]))
    app = _app(segments[-1])
    netloc, _, path = rack.partition("/")
    return SplitResult(SCHEME, netloc, f"/{path}/{app}" if path else f"/{app}", "", "")
