"""Errors raised by the Convox client.

Names follow the official ``convox`` SDK 0.1.0, plus what it lacks (403, 422, client-side input
checks, stream errors)::

    ConvoxError
    ├── ConvoxConfigError (also ValueError)  bad host/key/auth file, or a console answering HTML
    │   └── ConvoxConfigNotFoundError        no CLI auth file (also FileNotFoundError, as the SDK)
    ├── ConvoxConnectionError                the rack could not be reached or the connection broke
    │   └── ConvoxTimeoutError               connect/read/write/pool timeout
    ├── ConvoxWaitTimeoutError               a wait (build, rollout, process) ran out of time
    ├── ConvoxWorkflowError                  a multi-step flow ended badly (build failed, rollback)
    │   ├── ConvoxBuildFailedError
    │   └── ConvoxRolloutEndedError          a rollout ended on another release
    │       ├── ConvoxRollbackError          the app went back to an older release
    │       └── ConvoxSupersededError        a newer release was promoted over this one
    ├── ConvoxStreamError                    an ``ERROR:`` frame ended a WebSocket stream
    └── ConvoxAPIError                       the rack answered with an error status
        ├── ConvoxAuthError                  401
        │   └── ConvoxPermissionError        401 "unauthorized to access" (also Forbidden)
        ├── ConvoxForbiddenError             403 (``app is currently updating``, role missing)
        ├── ConvoxNotFoundError              404, and 500 "… not found" (docs/rack-api.md §3.3)
        ├── ConvoxValidationError            400 and 422
        │   └── ConvoxInputError             bad argument, caught before sending (also ValueError)
        ├── ConvoxConflictError              409 (app exists, app locked, budget cap)
        ├── ConvoxServerError                other 5xx
        │   ├── ConvoxServerConflictError    500 "already exists"/"is locked" (also Conflict)
        │   ├── ConvoxServerValidationError  500 "invalid", "required"… (also Validation)
        │   ├── ConvoxGatewayError           502, 503, 504
        │   └── ConvoxNotImplementedError    501 ``unimplemented``
        ├── ConvoxRateLimitError             429
        └── ConvoxResponseError              a success answer the client could not read

Every :class:`ConvoxAPIError` carries ``status_code``, ``message`` (the rack's own words),
``request_id`` (the ``Request-Id`` response header) and ``method``/``path``; other 4xx/5xx
statuses give a plain :class:`ConvoxAPIError`/:class:`ConvoxServerError`. No error ever holds
credentials or response values: URLs in messages never carry user-info, headers are not kept,
and an unreadable answer is described by position, not content. All errors survive pickling.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConvoxAPIError",
    "ConvoxAuthError",
    "ConvoxBuildFailedError",
    "ConvoxConfigError",
    "ConvoxConfigNotFoundError",
    "ConvoxConflictError",
    "ConvoxConnectionError",
    "ConvoxError",
    "ConvoxForbiddenError",
    "ConvoxGatewayError",
    "ConvoxInputError",
    "ConvoxNotFoundError",
    "ConvoxNotImplementedError",
    "ConvoxPermissionError",
    "ConvoxRateLimitError",
    "ConvoxResponseError",
    "ConvoxRollbackError",
    "ConvoxRolloutEndedError",
    "ConvoxServerConflictError",
    "ConvoxServerError",
    "ConvoxServerValidationError",
    "ConvoxStreamError",
    "ConvoxSupersededError",
    "ConvoxTimeoutError",
    "ConvoxValidationError",
    "ConvoxWaitTimeoutError",
    "ConvoxWorkflowError",
    "as_sentence",
    "error_for_status",
    "is_not_found_500",
]


class ConvoxError(Exception):
    """Base class of every error this package raises."""


class ConvoxConfigError(ConvoxError, ValueError):
    """The client configuration (host, key, rack, auth file) is unusable.

    ``setting`` names the setting the error is about, as :meth:`ClientConfig.create
    <convox_provider.client.config.ClientConfig.create>` calls it (``"host"``, ``"api_key"``,
    ``"username"``, ``"rack"``, ``"timeout"``, ``"verify"``, ``"session"``, ``"actor"``,
    ``"max_connections"``, ``"keepalive_seconds"``, ``"retry"``), ``"allow_insecure_http"`` for
    the refusal of plain ``http://`` to a remote host, ``"config_dir"`` for the Convox CLI's
    settings files; ``None`` when no one setting is at fault.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class ConvoxConfigNotFoundError(ConvoxConfigError, FileNotFoundError):
    """The Convox CLI's auth file is missing (``from_cli_config``): a :class:`ConvoxConfigError`
    (so a ``ValueError``) and, as the official SDK raises there, a ``FileNotFoundError``."""


class ConvoxConnectionError(ConvoxError):
    """The rack could not be reached, or the connection broke before a full answer."""

    @property
    def message(self) -> str:
        """The description, as the official SDK's ``ConvoxConnectionError.message``."""
        return str(self.args[0]) if self.args else ""


class ConvoxTimeoutError(ConvoxConnectionError):
    """A network timeout (connect, read, write or pool)."""


class ConvoxWaitTimeoutError(ConvoxError):
    """A wait for a build, rollout or process did not finish before its deadline."""


class ConvoxWorkflowError(ConvoxError):
    """A multi-step operation reached a bad end state."""


class ConvoxBuildFailedError(ConvoxWorkflowError):
    """A build ended ``failed``; ``build_id`` names it and ``logs_tail`` holds its last lines."""

    def __init__(self, message: str, *, build_id: str, logs_tail: str = "") -> None:
        super().__init__(message)
        self.build_id = build_id
        self.logs_tail = logs_tail

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild,
            (type(self), self.args, {"build_id": self.build_id, "logs_tail": self.logs_tail}),
        )


class ConvoxRolloutEndedError(ConvoxWorkflowError):
    """A rollout of ``release_id`` of ``app`` ended with the app on another release,
    ``active_release``: the base of :class:`ConvoxRollbackError` (an older one) and
    :class:`ConvoxSupersededError` (a newer one), which never catch each other."""

    def __init__(self, message: str, *, app: str, release_id: str, active_release: str) -> None:
        super().__init__(message)
        self.app = app
        self.release_id = release_id
        self.active_release = active_release

    def __reduce__(self) -> tuple[object, ...]:
        fields = {"app": self.app, "release_id": self.release_id}
        return (
            _rebuild,
            (type(self), self.args, {**fields, "active_release": self.active_release}),
        )


class ConvoxRollbackError(ConvoxRolloutEndedError):
    """A rollout was rolled back: the app is running, but not on the release that was promoted."""


class ConvoxSupersededError(ConvoxRolloutEndedError):
    """A newer release was promoted while this one rolled out (or before a rollback of it): the
    app runs ``active_release``, which is newer than ``release_id``. Nothing was rolled back;
    someone else's deploy replaced this one, and undoing it would undo theirs."""


def _rebuild(cls: type[Exception], args: tuple[object, ...], kwargs: dict[str, Any]) -> Exception:
    return cls(*args, **kwargs)


class ConvoxStreamError(ConvoxError):
    """The rack ended a WebSocket stream with an ``ERROR:`` frame (docs/rack-api.md §6.5)."""


class ConvoxAPIError(ConvoxError):
    """The rack answered a request with an error status.

    ``hint`` (shown after the rest) says what the status cannot tell by itself, e.g. that a
    write answered by a gateway may have taken effect on the rack.
    """

    def __init__(
        self,
        message: str | int,
        *sdk_args: str | None,
        status_code: int | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
        hint: str = "",
    ) -> None:
        if isinstance(message, int) and not isinstance(message, bool):
            # the official SDK's positional form: (status_code, message, request_id=None)
            if not 1 <= len(sdk_args) <= 2 or not isinstance(sdk_args[0], str):
                raise TypeError("ConvoxAPIError(status_code, message, request_id=None)")
            status_code, message = message, sdk_args[0]
            request_id = sdk_args[1] if len(sdk_args) == 2 else request_id
        elif sdk_args or status_code is None or not isinstance(message, str):
            raise TypeError("ConvoxAPIError(message, *, status_code=…) or (status_code, message)")
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.method = method
        self.path = path
        self.hint = hint
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        rid = f" [Request-Id {self.request_id}]" if self.request_id else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.status_code}: {self.message}{where}{rid}{hint}"

    def __reduce__(self) -> tuple[object, ...]:
        fields = {"status_code": self.status_code, "request_id": self.request_id}
        where = {"method": self.method, "path": self.path, "hint": self.hint}
        return (_rebuild, (type(self), (self.message,), {**fields, **where}))


class ConvoxAuthError(ConvoxAPIError):
    """401: the key is wrong, expired, or lacks the role (docs/rack-api.md §1.2-§1.3)."""


class ConvoxForbiddenError(ConvoxAPIError):
    """403: e.g. ``app is currently updating`` on promote without force, or admin role required."""


class ConvoxPermissionError(ConvoxAuthError, ConvoxForbiddenError):
    """401 ``… unauthorized to access …``: the key is valid but lacks the role (docs/rack-api.md
    §1.3). Both an auth error (the status) and a forbidden error (the official SDK's class for
    it, so its ``except ConvoxForbiddenError`` still catches it)."""


class ConvoxNotFoundError(ConvoxAPIError):
    """404, or a 500 whose message says ``not found`` (how the rack reports missing builds,
    releases and processes, docs/rack-api.md §3.3)."""


class ConvoxValidationError(ConvoxAPIError):
    """400 or 422: the rack rejected the request's content (and the base of
    :class:`ConvoxInputError`, the same verdict given before sending)."""


class ConvoxInputError(ConvoxValidationError, ValueError):
    """An argument is invalid; raised before any request is sent.

    It is a :class:`ConvoxValidationError` (``status_code`` 0: nothing was sent) and a
    ``ValueError``, so code written for the official SDK, which leaves these checks to the rack
    and catches its 400 as ``ConvoxValidationError``, catches them unchanged.
    """

    def __init__(self, message: str, **_: Any) -> None:
        super().__init__(message, status_code=0)

    def _describe(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message,))


class ConvoxConflictError(ConvoxAPIError):
    """409: app already exists, app locked, or budget cap exceeded."""


class ConvoxRateLimitError(ConvoxAPIError):
    """429: too many requests (console or proxy in front of the rack)."""


class ConvoxResponseError(ConvoxAPIError):
    """The rack answered with a success status but a body the client could not read (not JSON, or
    not the expected shape): a proxy in the way, or a rack version this client does not know."""


class ConvoxServerError(ConvoxAPIError):
    """5xx other than a "not found" 500."""


class ConvoxServerConflictError(ConvoxServerError, ConvoxConflictError):
    """A 500 saying ``already exists`` or ``is locked``: how older racks report a conflict.
    A server error (its status) and a conflict (as the official SDK classifies it)."""


class ConvoxServerValidationError(ConvoxServerError, ConvoxValidationError):
    """A 500 whose message says the input was refused (``is reserved``, ``invalid``, ``must
    specify``, ``can not promote``, ``required``, ``not available``, ``not enabled``, ``is
    disabled``). A server error (its status) and a validation error (as the official SDK has it).
    """


class ConvoxGatewayError(ConvoxServerError):
    """502, 503 or 504 from a proxy, load balancer or console in front of the rack."""


class ConvoxNotImplementedError(ConvoxServerError):
    """501: the rack's provider does not implement this route."""


_BY_STATUS: dict[int, type[ConvoxAPIError]] = {
    400: ConvoxValidationError,
    401: ConvoxAuthError,
    403: ConvoxForbiddenError,
    404: ConvoxNotFoundError,
    409: ConvoxConflictError,
    422: ConvoxValidationError,
    429: ConvoxRateLimitError,
    501: ConvoxNotImplementedError,
    502: ConvoxGatewayError,
    503: ConvoxGatewayError,
    504: ConvoxGatewayError,
}


_NOT_FOUND_WORDS = ("not found", "no such", "does not exist")
_CONFLICT_WORDS = ("already exists", "is locked")
_VALIDATION_WORDS = (
    "is reserved",
    "invalid",
    "must specify",
    "can not promote",
    "required",
    "not available",
    "not enabled",
    "is disabled",
)


def as_sentence(message: str) -> str:
    """``message`` with a capital first letter, to stand as a sentence of its own (the rack's
    and the client's messages start in lower case)."""
    return message[:1].upper() + message[1:]


def _says(message: str, words: tuple[str, ...]) -> bool:
    lower = message.lower()
    return any(word in lower for word in words)


def is_not_found_500(status_code: int, message: str) -> bool:
    """Whether an error answer is a 500 whose message contains ``not found``: how the rack
    reports missing releases, builds and processes (docs/rack-api.md §3.3). Such a 500 is a
    :class:`ConvoxNotFoundError`, is never retried, and is no sign that a write may have acted.
    The one place this rule lives (errors, retries, and the transport's hints use it)."""
    return status_code == 500 and _says(message, _NOT_FOUND_WORDS)


def error_for_status(
    status_code: int,
    message: str,
    *,
    request_id: str | None = None,
    method: str = "",
    path: str = "",
    hint: str = "",
) -> ConvoxAPIError:
    """Build the typed error for an error response.

    A 500 whose message contains ``not found`` (or ``no such``, ``does not exist``) becomes
    :class:`ConvoxNotFoundError`: the rack reports missing releases, builds and processes that
    way (docs/rack-api.md §3.3). Other 500s are classified by their words as the official SDK
    does (:class:`ConvoxServerConflictError`, :class:`ConvoxServerValidationError`, both still
    :class:`ConvoxServerError`); a 401 ``unauthorized to access`` (a missing role) is a
    :class:`ConvoxPermissionError`, both :class:`ConvoxAuthError` and
    :class:`ConvoxForbiddenError`.
    """
    if is_not_found_500(status_code, message):
        cls: type[ConvoxAPIError] = ConvoxNotFoundError
    elif status_code == 500 and _says(message, _CONFLICT_WORDS):
        cls = ConvoxServerConflictError
    elif status_code == 500 and _says(message, _VALIDATION_WORDS):
        cls = ConvoxServerValidationError
    elif status_code == 401 and "unauthorized to access" in message.lower():
        cls = ConvoxPermissionError
    elif status_code in _BY_STATUS:
        cls = _BY_STATUS[status_code]
    elif status_code >= 500:
        cls = ConvoxServerError
    else:
        cls = ConvoxAPIError
    return cls(
        message,
        status_code=status_code,
        request_id=request_id,
        method=method,
        path=path,
        hint=hint,
    )
