"""Airflow names the tests use that moved between Airflow 3.1 and 3.3, taken from where this
Airflow keeps them (the package's own imports follow the same rule, see ``operators/_base.py``).
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

from packaging.version import Version

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferred,
    )
else:
    try:
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSkipException,
            AirflowTaskTimeout,
            TaskDeferred,
        )
    except ImportError:  # Airflow 3.1: they live in core
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSkipException,
            AirflowTaskTimeout,
            TaskDeferred,
        )
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag

try:
    from airflow.sdk.exceptions import TaskAwaitingInput
except ImportError:  # before Airflow 3.3 a human-in-the-loop task defers instead

    class TaskAwaitingInput(BaseException):  # type: ignore[no-redef]
        """Never raised before Airflow 3.3 (a human-in-the-loop task defers instead)."""


__all__ = [
    "AIRFLOW_RELEASE",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "DagBag",
    "TaskAwaitingInput",
    "TaskDeferred",
]

#: The Airflow under test, e.g. (3, 3, 2).
AIRFLOW_RELEASE = Version(metadata.version("apache-airflow-core")).release
