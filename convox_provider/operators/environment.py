"""``ConvoxEnvSetOperator`` (``convox env set`` / ``env unset``) and the masking of environment
values that every operator taking them shares.

Environment values are secrets until proven otherwise. Each value is registered with Airflow's
secrets masker when the operator is created (literal values) and again right after its templates
are rendered (values from Variables, connections, XCom), before anything is logged; after
rendering the mapping is held in a :class:`MaskedEnvironment`, whose ``repr`` and serialized
form (what Airflow stores as the task's Rendered Templates) show the keys only. Values shorter
than the masker's ``[logging] min_length_masked_secret`` cannot be masked in free text, so this
package never logs a value at all. A literal value written in a DAG file is still part of that
file (the UI's Code view): pass secrets as templates, e.g. ``"{{ var.value.db_password }}"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Context

from convox_provider.client.waiting import ROLLOUT_TIMEOUT
from convox_provider.operators._assets import DeploysApp
from convox_provider.operators._base import ConvoxBaseOperator, check_argument

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk.log import mask_secret

    from convox_provider.client.client import ConvoxClient
else:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # Airflow 3.1: the task SDK's masker lived in execution_time
        from airflow.sdk.execution_time.secrets_masker import mask_secret

__all__ = ["ConvoxEnvSetOperator", "MaskedEnvironment"]

MASK = "***"


def mask_values(values: object, public: Iterable[str] = ()) -> None:
    """Register every string value of a mapping with Airflow's secrets masker.

    One call per value, without a name: given the whole mapping, the masker would only mask
    values under "sensitive" key names (``password``, ``token``...). A value found inside one
    of the ``public`` texts (the run's own ids: ``{{ ts }}`` is part of a scheduled run's id)
    is no secret, and masking it would only make those ids unreadable in every log line.
    Template text (a value with ``{{``) is no secret either: what it renders to is masked.
    """
    if isinstance(values, Mapping):
        shown = tuple(public)
        for value in values.values():
            if not isinstance(value, str) or "{{" in value:
                continue
            if any(value in text for text in shown):
                continue
            mask_secret(value)


def run_identifiers(context: Context) -> tuple[str, ...]:
    """What Airflow shows of a run in every log line and page: its dag, run and task ids, and
    the run's date stamps (never secrets)."""
    ti = context.get("ti")
    found = [
        context.get("run_id"),
        getattr(ti, "dag_id", None),
        getattr(ti, "task_id", None),
        context.get("ts"),
        context.get("ds"),
        context.get("ts_nodash"),
        context.get("ds_nodash"),
    ]
    return tuple(text for text in found if isinstance(text, str) and text)


class MaskedEnvironment(Mapping[str, Any]):
    """Environment variables whose values are masked everywhere Airflow shows them.

    A read-only mapping; ``repr`` and ``serialize()`` (what Airflow stores as the rendered
    template field) show each key with ``***`` as its value.
    """

    def __init__(self, values: Mapping[str, Any], public: Iterable[str] = ()) -> None:
        self._values = dict(values)
        mask_values(self._values, public)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def serialize(self) -> dict[str, str]:
        """The keys, each with ``***`` for its value (Airflow's Rendered Templates view)."""
        return dict.fromkeys(sorted(self._values, key=str), MASK)

    def __repr__(self) -> str:
        return f"MaskedEnvironment({self.serialize()!r})"


class EnvironmentOperator(ConvoxBaseOperator):
    """A Convox operator holding environment values in the attributes ``_secret_mappings``.

    The values are masked when the operator is created and again once its templates are
    rendered; from then on each of those attributes is ``None`` or a :class:`MaskedEnvironment`.
    """

    _secret_mappings: tuple[str, ...] = ()

    def _mask_given(self) -> None:
        """Mask the values given to ``__init__`` (call once the attributes are set)."""
        for name in self._secret_mappings:
            mask_values(getattr(self, name))

    def render_template_fields(
        self, context: Context, jinja_env: jinja2.Environment | None = None
    ) -> None:
        """Render the templates, then mask the environment values before anything logs them."""
        super().render_template_fields(context, jinja_env)
        for name in self._secret_mappings:
            value = getattr(self, name)
            if value is None or isinstance(value, MaskedEnvironment):
                continue
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"{type(self).__name__} {self.task_id!r}: {name} must be a mapping of "
                    f"variable names to values, not {type(value).__name__}"
                )
            setattr(self, name, MaskedEnvironment(value, run_identifiers(context)))

    def _environment(self, name: str, context: Context) -> dict[str, Any] | None:
        """The values of ``name`` as a plain dict for the client (masked first)."""
        value = getattr(self, name)
        if value is None:
            return None
        mask_values(value, run_identifiers(context))
        return dict(value)


class ConvoxEnvSetOperator(DeploysApp, EnvironmentOperator):
    """Set and unset environment variables of a Convox app in one new release, as
    ``convox env set`` / ``env unset`` do, and optionally promote it.

    The change starts from the newest release (or ``release_id``); the new release pins
    ``parent-release`` to it, and a concurrent writer's release is merged instead of
    overwritten (``client.environment.set``, docs/rack-api.md §7.3). Keys and values are
    validated before any request: an invalid one fails the task with a message naming the key,
    never the value. When the newest release already has the change, no release is created and
    that release is used; so a retried task never creates a second release. With ``promote``,
    a release the app already runs is not promoted again (the task only waits for its rollout
    when one is in progress).

    Values are masked (see the module docstring): never logged, never in XCom, shown as
    ``***`` in Rendered Templates.

    XCom: ``release_id`` (as soon as the release exists, before any rollout wait). Returns the
    release id.

    :param app: the Convox app.
    :param set: variables to set, ``{"KEY": "value"}`` (templated: values may come from
        ``{{ var.value.x }}``, ``{{ conn.x.password }}`` or XCom). Values are one line each.
    :param unset: keys to remove (templated).
    :param replace: make ``set`` the whole environment (every other key removed); with
        ``unset`` this is refused.
    :param release_id: the release to start from (default: the newest); its build is kept.
        With it, concurrent writers are not merged.
    :param promote: promote the new release and wait for its rollout.
    :param force: promote even while another rollout is in progress.
    :param wait_for_completion: with ``promote``, wait for the rollout to end.
    :param poll_interval: seconds between app status polls while waiting.
    :param timeout: seconds to wait for the rollout at most.
    :param deferrable: wait for the rollout on the triggerer.
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = ("convox_conn_id", "app", "set", "unset", "release_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"set": "json", "unset": "json"}
    ui_color = "#f3e6c4"

    default_timeout = ROLLOUT_TIMEOUT
    _secret_mappings = ("set",)

    def __init__(
        self,
        *,
        set: Mapping[str, str] | None = None,
        unset: Iterable[str] = (),
        replace: bool = False,
        release_id: str | None = None,
        promote: bool = False,
        force: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, flag in (("replace", replace), ("promote", promote), ("force", force)):
            check_argument(self, name, flag, bool)
        if isinstance(unset, str):
            raise TypeError(
                f"{type(self).__name__} {self.task_id!r}: unset must be a list of keys, "
                "not one string"
            )
        self.set = set
        self._mask_given()
        self.unset = unset if isinstance(unset, (list, tuple)) else list(unset)
        self.replace = replace
        self.release_id = release_id
        self.promote = promote
        self.force = force

    def execute(self, context: Context) -> str:
        """Write the change (and promote it); return the release id."""
        self._preflight(context)
        values = self._environment("set", context)
        unset = tuple(self.unset or ())
        with self._client() as client:
            with self._outcomes():
                release_id = self._write(client, context, values, unset)
            self._push(context, "release_id", release_id)
            if not self.promote:
                return release_id
            return self._promote_or_attach(
                context, client, release_id, force=self.force, timeout=self.timeout
            )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the rollout trigger: the release id, or raise for any other outcome."""
        return str(self._check_event(event, "release_id")["release_id"])

    def _write(
        self,
        client: ConvoxClient,
        context: Context,
        values: dict[str, Any] | None,
        unset: tuple[str, ...],
    ) -> str:
        """Create the release with the change (``client.environment.set``: nothing is created
        when the newest release already has it, so a retried task never writes twice); the id of
        the release that has it. Everything is validated before the first request
        (``ConvoxInputError`` naming keys)."""
        release = client.environment.set(
            self.app,
            values,
            unset=unset,
            replace=self.replace,
            release=self.release_id or None,
            if_changed=True,
            promote=False,
            on_event=self._progress(context),
        )
        release_id = release.id  # only the id goes on: the model's env holds the values
        self.log.info(
            "Release %s of app %s has the environment change (set: %s; unset: %s)",
            release_id,
            self.app,
            ", ".join(sorted((values or {}).keys())) or "-",
            ", ".join(unset) or "-",
        )
        return release_id
