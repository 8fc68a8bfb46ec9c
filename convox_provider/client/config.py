"""Where the rack is and how to authenticate to it (docs/rack-api.md §1).

Two kinds of connection share every path:

* **direct rack** — ``https://api.<rack-domain>`` with the rack password (or a JWT with user
  ``jwt``); no ``Rack`` header.
* **console** — ``https://console.convox.com`` (or a self-hosted console) with a deploy key or CLI
  token, plus ``Rack: <org>/<rack>`` on every request and a ``convox.go/`` User-Agent, since the
  console serves its browser UI on the same host and answers HTML to anything that does not look
  like the CLI (docs/rack-api.md §1.4).
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from convox_provider import __version__
from convox_provider.client.errors import ConvoxConfigError, ConvoxConfigNotFoundError
from convox_provider.client.retry import RetryConfig

__all__ = ["DEFAULT_CONSOLE_HOST", "ClientConfig"]

DEFAULT_CONSOLE_HOST = "console.convox.com"
#: What released Go CLIs send (docs/rack-api.md §1.4); consoles key on the ``convox.go/`` prefix.
CONSOLE_USER_AGENT = "convox.go/dev"
DIRECT_USER_AGENT = f"airflow-provider-convox/{__version__}"


@dataclass(frozen=True)
class ClientConfig:
    """Validated connection settings shared by the sync and the async client.

    ``base_url`` never contains credentials; ``api_key`` and ``session`` are kept out of
    ``repr()``. ``verify`` is ``True`` (certifi's CAs), ``False`` (no verification: the rack's
    in-cluster certificate is self-signed, docs/rack-api.md §1.1), a CA bundle file or directory
    path, or an ``ssl.SSLContext``. ``timeout`` (seconds) applies to connect, read, write and
    pool waits; calls that need longer (uploads, imports) pass their own, but connecting never
    waits longer than ``timeout``. Environment proxies and ``SSL_CERT_FILE`` are not used (like
    the Go CLI); pass an ``httpx`` transport to the client for proxies or mTLS.
    ``max_connections`` bounds the connection pool: requests beyond it wait their turn in the
    client, so many waits (e.g. a triggerer's) share a few connections; idle connections are
    kept for ``keepalive_seconds``, less than the rack's 120 s idle limit (§1.6) and the 60 s of
    common load balancers, and longer than the usual poll interval.
    """

    base_url: str
    api_key: str = field(repr=False)
    rack: str | None = None
    username: str = "convox"
    verify: bool | str | ssl.SSLContext = True
    timeout: float | None = 30.0
    retry: RetryConfig = field(default_factory=RetryConfig)
    session: str | None = field(default=None, repr=False)
    actor: str | None = None
    max_connections: int = 20
    keepalive_seconds: float = 50.0

    @classmethod
    def create(
        cls,
        host: str,
        api_key: str | None = None,
        *,
        rack: str | None = None,
        username: str | None = None,
        verify: bool | str | os.PathLike[str] | ssl.SSLContext = True,
        timeout: float | None = 30.0,
        retry: RetryConfig | None = None,
        session: str | None = None,
        actor: str | None = None,
        allow_insecure_http: bool = False,
        max_connections: int = 20,
        keepalive_seconds: float = 50.0,
    ) -> ClientConfig:
        """Validate and normalise user input; raise :class:`ConvoxConfigError` on anything off.

        ``host`` may be a bare host name (``console.convox.com``, ``api.example.org:5443``), an
        ``https://`` URL, or a rack URL with credentials as terraform prints it
        (``https://convox:<password>@api.<domain>``); then the password is the key unless
        ``api_key`` is given. Plain ``http://`` is refused for anything but a loopback host unless
        ``allow_insecure_http`` is set: the key would cross the network unencrypted.
        """
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConvoxConfigError(
                f"max_connections must be an int, got {max_connections!r}",
                setting="max_connections",
            )
        if max_connections < 1:
            raise ConvoxConfigError(
                f"max_connections must be 1 or more, got {max_connections}",
                setting="max_connections",
            )
        if not keepalive_seconds >= 0:
            raise ConvoxConfigError(
                f"keepalive_seconds must be 0 or more, got {keepalive_seconds!r}",
                setting="keepalive_seconds",
            )
        if not isinstance(host, str) or not host.strip():
            raise ConvoxConfigError(
                "Convox host is empty: pass the console host (console.convox.com) or the rack "
                "API URL (https://api.<rack-domain>)",
                setting="host",
            )
        raw = host.strip()
        if "://" not in raw:
            raw = "https://" + raw
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https"):
            raise ConvoxConfigError(
                f"Convox host must be an http(s) URL or a host name, got scheme {parts.scheme!r}",
                setting="host",
            )
        hostname = parts.hostname
        if not hostname:
            raise ConvoxConfigError(
                "Convox host has no host name; expected e.g. console.convox.com",
                setting="host",
            )
        if not _header_safe(hostname) or " " in hostname:
            raise ConvoxConfigError(
                "Convox host name contains whitespace or control characters; expected e.g. "
                "console.convox.com",
                setting="host",
            )
        try:
            port = parts.port
        except ValueError:
            raise ConvoxConfigError(
                f"Convox host {hostname!r} has an invalid port; expected a number from 1 to 65535",
                setting="host",
            ) from None
        url_user = unquote(parts.username) if parts.username else None
        url_password = unquote(parts.password) if parts.password else None
        key = api_key if api_key is not None else url_password
        if key is None or not key.strip():
            raise ConvoxConfigError(
                "Convox API key is empty: pass the rack password, a deploy key, or a CLI token "
                "(CONVOX_PASSWORD)",
                setting="api_key",
            )
        if key != key.strip() or any(ord(c) < 32 or ord(c) == 127 for c in key):
            raise ConvoxConfigError(
                "Convox API key contains whitespace or control characters; check how it was "
                "copied (a trailing newline is common)",
                setting="api_key",
            )
        user = username or url_user or "convox"
        if ":" in user or not _header_safe(user) or " " in user:
            raise ConvoxConfigError(
                "Convox username must not contain ':', whitespace or control characters "
                "(use 'convox', or 'jwt' for a rack JWT)",
                setting="username",
            )
        if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(hostname):
            raise ConvoxConfigError(
                f"Refusing plain http:// for {hostname}: the API key would be sent unencrypted. "
                "Use https://, or pass allow_insecure_http=True for a trusted private network",
                setting="allow_insecure_http",
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConvoxConfigError(
                "Convox host must not contain a path or query; the client adds the API paths",
                setting="host",
            )
        if rack is not None:
            rack = rack.strip()
            if not rack or not _header_safe(rack) or " " in rack:
                raise ConvoxConfigError(
                    "Convox rack must be a non-empty '<org>/<rack>' name without whitespace",
                    setting="rack",
                )
        for name, value in (("session", session), ("actor", actor)):
            if value is not None and not _header_safe(value):
                raise ConvoxConfigError(
                    f"Convox {name} must be printable ASCII (it is sent as an HTTP header)",
                    setting=name,
                )
        if timeout is not None and not timeout > 0:
            raise ConvoxConfigError(
                "Convox timeout must be a positive number of seconds or None", setting="timeout"
            )
        netloc = hostname if ":" not in hostname else f"[{hostname}]"
        if port is not None:
            netloc = f"{netloc}:{port}"
        return cls(
            base_url=f"{parts.scheme}://{netloc}",
            api_key=key,
            rack=rack or None,
            username=user,
            verify=_check_verify(verify),
            timeout=timeout,
            retry=retry or RetryConfig(),
            session=session or None,
            actor=actor,
            max_connections=max_connections,
            keepalive_seconds=keepalive_seconds,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Read ``CONVOX_HOST``, ``CONVOX_PASSWORD`` and ``CONVOX_RACK`` like the Convox CLI.

        ``RACK_URL`` (``https://convox:<password>@api.<domain>``, a direct rack) is used when
        ``CONVOX_HOST`` is unset; without either the host defaults to ``console.convox.com``.
        """
        env = os.environ if environ is None else environ
        host = env.get("CONVOX_HOST") or env.get("RACK_URL") or DEFAULT_CONSOLE_HOST
        key = env.get("CONVOX_PASSWORD") or None
        rack = env.get("CONVOX_RACK") or None
        if not env.get("CONVOX_HOST") and env.get("RACK_URL"):
            rack = None
        if key is None and "@" not in host:
            raise ConvoxConfigError(
                "CONVOX_PASSWORD is not set: export the deploy key or rack password "
                "(or RACK_URL=https://convox:<password>@api.<domain> for a direct rack)",
                setting="api_key",
            )
        return cls.create(host, key, rack=rack, **overrides)

    @classmethod
    def from_cli_config(
        cls,
        rack: str | None = None,
        *,
        host: str | None = None,
        config_dir: str | os.PathLike[str] | None = None,
        config_path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ClientConfig:
        """Use the login of an installed Convox CLI (v3, or v2 ``convox/rack``).

        The arguments are the official SDK's: ``rack`` first (``'<org>/<rack>'``), ``host``
        by keyword; a ``rack`` that is a host of the auth file (and no ``host``) is that direct
        rack, as the SDK's ``from_cli_config(rack="rack.example.com")``. ``config_path`` is, as
        in the SDK, the auth file itself, whatever its name; the other files below (``session``
        as the SDK, and the rest) are read from its directory. A missing auth file raises
        :class:`ConvoxConfigNotFoundError`, also a ``FileNotFoundError`` as the SDK's.

        Reads the CLI's settings directory the way the CLI does (*convox/convox*
        ``vendor/github.com/convox/stdcli/setting.go``, ``pkg/cli/login.go``,
        ``pkg/rack/console.go``, ``pkg/rack/rack.go``, ``pkg/console/auth.go``; *convox/rack*
        ``pkg/cli/helpers.go``, ``pkg/cli/switch.go``): ``auth`` is a JSON object host →
        password, ``session`` a JSON object host → console session id (sent as ``Session``),
        ``console`` (v3) or ``host`` (v2) the current host, ``rack`` the current rack, ``racks``
        (v2) or ``switch`` (early v3) a JSON object host → rack, and ``current`` (v3, written by
        ``convox switch``) ``{"name": …, "type": "console"|"terraform"}``.

        The directory is ``config_dir``, else ``$CONVOX_CONFIG``, else the first of these holding
        an ``auth`` file (preferring one that knows the requested host): the v3 CLI's
        ``$XDG_CONFIG_HOME/convox`` (``~/.config/convox``; macOS ``~/Library/Preferences/convox``;
        Windows ``%LOCALAPPDATA%\\convox``), the v2 CLI's ``…/convox2`` (since rack 20221207),
        then ``~/.convox`` (v2 CLIs before that and v3 CLIs before 2020).

        Precedence follows the CLI: ``RACK_URL`` (when ``host`` is not given) selects a direct
        rack outright; ``host`` > ``CONVOX_HOST`` > the current-host file; ``CONVOX_PASSWORD`` >
        ``auth``; ``rack`` > ``CONVOX_RACK`` > ``racks``/``switch`` > ``rack`` > ``current``. The
        CLI's per-directory ``./.convox/rack`` is not read, and a short rack name is sent as is
        (the CLI expands it through the console's ``/racks``): prefer ``'<org>/<rack>'``.
        ``https://`` is used unless ``host`` has a scheme or ``X_DEV_ALLOW_HTTP=true`` (as the
        CLI). Nothing is written back: a session opened later lives in the client only.
        ``overrides`` go to :meth:`create` (``verify``, ``timeout``, ``retry``…).
        """
        env = os.environ if environ is None else environ
        if host is None and (env.get("RACK_URL") or "").strip():
            return cls.create(env["RACK_URL"], None, **overrides)
        fixed = None if config_path is None else _auth_file_settings(config_path, config_dir)
        if fixed is not None:
            candidates = [fixed.directory]
        elif config_dir is not None:
            candidates = [Path(config_dir)]
        elif env.get("CONVOX_CONFIG"):
            candidates = [Path(env["CONVOX_CONFIG"])]
        else:
            candidates = _default_cli_dirs(env, sys.platform)
        direct = False
        if host is None and rack is not None and rack.strip():
            probe = fixed or _pick_cli_settings(candidates, _host_key(rack))
            if probe is not None and _host_key(rack) in probe.mapping("auth"):
                host, rack, direct = rack, None, True
        wanted = host or env.get("CONVOX_HOST") or None
        password = env.get("CONVOX_PASSWORD") or None
        settings = fixed or _pick_cli_settings(
            candidates, None if wanted is None else _host_key(wanted)
        )

        if settings is None:
            if wanted is None or password is None:
                looked = ", ".join(str(d / "auth") for d in candidates)
                raise ConvoxConfigNotFoundError(
                    f"No Convox CLI login found (looked for {looked}). Run `convox login <host>`, "
                    "or pass config_dir= (or set CONVOX_CONFIG) to the CLI's settings directory",
                    setting="config_dir",
                )
            settings = _CliSettings(candidates[0])

        from_file = wanted is None
        if wanted is None:
            wanted = settings.text("console") or settings.text("host")
        if wanted is None and len(settings.auth_hosts()) == 1:
            wanted = settings.auth_hosts()[0]  # the one login there is (as the official SDK)
        if wanted is None:
            known = settings.auth_hosts()
            raise ConvoxConfigError(
                f"The Convox CLI has no current host in {settings.directory} (no 'console' or "
                f"'host' file) and CONVOX_HOST is not set. Pass host= (the auth file "
                f"{_listing(known)}) or run `convox login <host>`",
                setting="host",
            )
        key_host = _host_key(wanted)
        if password is None:
            password = settings.password(key_host)

        if not direct:
            rack = rack or env.get("CONVOX_RACK") or settings.rack_for(key_host)
        if rack is None and not direct:
            if from_file:
                settings.refuse_non_console_current()
            if key_host == DEFAULT_CONSOLE_HOST or (from_file and settings.text("console")):
                raise ConvoxConfigError(
                    f"No rack selected for the console {key_host}: pass rack='<org>/<rack>', set "
                    "CONVOX_RACK, or run `convox switch <org>/<rack>`",
                    setting="rack",
                )

        if "://" in wanted:
            url = wanted.strip()
        elif env.get("X_DEV_ALLOW_HTTP") == "true":
            url = f"http://{key_host}"
        else:
            url = f"https://{key_host}"
        overrides.setdefault("session", settings.mapping("session").get(key_host) or None)
        return cls.create(url, password, rack=rack, **overrides)

    @property
    def console(self) -> bool:
        """Whether requests go through a console (a ``Rack`` header is sent)."""
        return self.rack is not None

    @property
    def host(self) -> str:
        """``host[:port]`` of the base URL (the key of CLI auth and session files)."""
        return self.base_url.split("://", 1)[1]

    def console_app_page(self, app: str) -> str | None:
        """The console's page of ``app`` for a console connection, else None (a direct rack
        has no web pages). The shape is inferred, not published (docs/rack-api.md §1.7)."""
        if not self.console or not self.rack:
            return None
        org, _, rack = self.rack.partition("/")
        return f"{self.base_url}/organizations/{org}/racks/{rack}/apps/{app}"

    def headers(self) -> dict[str, str]:
        """Headers sent with every request and WebSocket upgrade."""
        token = base64.b64encode(f"{self.username}:{self.api_key}".encode()).decode("ascii")
        headers = {
            "Authorization": f"Basic {token}",
            "Accept": "application/json",
        }
        if self.console:
            assert self.rack is not None
            headers["Rack"] = self.rack
            headers["User-Agent"] = CONSOLE_USER_AGENT
            headers["Version"] = "dev"
        else:
            headers["User-Agent"] = DIRECT_USER_AGENT
        if self.actor:
            headers["Convox-Actor"] = self.actor
        return headers

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS settings of ``verify`` as one context (for httpx and WebSocket connections)."""
        verify = self.verify
        if isinstance(verify, ssl.SSLContext):
            return verify
        if isinstance(verify, str):
            try:
                if os.path.isdir(verify):
                    return ssl.create_default_context(capath=verify)
                return ssl.create_default_context(cafile=verify)
            except (OSError, ssl.SSLError) as exc:
                raise ConvoxConfigError(
                    f"Cannot load the CA certificates from {verify}: {exc}",
                    setting="verify",
                ) from None
        return _standard_context(verify)

    def httpx_timeout(self, seconds: float | None) -> httpx.Timeout:
        """``seconds`` for reading, writing and pool waits (None: wait forever); connecting is
        bounded by the configured ``timeout`` as well."""
        limits = [t for t in (seconds, self.timeout) if t is not None]
        return httpx.Timeout(seconds, connect=min(limits) if limits else None)


@functools.lru_cache(maxsize=2)
def _standard_context(verify: bool) -> ssl.SSLContext:
    """certifi-verified or unverified; built once per process (loading the CAs takes ~30 ms)."""
    return httpx.create_ssl_context(verify=verify, trust_env=False)


def _header_safe(value: str) -> bool:
    """Printable ASCII (space allowed): what can go into an HTTP header value."""
    return all(32 <= ord(c) < 127 for c in value)


def _check_verify(
    verify: bool | str | os.PathLike[str] | ssl.SSLContext,
) -> bool | str | ssl.SSLContext:
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    if isinstance(verify, (str, os.PathLike)):
        path = os.fspath(verify)
        if not os.path.exists(path):
            raise ConvoxConfigError(
                f"CA bundle {path} does not exist; pass verify=True (system CAs), a CA file or "
                "directory, an ssl.SSLContext, or verify=False",
                setting="verify",
            )
        return path
    raise ConvoxConfigError(
        "verify must be a bool, a CA bundle path or an ssl.SSLContext, not"
        f" {type(verify).__name__}",
        setting="verify",
    )


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


# -- Convox CLI settings ------------------------------------------------------------------------


def _default_cli_dirs(env: Mapping[str, str], platform: str) -> list[Path]:
    """The v3, v2 and legacy CLI settings directories, as adrg/xdg 0.2.1 and stdcli place them."""
    home = Path(
        env.get("USERPROFILE" if platform == "win32" else "HOME") or os.path.expanduser("~")
    )
    config_home = env.get("XDG_CONFIG_HOME")
    if not config_home:
        if platform == "darwin":
            config_home = str(home / "Library" / "Preferences")
        elif platform == "win32":
            app_data = env.get("APPDATA") or str(home / "AppData")
            config_home = env.get("LOCALAPPDATA") or str(Path(app_data) / "Local")
        else:
            config_home = str(home / ".config")
    return [Path(config_home) / "convox", Path(config_home) / "convox2", home / ".convox"]


def _host_key(host: str) -> str:
    """How the CLI keys ``auth``/``session``: ``host[:port]`` without scheme or credentials."""
    value = host.strip()
    if "://" in value:
        value = value.split("://", 1)[1]
    return value.rsplit("@", 1)[-1].rstrip("/")


def _listing(hosts: list[str]) -> str:
    return "has: " + ", ".join(hosts) if hosts else "has no hosts"


def _auth_file_settings(
    config_path: str | os.PathLike[str], config_dir: str | os.PathLike[str] | None
) -> _CliSettings:
    """The settings of the official SDK's ``config_path``: that file (whatever its name) is the
    auth file, and the CLI's other files (``session``…) are read from its directory."""
    auth_file = Path(config_path)
    if config_dir is not None:
        raise ConvoxConfigError(
            "give config_path (the auth file) or config_dir (the CLI's settings directory), "
            "not both",
            setting="config_dir",
        )
    if not auth_file.is_file():
        raise ConvoxConfigNotFoundError(
            f"Convox CLI auth file {auth_file} (config_path) not found. Run `convox login "
            "<host>`, or pass the path of the JSON file of host to password",
            setting="config_dir",
        )
    return _CliSettings(auth_file.parent, auth_file.name)


def _pick_cli_settings(candidates: list[Path], host: str | None) -> _CliSettings | None:
    """The first directory with an ``auth`` file, preferring one that knows ``host``."""
    found = [_CliSettings(d) for d in candidates if (d / "auth").is_file()]
    if host is not None:
        for settings in found:
            if host in settings.mapping("auth"):
                return settings
    return found[0] if found else None


@dataclass(frozen=True)
class _CliSettings:
    """One Convox CLI settings directory, read-only; errors name files, never their contents."""

    directory: Path
    auth_name: str = "auth"
    """The name of the auth file (the official SDK's ``config_path`` may name any file)."""

    def file(self, name: str) -> Path:
        """The path of the setting ``name`` (``"auth"`` is the auth file, whatever its name)."""
        return self.directory / (self.auth_name if name == "auth" else name)

    def text(self, name: str) -> str | None:
        """A plain setting (trimmed, like stdcli), or None when missing or empty."""
        path = self.file(name)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise ConvoxConfigError(
                f"Convox CLI settings file {path} is not UTF-8 text", setting="config_dir"
            ) from None
        except OSError as exc:
            raise ConvoxConfigError(
                f"Cannot read Convox CLI settings file {path}: {exc.strerror}",
                setting="config_dir",
            ) from None
        return value or None

    def mapping(self, name: str) -> dict[str, str]:
        """A JSON-object setting (``auth``, ``session``…); missing or empty means ``{}``."""
        text = self.text(name)
        if text is None:
            return {}
        path = self.file(name)
        problem = None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:  # raised below: exc.doc holds the passwords
            problem = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        if problem is not None:
            raise ConvoxConfigError(
                f"Convox CLI settings file {path} is not valid JSON ({problem}); fix it or run "
                "`convox login` again",
                setting="config_dir",
            )
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ConvoxConfigError(
                f"Convox CLI settings file {path} is not a JSON object of strings; fix it or run "
                "`convox login` again",
                setting="config_dir",
            )
        return data

    def auth_hosts(self) -> list[str]:
        return sorted(self.mapping("auth"))

    def password(self, host: str) -> str:
        """The password the CLI stored for ``host``."""
        auth = self.mapping("auth")
        path = self.file("auth")
        if host not in auth:
            raise ConvoxConfigError(
                f"Convox CLI auth file {path} has no password for {host!r} "
                f"(it {_listing(sorted(auth))}). Run `convox login {host}`, or pass one of those "
                "as host=",
                setting="config_dir",
            )
        if not auth[host].strip():
            raise ConvoxConfigError(
                f"Convox CLI auth file {path} has an empty password for {host!r}; run "
                f"`convox login {host}` again",
                setting="config_dir",
            )
        return auth[host]

    def rack_for(self, host: str) -> str | None:
        """The rack the CLI would select on ``host`` (without flags or ``CONVOX_RACK``)."""
        for name in ("racks", "switch"):
            rack = self.mapping(name).get(host)
            if rack:
                return rack
        rack = self.text("rack")
        if rack is not None:
            return rack
        current = self._current()
        if current.get("type") == "console" and current.get("name"):
            return current["name"]
        return None

    def refuse_non_console_current(self) -> None:
        """Raise when ``convox switch`` selected a rack this client cannot reach from files."""
        current = self._current()
        kind = current.get("type")
        if kind and kind != "console":
            raise ConvoxConfigError(
                f"The Convox CLI's current rack {current.get('name', '')!r} "
                f"({self.directory / 'current'}) is a {kind} rack whose API URL is kept in its "
                "terraform state, not in the settings files. Set RACK_URL to the rack URL "
                "(`terraform output api` in its directory), or pass host= and rack=",
                setting="config_dir",
            )

    def _current(self) -> dict[str, str]:
        return self.mapping("current")
