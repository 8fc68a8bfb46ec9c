"""Scale or resize a service and wait for the rollout (docs/rack-api.md §4.5, §7.7)."""

from __future__ import annotations

from typing import Any

from convox_provider.client.errors import ConvoxInputError
from convox_provider.client.models import App
from convox_provider.client.operation import Call, D, Flow, Resource, call, operation
from convox_provider.client.resources import services as service_routes
from convox_provider.client.waiting import ROLLOUT_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.events import EventCallback
from convox_provider.client.workflows.waits import Deadline, app_running

__all__ = ["ServiceWorkflows"]


def _positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConvoxInputError(f"invalid {name} {value!r}: give a whole number >= 1")


def _scale(
    resource: Resource[Any],
    app: str,
    update: Call[None],
    options: WaitOptions,
    *,
    wait: bool,
    watch_processes: bool,
) -> Flow[App | None]:
    deadline = yield from Deadline.start(options.timeout)
    yield from call(update)
    if not wait:
        return None
    return (
        yield from app_running(resource, app, deadline, options, watch_processes=watch_processes)
    )


class ServiceWorkflows(Resource[D]):
    """Workflows of ``client.services``."""

    @operation
    def scale(
        self,
        app: str,
        service: str,
        *,
        count: int | None = None,
        cpu: int | None = None,
        memory: int | None = None,
        gpu: int | None = None,
        gpu_vendor: str | None = None,
        min: int | None = None,
        max: int | None = None,
        wait: bool = True,
        timeout: float = ROLLOUT_WAIT.timeout,
        poll_interval: float = ROLLOUT_WAIT.poll_interval,
        initial_delay: float = ROLLOUT_WAIT.initial_delay,
        max_errors: int = ROLLOUT_WAIT.max_errors,
        watch_processes: bool = True,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[App | None]:
        """Change a service's count, size or autoscaling range, then wait for the rollout.

        ``PUT /apps/{app}/services/{service}`` patches the running deployment (no new release);
        with ``wait`` the app is then polled as by ``apps.wait_for_app_running`` (two
        consecutive ``running``; ``rollback`` raises ``ConvoxRollbackError``) and the final
        reading is returned; ``None`` without ``wait``. ``count`` >= 0; ``cpu`` (millicores),
        ``memory`` (MiB), ``gpu`` >= 1; ``count`` excludes ``min``/``max`` (autoscaling, which
        needs an ``autoscale`` block in ``convox.yml``). At least one change is required.
        ``waiting`` gives the wait's options as one :class:`~..waiting.WaitOptions` instead.
        """
        changes = (count, cpu, memory, gpu, gpu_vendor, min, max)
        if all(value is None for value in changes):
            raise ConvoxInputError("scale needs count, cpu, memory, gpu, gpu_vendor, min or max")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ConvoxInputError(f"invalid count {count!r}: give a whole number >= 0")
        _positive(cpu=cpu, memory=memory, gpu=gpu)
        if min is not None and max is not None and min > max:
            raise ConvoxInputError(f"invalid range: min {min} is above max {max}")
        options = wait_options(locals(), ROLLOUT_WAIT)
        update = service_routes.update(
            app,
            service,
            count=count,
            cpu=cpu,
            memory=memory,
            gpu=gpu,
            gpu_vendor=gpu_vendor,
            min=min,
            max=max,
        )
        return _scale(self, app, update, options, wait=wait, watch_processes=watch_processes)
