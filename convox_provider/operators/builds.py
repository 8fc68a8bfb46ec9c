"""Build operators: ``ConvoxBuildOperator`` (``convox build``) and ``ConvoxDeployOperator``
(``convox deploy``: build, then promote)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from convox_provider.client.waiting import BUILD_TIMEOUT, ROLLOUT_TIMEOUT, WaitOptions
from convox_provider.operators._assets import DeploysApp
from convox_provider.operators._base import ConvoxBaseOperator, check_argument

if TYPE_CHECKING:
    from convox_provider.client.client import ConvoxClient
    from convox_provider.client.models import Build

__all__ = ["ConvoxBuildOperator", "ConvoxCopyBuildOperator", "ConvoxDeployOperator"]


class ConvoxBuildOperator(ConvoxBaseOperator):
    """Build a Convox app from a local directory, an uploaded object, or an exported build.

    Exactly one source: ``source_dir`` is packed as ``convox build`` does (``.dockerignore``
    honoured, streamed) and uploaded through the objects API; ``object_url`` is an ``object://``
    URL already uploaded (build pods cannot fetch ``https://``, docs/rack-api.md §4.3);
    ``import_archive`` is the path of a ``convox builds export`` archive, imported synchronously
    (nothing to wait for or defer). The build's output goes to the task log (to the triggerer's
    log when deferred), unless ``follow_logs=False``.

    XCom: ``build_id`` right after the build is created, ``release_id`` once it is complete.
    Returns the build id. A failed build raises ``AirflowFailException`` with the tail of its log.

    Durable (``durable=True``): a retried task re-attaches to the build its previous try
    started (still running: waited for; complete: used) instead of building again; only a
    failed build is built again (see :mod:`convox_provider.operators._base`). The build's
    description then ends with a marker ``[airflow-<hash>]`` naming the task instance.

    :param app: the Convox app.
    :param source_dir: directory to build (its ``convox.yml``, or ``manifest``).
    :param object_url: ``object://<app>/<key>`` URL of an uploaded source tarball.
    :param import_archive: path of a build export archive (``.tgz``) to import.
    :param description: the build's description.
    :param manifest: path of the manifest inside the source (default ``convox.yml``).
    :param build_args: Docker build arguments, a mapping or ``"KEY=VALUE"`` strings (values
        without commas, whitespace or quotes: the builder splits its command line).
    :param no_cache: build without the layer cache.
    :param development: a development build.
    :param git_sha: the commit the source comes from.
    :param wait_for_completion: wait for the build to end; otherwise return once it started.
    :param poll_interval: seconds between build status polls.
    :param timeout: seconds to wait for the build at most.
    :param follow_logs: copy the build's output to the log while waiting. ``False`` only polls
        the build's status: no log WebSocket per waiting build, the choice for hundreds of
        concurrent deferred builds. A failed build's tail is reported either way.
    :param deferrable: wait on the triggerer (default ``[operators] default_deferrable``).
    :param durable: re-attach to the previous try's build on a retry.
    :param convox_conn_id: the Airflow connection of the rack.
    """

    template_fields = (
        "convox_conn_id",
        "app",
        "source_dir",
        "object_url",
        "import_archive",
        "description",
        "manifest",
        "build_args",
        "git_sha",
    )
    ui_color = "#c9e7f7"

    default_timeout = BUILD_TIMEOUT

    def __init__(
        self,
        *,
        source_dir: str | os.PathLike[str] | None = None,
        object_url: str | None = None,
        import_archive: str | os.PathLike[str] | None = None,
        description: str | None = None,
        manifest: str | None = None,
        build_args: Mapping[str, str] | Iterable[str] | None = None,
        no_cache: bool | None = None,
        development: bool | None = None,
        git_sha: str | None = None,
        follow_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_argument(self, "no_cache", no_cache, bool, optional=True)
        check_argument(self, "development", development, bool, optional=True)
        check_argument(self, "follow_logs", follow_logs, bool)
        self.follow_logs = follow_logs
        sources = {
            "source_dir": source_dir,
            "object_url": object_url,
            "import_archive": import_archive,
        }
        given = [name for name, value in sources.items() if value is not None]
        if len(given) != 1:
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r} needs exactly one of source_dir, "
                f"object_url or import_archive; got {', '.join(given) or 'none'}"
            )
        self.source_dir = source_dir
        self.object_url = object_url
        self.import_archive = import_archive
        self.description = description
        self.manifest = manifest
        self.build_args = build_args
        self.no_cache = no_cache
        self.development = development
        self.git_sha = git_sha
        ignored = [name for name, value in self._build_options().items() if value is not None]
        if import_archive is not None and ignored:
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r}: an imported build keeps the options it "
                f"was built with; {', '.join(ignored)} cannot be used with import_archive"
            )

    def _build_options(self) -> dict[str, Any]:
        """The build-create options (as rendered when the task runs)."""
        return {
            "description": self.description,
            "manifest": self.manifest,
            "build_args": self.build_args,
            "no_cache": self.no_cache,
            "development": self.development,
            "git_sha": self.git_sha,
        }

    def execute(self, context: Context) -> str:
        """Build; return the build id."""
        self._preflight(context)
        build = self._build(context, wait=self.wait_for_completion, resume="execute_complete")
        return build.id

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the build trigger: the build id, or raise for any other outcome."""
        done = self._check_event(event, "build_id")
        self._push(context, "release_id", done["release_id"])
        return str(done["build_id"])

    def _build(self, context: Context, *, wait: bool, resume: str) -> Build:
        """Start the build and, with ``wait``, see it end: here, or deferred to ``resume``.

        Deferrable: one status check after the create; an ended build is settled here (its
        stored log read) instead of deferring.
        """
        from convox_provider.triggers.builds import ConvoxBuildTrigger  # noqa: PLC0415

        waiting = self._waiting(context, self.timeout)
        defer = wait and self.deferrable
        with self._client() as client, self._output() as on_output, self._outcomes():
            if self.import_archive is not None:
                if self.deferrable:
                    self.log.info("A build import is synchronous: nothing to defer")
                build = client.builds.import_build(self.app, self.import_archive)
                self._push(context, "build_id", build.id)
            elif (previous := self._previous_build(context, client)) is not None:
                build = previous
            else:
                build = self._start(context, client, wait and not defer, on_output, waiting)
            if wait and not build.build_status.is_terminal:
                if defer:
                    build = client.builds.get(self.app, build.id)
                if defer and not build.build_status.is_terminal:
                    trigger = ConvoxBuildTrigger(
                        convox_conn_id=self.convox_conn_id,
                        app=self.app,
                        build_id=build.id,
                        end_time=time.time() + self.timeout,
                        poll_interval=waiting.poll_interval,
                        max_errors=waiting.max_errors,
                        follow_logs=self.follow_logs,
                        actor=self.hook.task_actor(),
                    )
                    self._defer(trigger, resume)
                build = client.builds.wait_for_build(
                    self.app,
                    build.id,
                    follow_logs=self.follow_logs,
                    on_output=on_output,
                    waiting=waiting,
                )
        if build.build_status.is_success:
            self._push(context, "release_id", build.release)
        return build

    def _previous_build(self, context: Context, client: ConvoxClient) -> Build | None:
        """The build a previous try of this task instance started, if it can still be used
        (``client.builds.resumable``: complete, or active with a live build pod); else None,
        and a new build is made."""
        build_id = self._recall(context, "build_id")
        marker = self._retry_marker(context)
        if build_id is None and marker is None:
            return None
        build = client.builds.resumable(
            self.app, build_id=build_id, marker=marker, on_event=self._progress(context)
        )
        if build is not None:
            self.log.info(
                "Re-attaching to build %s of app %s (%s)", build.id, self.app, build.status
            )
            self._started_build = build.id
            self._push(context, "build_id", build.id)
        return build

    def _start(
        self,
        context: Context,
        client: ConvoxClient,
        wait: bool,
        on_output: Callable[[bytes], None],
        waiting: WaitOptions,
    ) -> Build:
        """Create the build from the directory or the object URL, following it with ``wait``."""
        options: dict[str, Any] = self._build_options()
        marker = self._retry_marker(context)
        if marker is not None:
            options["description"] = f"{options['description'] or ''} [{marker}]".lstrip()
        options = {
            **options,
            "wait": wait,
            "follow_logs": self.follow_logs,
            "on_output": on_output,
            "waiting": waiting,
        }
        if self.source_dir is not None:
            return client.builds.build_from_directory(self.app, self.source_dir, **options)
        assert self.object_url is not None  # exactly one source, checked in __init__
        return client.builds.build_from_object(self.app, self.object_url, **options)


class ConvoxDeployOperator(DeploysApp, ConvoxBuildOperator):
    """Build, then promote the new release and wait for its rollout: what ``convox deploy`` does.

    Takes every argument of :class:`ConvoxBuildOperator`. The build is always waited for (a
    release is needed to promote); ``wait_for_completion`` and ``deferrable`` apply to it as
    well as to the rollout: deferred, the task waits on the triggerer for the build, comes back
    to promote, and waits on the triggerer again for the rollout. A rolled-back rollout raises
    ``AirflowFailException`` naming the release the app is back on.

    XCom: ``build_id`` (at create), ``release_id`` (once the build is complete, before the
    promote). Returns the release id.

    :param force: promote even while another rollout is in progress (otherwise wait for the
        app to be ``running`` first, as the CLI does).
    :param promote_timeout: seconds to wait for the rollout at most (``timeout`` is the build's).
    :param wait_for_completion: wait for the rollout to end; the build is waited for anyway.
    """

    _waits_when_not_completing = True

    def __init__(
        self,
        *,
        force: bool = False,
        promote_timeout: float = ROLLOUT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_argument(self, "force", force, bool)
        check_argument(self, "promote_timeout", promote_timeout, (int, float))
        if not promote_timeout >= 0:
            raise ValueError(f"promote_timeout must be seconds, 0 or more: {promote_timeout}")
        self.force = force
        self.promote_timeout = float(promote_timeout)

    def execute(self, context: Context) -> str:
        """Build, promote, wait; return the release id."""
        self._preflight(context)
        build = self._build(context, wait=True, resume="build_complete")
        return self._promote(context, build.release)

    def build_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the build trigger: promote the new release (and defer again)."""
        done = self._check_event(event, "release_id")
        self._push(context, "release_id", done["release_id"])
        return self._promote(context, str(done["release_id"]))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the rollout trigger: the release id, or raise for any other outcome."""
        return str(self._check_event(event, "release_id")["release_id"])

    def _promote(self, context: Context, release_id: str) -> str:
        with self._client() as client:
            return self._promote_or_attach(
                context, client, release_id, force=self.force, timeout=self.promote_timeout
            )


class ConvoxCopyBuildOperator(DeploysApp):
    """Copy a complete build from one rack to another (``convox builds export | convox builds
    import``, streamed: no temporary file), optionally promoting it on the target.

    The export is relayed into the target rack's import as it arrives; an export cut short is
    never imported as a complete build. The import answers once the images are pushed, but the
    rack discards push errors (docs/rack-api.md §4.3): the target build's manifest and release
    are checked against the source's, and the log says that the images could not be.

    XCom: ``build_id`` and ``release_id`` of the target build (before any wait). Returns the
    target build id. With ``promote``, the release is promoted on the target and waited for
    like :class:`~convox_provider.operators.releases.ConvoxPromoteReleaseOperator` (deferrable).

    Durable: the imported build's description carries a ``[convox-copy:…]`` marker, and a
    retried task finds that build instead of importing again.

    :param source_conn_id: the Airflow connection of the source rack.
    :param source_app: the app the build belongs to.
    :param build_id: the complete build to copy.
    :param target_conn_id: the Airflow connection of the target rack.
    :param target_app: the app to import into (default ``source_app``); it must exist.
    :param promote: promote the copied release on the target and wait for its rollout.
    :param copy_timeout: seconds the copy may take.
    """

    template_fields = (
        "source_conn_id",
        "source_app",
        "build_id",
        "target_conn_id",
        "target_app",
    )
    ui_color = "#c9e7f7"

    def __init__(
        self,
        *,
        source_conn_id: str,
        source_app: str,
        build_id: str,
        target_conn_id: str,
        target_app: str | None = None,
        promote: bool = False,
        copy_timeout: float = 2 * 3600.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("convox_conn_id", target_conn_id)
        super().__init__(app=target_app or source_app, **kwargs)
        self.source_conn_id = source_conn_id
        self.source_app = source_app
        self.build_id = build_id
        self.target_conn_id = target_conn_id
        self.target_app = target_app or source_app
        self.promote = promote
        self.copy_timeout = copy_timeout

    def execute(self, context: Context) -> str:
        """Copy; push the target ids; promote and wait when asked. Return the target build id."""
        from convox_provider.hooks.convox import ConvoxHook  # noqa: PLC0415 - module doc

        self.app = self.target_app
        self.convox_conn_id = self.target_conn_id
        with (
            ConvoxHook(convox_conn_id=self.source_conn_id) as source_hook,
            self._client() as target,
        ):
            source = source_hook.get_conn()
            copied = source.builds.copy(
                self.source_app,
                self.build_id,
                to=target,
                target_app=self.target_app,
                timeout=self.copy_timeout,
                on_event=self._progress(context),
            )
            self._push(context, "build_id", copied.build_id)
            self._push(context, "release_id", copied.release_id)
            self._remember(context, "release_id", copied.release_id)
            if self.promote:
                self._promote_or_attach(
                    context, target, copied.release_id, force=False, timeout=self.timeout
                )
        return copied.build_id

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the rollout trigger on the target: the target build id."""
        self._check_event(event, "release_id")
        return str(context["ti"].xcom_pull(task_ids=self.task_id, key="build_id"))
