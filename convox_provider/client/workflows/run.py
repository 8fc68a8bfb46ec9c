"""Run a one-off command and get its exit code (docs/rack-api.md §6.9, §7.6).

The rack reports a command's exit code only through exec (§6.6), and deletes finished pods about
5 s after they end, so ``convox run`` starts a pod that merely sleeps, waits for it to run, execs
the real command in it, and deletes the pod afterwards. Here the pod is deleted in every case —
success, a non-zero exit, an exec error, a timeout, and cancellation (both drivers throw a
cancellation into the flow, whose ``finally`` then sends the DELETE).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from convox_provider.client.encoding import segment, validate_env
from convox_provider.client.errors import (
    ConvoxError,
    ConvoxInputError,
    ConvoxNotFoundError,
    ConvoxWorkflowError,
)
from convox_provider.client.models import Process
from convox_provider.client.operation import D, Flow, Resource, call, operation
from convox_provider.client.resources import processes as process_routes
from convox_provider.client.resources import streams as stream_routes
from convox_provider.client.status import ProcessStatus
from convox_provider.client.waiting import RUN_TIMEOUT, START_WAIT, WaitOptions, wait_options
from convox_provider.client.workflows.events import (
    EventCallback,
    ProcessCleanupFailed,
    ProcessDeleted,
    ProcessStarted,
    ProcessStateChanged,
)
from convox_provider.client.workflows.waits import Deadline, Poller, emit, is_transient

__all__ = ["ProcessWorkflows"]

_log = logging.getLogger("convox_provider.client")


def _command_text(command: str | Sequence[str]) -> str:
    if isinstance(command, str):
        text = command
    elif isinstance(command, Sequence) and all(isinstance(arg, str) for arg in command):
        text = shlex.join(command)
    else:
        raise ConvoxInputError("command must be a str or a sequence of str")
    if not text.strip():
        raise ConvoxInputError("run needs a non-empty command")
    return text


def _wait_running(
    resource: Resource[Any],
    app: str,
    pid: str,
    deadline: Deadline,
    options: WaitOptions,
) -> Flow[None]:
    """Flow: poll the pod until it reads ``running`` twice; fail as soon as it cannot run.

    Unlike the CLI, which only times out, a pod that crashed, ended or vanished fails at once:
    its ``sleep`` can no longer host the command.
    """
    on_event = options.on_event
    poller = Poller(f"process {pid} of app {app} to run", deadline, options)
    status: str | None = None
    streak = 0
    yield from poller.pause()
    while True:
        yield from poller.check()
        try:
            pod = yield from poller.fetch(lambda: call(process_routes.get(app, pid)))
        except ConvoxNotFoundError:
            raise ConvoxWorkflowError(
                f"process {pid} of app {app} disappeared before the command could start"
            ) from None
        if pod is not None:
            if pod.status != status:
                emit(
                    on_event,
                    ProcessStateChanged(app, pid, pod.name, pod.status, status, pod.release),
                )
                status = pod.status
                poller.state = f"status {status!r}"
            state = pod.process_status
            if state in (ProcessStatus.CRASHED, ProcessStatus.FAILED, ProcessStatus.COMPLETE):
                raise ConvoxWorkflowError(
                    f"process {pid} of app {app} is {pod.status} before the command could start;"
                    " see its logs (client.processes.logs) while the rack keeps it"
                )
            streak = streak + 1 if state is ProcessStatus.RUNNING else 0
            if streak >= 2:
                break
        yield from poller.pause()


def _delete(
    resource: Resource[Any], app: str, pid: str, on_event: EventCallback | None
) -> Flow[None]:
    """Flow: delete the pod; a failure is reported, never raised (it must not hide the outcome).

    A transient failure is tried once more (a repeated DELETE at worst finds the pod gone). A pod
    left behind ends by itself when its ``sleep`` runs out.
    """
    for attempt in (1, 2):
        try:
            yield from call(process_routes.delete(app, pid))
        except ConvoxNotFoundError:
            break  # already gone
        except ConvoxError as exc:
            if attempt == 1 and is_transient(exc):
                continue
            _log.warning("could not delete process %s of app %s: %s", pid, app, exc)
            emit(on_event, ProcessCleanupFailed(app, pid, str(exc)))
            return
        break
    emit(on_event, ProcessDeleted(app, pid))


def _run(
    resource: Resource[Any],
    app: str,
    start: Callable[[], Flow[Process]],
    command: str,
    options: WaitOptions,
    *,
    entrypoint: bool,
    on_output: Callable[[bytes], None] | None,
) -> Flow[int]:
    on_event = options.on_event
    deadline = yield from Deadline.start(options.timeout)
    pod = yield from start()
    closing = False
    try:  # from here on, whatever raises (the caller's callbacks too), the pod is deleted
        emit(on_event, ProcessStarted(app, pod.id, pod.name))
        yield from _wait_running(resource, app, pod.id, deadline, options)
        return (
            yield from stream_routes.process_exec(
                app,
                pod.id,
                command,
                on_output=on_output,
                entrypoint=entrypoint,
                tty=False,
            )
        )
    except GeneratorExit:
        closing = True  # the flow is being closed: it can no longer send anything
        raise
    finally:
        if not closing:
            yield from _delete(resource, app, pod.id, on_event)


def _remove(app: str, pid: str) -> Flow[bool]:
    try:
        yield from call(process_routes.delete(app, pid))
    except ConvoxNotFoundError:
        return False
    return True


class ProcessWorkflows(Resource[D]):
    """Workflows of ``client.processes``."""

    @operation
    def remove(self, app: str, pid: str) -> Flow[bool]:
        """Delete process ``pid`` if the rack still has it; whether it had (a 404, or a 500
        ``… not found``, means it is gone already, docs/rack-api.md §3.3)."""
        segment(app, kind="app name")
        segment(pid, kind="process id")
        return _remove(app, pid)

    @operation
    def run_attached(
        self,
        app: str,
        service: str,
        command: str | Sequence[str],
        *,
        release: str | None = None,
        environment: Mapping[str, str] | None = None,
        timeout: int = RUN_TIMEOUT,
        cpu: int | None = None,
        cpu_limit: int | None = None,
        memory: int | None = None,
        memory_limit: int | None = None,
        gpu: int | None = None,
        gpu_vendor: str | None = None,
        node_labels: Mapping[str, str] | None = None,
        use_service_volume: bool | None = None,
        entrypoint: bool = True,
        start_timeout: float = START_WAIT.timeout,
        poll_interval: float = START_WAIT.poll_interval,
        max_errors: int = START_WAIT.max_errors,
        on_output: Callable[[bytes], None] | None = None,
        on_event: EventCallback | None = None,
        waiting: WaitOptions | None = None,
    ) -> Flow[int]:
        """Run ``command`` in a new one-off pod of ``service``, stream its output, return its
        exit code; the pod is always deleted afterwards (``convox run``; ``processes.run`` is
        the official SDK's detached run, which returns the pod and no exit code).

        As ``convox run`` (§7.6): a pod running ``sleep <timeout>`` is started (``timeout`` in
        seconds bounds the command's run time; ``release``, ``environment`` and the sizing
        options as for ``processes.run_detached``), polled every ``poll_interval`` seconds until
        it reads ``running`` twice (``start_timeout`` seconds at most; unlike the CLI, a pod that
        crashes, fails or vanishes fails at once), then ``command`` (a str split shell-style by
        the rack, or a list quoted for it) is exec'd with ``Tty: false`` and no stdin, with the
        image entrypoint unless ``entrypoint=False``. Output (stdout and stderr merged, raw
        bytes) goes to ``on_output``. A final ``ERROR:`` frame raises ``ConvoxStreamError`` even
        after an exit code of 0. Nothing is retried: the command must not run twice.
        ``waiting`` gives the start wait's options (its ``timeout`` is ``start_timeout``) as one
        :class:`~..waiting.WaitOptions` instead.
        """
        text = _command_text(command)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise ConvoxInputError(f"invalid timeout {timeout!r}: give whole seconds >= 1")
        options = wait_options(locals(), START_WAIT, timeout="start_timeout")
        if environment is not None:
            validate_env(environment)
        start_call = process_routes.run_detached(
            app,
            service,
            command=f"sleep {timeout}",
            release=release,
            environment=environment,
            cpu=cpu,
            cpu_limit=cpu_limit,
            memory=memory,
            memory_limit=memory_limit,
            gpu=gpu,
            gpu_vendor=gpu_vendor,
            node_labels=node_labels,
            use_service_volume=use_service_volume,
        )

        def start() -> Flow[Process]:
            return call(start_call)

        return _run(
            self,
            app,
            start,
            text,
            options,
            entrypoint=entrypoint,
            on_output=on_output,
        )
