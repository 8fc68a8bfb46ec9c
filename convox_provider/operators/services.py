"""``ConvoxScaleServiceOperator``: scale or resize a service, as ``convox scale`` does."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from convox_provider.client.waiting import ROLLOUT_TIMEOUT, WaitOptions
from convox_provider.operators._assets import DeploysApp

__all__ = ["ConvoxScaleServiceOperator"]


def _whole(name: str, value: Any) -> int | None:
    """A rendered count or size as an int (templates render to strings)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return value


class ConvoxScaleServiceOperator(DeploysApp):
    """Change a service's process count, CPU or memory, and wait for the rollout.

    ``PUT /apps/{app}/services/{service}`` patches the running deployment: no release is
    created (docs/rack-api.md §4.5). The app then rolls out and is waited for as after a promote:
    ``running`` twice in a row, still on the same release; a ``rollback`` raises
    ``AirflowFailException``. Scaling is idempotent, so a retried task simply scales again.

    XCom: ``release_id``, the release the app runs (unchanged by scaling). Returns it.

    :param app: the Convox app.
    :param service: the service to scale.
    :param count: the number of processes (0 or more; templated).
    :param cpu: CPU per process, in millicores (templated).
    :param memory: memory per process, in MiB (templated).
    :param wait_for_completion: wait for the rollout to end.
    :param poll_interval: seconds between app status polls (at most; the first ones come sooner),
        also how long the app read on its old release is the status lag, not yet a rollback.
    :param timeout: seconds to wait for the rollout at most.
    :param deferrable: wait for the rollout on the triggerer.
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = ("convox_conn_id", "app", "service", "count", "cpu", "memory")
    ui_color = "#d7e9f5"

    default_timeout = ROLLOUT_TIMEOUT

    def __init__(
        self,
        *,
        service: str,
        count: int | str | None = None,
        cpu: int | str | None = None,
        memory: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if count is None and cpu is None and memory is None:
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r} needs count, cpu or memory to change"
            )
        self.service = service
        self.count = count
        self.cpu = cpu
        self.memory = memory

    def execute(self, context: Context) -> str:
        """Scale; return the release the app runs."""
        self._preflight(context)
        changes: dict[str, Any] = {
            "count": _whole("count", self.count),
            "cpu": _whole("cpu", self.cpu),
            "memory": _whole("memory", self.memory),
        }
        shown = ", ".join(f"{name} {value}" for name, value in changes.items() if value is not None)
        with self._client() as client:
            release_id = client.apps.get(self.app).release
            self.log.info("Scaling service %s of app %s: %s", self.service, self.app, shown)

            def start(waiting: WaitOptions, wait: bool) -> str:
                client.services.scale(self.app, self.service, **changes, wait=wait, waiting=waiting)
                return release_id

            return self._roll_out(context, start, timeout=self.timeout)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the rollout trigger: the release id, or raise for any other outcome."""
        return str(self._check_event(event, "release_id")["release_id"])
