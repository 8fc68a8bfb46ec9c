"""The Airflow asset of a Convox app: ``convox://<rack or host>/<app>``.

One URI per app on one rack, the same whoever writes it: a deploy task's outlet, an
``AssetWatcher`` fed by :class:`~convox_provider.triggers.watch.ConvoxReleaseEventTrigger`, or a
consumer DAG written by hand. Imported at DAG-parse time: it imports nothing.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["SCHEME", "asset_uri"]

SCHEME = "convox"

_APP = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_RACK_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DEFAULT_PORTS = {"https": 443, "http": 80, "": 443}


def asset_uri(host_or_rack: str, app: str) -> str:
    """The credential-free, normalised asset URI of ``app`` on a rack.

    ``host_or_rack`` is what the connection names the rack by: a console rack ``org/rack``
    (``convox://acme/production/myapp``), or the rack API's host or URL, whose scheme,
    credentials (``convox:<password>@``), default port, path and case are dropped
    (``https://convox:secret@API.Rack.Example.com:443/`` gives
    ``convox://api.rack.example.com/myapp``; another port is kept). Raises ``ValueError``
    naming what is wrong.
    """
    if not isinstance(app, str) or not _APP.fullmatch(app):
        raise ValueError(
            f"invalid Convox app name {app!r} for an asset URI: lowercase letters, digits and"
            " dashes, starting with a letter or digit"
        )
    if not isinstance(host_or_rack, str) or not host_or_rack.strip():
        raise ValueError(
            "asset_uri needs the rack (org/rack) or the rack API host of the connection"
        )
    value = host_or_rack.strip()
    if "://" not in value and "@" not in value and "/" in value.strip("/"):
        parts = value.strip("/").split("/")
        if len(parts) != 2 or not all(_RACK_PART.fullmatch(part) for part in parts):
            raise ValueError(
                f"invalid rack {value!r} for an asset URI: give it as <org>/<rack>, or the"
                " rack API host"
            )
        return f"{SCHEME}://{parts[0]}/{parts[1]}/{app}"
    return f"{SCHEME}://{_host(value)}/{app}"


def _host(value: str) -> str:
    """The lowercase host (and a port other than the scheme's default) of a host or URL."""
    parsed = urllib.parse.urlsplit(value if "://" in value else f"//{value}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or any(c in host for c in "/\\ "):
        raise ValueError(
            "invalid rack API host for an asset URI: give the host or URL of the rack API,"
            " e.g. https://api.rack.example.com, or the rack as <org>/<rack>"
        )
    if port is not None and port != _DEFAULT_PORTS.get(parsed.scheme.lower(), 443):
        return f"{host}:{port}"
    return host
