"""Worker start-up: heartbeat, an immediate recovery sweep, and a periodic one in every worker.

A run killed with its lease held can only be resumed once the lease lapses. The sweep at spawn
usually comes too early for that (a restarted worker is up in a second, the lease lasts
``COMPANY_LEASE_SECONDS``), and the maintenance schedule only fires on the scheduler's cycle (30 s)
and at its own interval (one minute). So every worker process also sweeps every
``RECOVERY_SWEEP_SECONDS`` from a daemon thread: recovery follows the lease's lapse within that
interval, scheduler or not. The enqueue is coalesced per company, so several sweeping workers
queue one check.
"""

import logging
import os
import threading

from django.conf import settings
from django.db import close_old_connections, connections
from django.dispatch import receiver
from django_q.signals import post_spawn

logger = logging.getLogger(__name__)

_sweeper_pid: int | None = None


def _sweep_once() -> None:
    from exports.services.sweep import leases_sweep_stale

    close_old_connections()
    leases_sweep_stale()


def _sweep_forever(interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            _sweep_once()
        except Exception:
            logger.exception("Periodic recovery sweep failed; trying again in %.0f s", interval)
        finally:
            connections.close_all()  # this thread's own connections


def start_periodic_sweep(stop: threading.Event | None = None) -> threading.Thread | None:
    """Start this process's sweeping thread (once per process); None when switched off."""
    global _sweeper_pid
    interval = float(settings.RECOVERY_SWEEP_SECONDS)
    if interval <= 0 or _sweeper_pid == os.getpid():
        return None
    _sweeper_pid = os.getpid()
    thread = threading.Thread(
        target=_sweep_forever,
        args=(interval, stop or threading.Event()),
        name="pleo-recovery-sweep",
        daemon=True,
    )
    thread.start()
    return thread


@receiver(post_spawn)
def on_worker_spawn(sender, proc_name, **kwargs):
    from exports.services import heartbeat

    try:
        close_old_connections()
        heartbeat.heartbeat_beat()
        _sweep_once()
    except Exception:
        logger.exception("Start-up sweep failed; the periodic sweep will retry it")
    start_periodic_sweep()
