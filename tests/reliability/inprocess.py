"""Driving the product in-process: a synchronous stand-in for the queue, and a simulated crash.

A crash in-process raises :class:`SimulatedCrash` (a ``BaseException``, so no ``except Exception``
in the product swallows it) at an ``exports.crashpoints`` point, and the run's ``finally`` does
not release the lease (a killed process never gets there): the lease stays held until it lapses,
exactly as after SIGKILL. Open transactions roll back, as PostgreSQL does for a dead connection.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from importlib import import_module

from exports import crashpoints
from exports.services import start_flow


class SimulatedCrash(BaseException):
    """The worker process died here."""


def _raise(name: str) -> None:
    raise SimulatedCrash(name)


@contextmanager
def crash_at(point: str):
    """Within the block, the first time a run reaches ``point`` it dies there."""
    saved_env = os.environ.get(crashpoints.ENV)
    saved_die, saved_release = crashpoints._die, start_flow.lease_release
    crashpoints._hits.clear()
    os.environ[crashpoints.ENV] = point
    crashpoints._die = _raise
    start_flow.lease_release = lambda *args, **kwargs: None
    try:
        yield
    finally:
        crashpoints._die, start_flow.lease_release = saved_die, saved_release
        crashpoints._hits.clear()
        if saved_env is None:
            os.environ.pop(crashpoints.ENV, None)
        else:
            os.environ[crashpoints.ENV] = saved_env


# Keyword arguments of async_task that are django-q2's options, not the task's own.
Q_OPTIONS = frozenset(
    {
        "task_name",
        "group",
        "save",
        "hook",
        "timeout",
        "sync",
        "cached",
        "ack_failure",
        "broker",
        "q_options",
        "cluster",
    }
)


class SyncQueue:
    """Replaces ``django_q.tasks.async_task`` where the product enqueues: tasks wait here, in
    order, until :meth:`run_next` runs one in this process (as a worker would)."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, tuple, dict]] = []

    def async_task(self, func, *args, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in Q_OPTIONS}
        self.tasks.append((func, args, kwargs))
        return str(len(self.tasks))

    def run_next(self):
        func, args, kwargs = self.tasks.pop(0)
        module, _, name = func.rpartition(".")
        return getattr(import_module(module), name)(*args, **kwargs)

    def drain(self, limit: int = 50) -> int:
        ran = 0
        while self.tasks and ran < limit:
            self.run_next()
            ran += 1
        return ran
