"""``ConvoxRunProcessOperator``: run a one-off command, as ``convox run`` does.

Runs are not deferrable. The command's output and its exit code come only through the exec
WebSocket (docs/rack-api.md §6.6), so the stream would have to stay open in the triggerer; a
triggerer restart or a trigger moved to another triggerer cancels and re-creates the trigger,
which would either lose the exit code or run the command a second time. The command therefore
runs while the task holds its worker slot; a deferrable wait is only offered where the rack can
be polled (builds, rollouts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Context

from convox_provider.client.waiting import RUN_TIMEOUT, START_TIMEOUT
from convox_provider.operators._base import AirflowException, _warn_at_dag_line, check_argument
from convox_provider.operators.environment import EnvironmentOperator

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.client.workflows.events import WorkflowEvent

__all__ = ["ConvoxRunProcessOperator"]


class ConvoxRunProcessOperator(EnvironmentOperator):
    """Run a one-off command in a new process of a service and fail unless it exits 0.

    As ``convox run`` (docs/rack-api.md §7.6): a pod of ``service`` running ``sleep <timeout>`` is
    started (on ``release_id``, default the active release), the command is exec'd in it once it
    runs, its output (stdout and stderr merged) goes to the task log line by line as it arrives,
    and the pod is deleted afterwards in every case: success, a non-zero exit, an error, the
    task's ``execution_timeout``, and ``on_kill``.

    A non-zero exit raises ``AirflowException("... exited with code N")``; nothing is retried by
    the operator itself (the command must not run twice by accident). A retried task (Airflow
    ``retries``) runs the command again in a new pod: the previous try's exit code cannot be
    recovered, so on Airflow 3.3+ the retry first deletes the pod the previous try left (which
    also stops its command if it was still running); make the command safe to run again, as
    migrations usually are, or leave ``retries`` at 0. Not deferrable (see the module docstring).

    XCom: ``process_id`` (the pod, as soon as it exists), ``exit_code``. Returns the exit code
    (0).

    :param app: the Convox app.
    :param service: the service whose image, environment and settings the process gets.
    :param command: the command, a string (split shell-style by the rack) or a list of
        arguments (templated).
    :param release_id: the release to run on, e.g. the one a build just created:
        ``"{{ ti.xcom_pull(task_ids='build', key='release_id') }}"`` (default: the active release).
    :param environment: extra environment variables for the process (templated; the values are
        masked like :class:`~convox_provider.operators.environment.ConvoxEnvSetOperator`'s).
    :param timeout: seconds the command may run at most (the pod's lifetime; whole seconds).
    :param cpu: CPU to reserve, in millicores.
    :param memory: memory to reserve, in MiB.
    :param gpu: GPUs to reserve.
    :param cpu_limit: CPU limit, in millicores.
    :param memory_limit: memory limit, in MiB.
    :param gpu_vendor: GPU vendor (``nvidia``, ``amd``).
    :param node_labels: node labels the pod must be scheduled on.
    :param use_service_volume: mount the service's volumes.
    :param entrypoint: run the command through the image's entrypoint (``convox run``'s
        default).
    :param start_timeout: seconds to wait for the pod to start running.
    :param poll_interval: seconds between status polls of the starting pod.
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = (
        "convox_conn_id",
        "app",
        "service",
        "command",
        "release_id",
        "environment",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"environment": "json"}
    ui_color = "#e4d7f5"

    _secret_mappings = ("environment",)
    _started_process: str | None = None

    def __init__(
        self,
        *,
        service: str,
        command: str | Sequence[str],
        release_id: str | None = None,
        environment: Mapping[str, str] | None = None,
        timeout: int = RUN_TIMEOUT,
        cpu: int | None = None,
        memory: int | None = None,
        gpu: int | None = None,
        cpu_limit: int | None = None,
        memory_limit: int | None = None,
        gpu_vendor: str | None = None,
        node_labels: Mapping[str, str] | None = None,
        use_service_volume: bool | None = None,
        entrypoint: bool = True,
        start_timeout: float = START_TIMEOUT,
        poll_interval: float = 1.0,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        task_id = kwargs.get("task_id")
        if isinstance(timeout, str):
            check_argument(self, "timeout", timeout, int, task_id=task_id)
        check_argument(self, "deferrable", deferrable, bool, task_id=task_id)
        check_argument(self, "entrypoint", entrypoint, bool, task_id=task_id)
        check_argument(self, "start_timeout", start_timeout, (int, float), task_id=task_id)
        for name, value in (("cpu", cpu), ("memory", memory), ("gpu", gpu)):
            check_argument(self, name, value, int, optional=True, task_id=task_id)
        for name, value in (("cpu_limit", cpu_limit), ("memory_limit", memory_limit)):
            check_argument(self, name, value, int, optional=True, task_id=task_id)
        check_argument(self, "gpu_vendor", gpu_vendor, str, optional=True, task_id=task_id)
        check_argument(self, "node_labels", node_labels, Mapping, optional=True, task_id=task_id)
        check_argument(
            self, "use_service_volume", use_service_volume, bool, optional=True, task_id=task_id
        )
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"timeout must be whole seconds, 1 or more: {timeout!r}")
        super().__init__(
            poll_interval=poll_interval, timeout=float(timeout), deferrable=False, **kwargs
        )
        if deferrable:
            _warn_at_dag_line(
                f"{type(self).__name__} {self.task_id!r} runs in the worker: a one-off "
                "command's output and exit code only come through a stream that cannot move to "
                "the triggerer"
            )
        self.service = service
        self.command = command
        self.release_id = release_id
        self.environment = environment
        self._mask_given()
        self.run_timeout = timeout
        self.start_timeout = float(start_timeout)
        self.sizing: dict[str, Any] = {
            "cpu": cpu,
            "memory": memory,
            "gpu": gpu,
            "cpu_limit": cpu_limit,
            "memory_limit": memory_limit,
            "gpu_vendor": gpu_vendor,
            "node_labels": node_labels,
            "use_service_volume": use_service_volume,
        }
        self.entrypoint = entrypoint

    def execute(self, context: Context) -> int:
        """Run the command; return its exit code (0), or raise for any other."""
        self._preflight(context)
        environment = self._environment("environment", context)
        release = self.release_id or None
        with self._client() as client:
            self._remove_previous_try(client, context)
            self.log.info(
                "Running %r in a new process of service %s of app %s (release %s)",
                self.command,
                self.service,
                self.app,
                release or "active",
            )
            with self._output() as on_output, self._outcomes():
                exit_code = client.processes.run_attached(
                    self.app,
                    self.service,
                    self.command,
                    release=release,
                    environment=environment,
                    timeout=self.run_timeout,
                    entrypoint=self.entrypoint,
                    on_output=on_output,
                    waiting=self._waiting(context, self.start_timeout),
                    **self.sizing,
                )
        context["ti"].xcom_push(key="exit_code", value=exit_code)
        if exit_code != 0:
            raise AirflowException(
                f"Command {self.command!r} in service {self.service} of app {self.app} exited "
                f"with code {exit_code}"
            )
        self.log.info("Command exited with code 0")
        return exit_code

    def _record(self, context: Context, event: WorkflowEvent) -> None:
        """Keep the pod's id (XCom ``process_id``, the task state store, ``on_kill``)."""
        from convox_provider.client.workflows import events  # noqa: PLC0415 - module doc

        super()._record(context, event)
        if isinstance(event, events.ProcessStarted):
            self._started_process = event.process_id
            self._push(context, "process_id", event.process_id)
            self._remember(context, "process_id", event.process_id)
        elif isinstance(event, events.ProcessDeleted):
            self._started_process = None

    def _remove_previous_try(self, client: ConvoxClient, context: Context) -> None:
        """Delete the pod a previous try of this task started, if the rack still has it."""
        previous = self._recall(context, "process_id")
        if previous is None or not client.processes.remove(self.app, previous):
            return
        self.log.warning(
            "Deleted process %s left by a previous try of this task (its command's outcome is "
            "unknown); running the command again",
            previous,
        )

    def on_kill(self) -> None:
        """Delete the pod this task started (best effort), which stops the command."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - module doc

        pid = self._started_process
        if pid is not None:
            try:
                with ConvoxHook(convox_conn_id=self.convox_conn_id) as hook:
                    hook.get_conn().processes.delete(self.app, pid)
                self.log.info("Deleted process %s of app %s", pid, self.app)
            except Exception as exc:
                self.log.warning("Could not delete process %s of app %s: %s", pid, self.app, exc)
        super().on_kill()
