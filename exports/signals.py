"""Worker start-up: heartbeat and an immediate recovery sweep (no waiting for the scheduler)."""

import logging

from django.db import close_old_connections
from django.dispatch import receiver
from django_q.signals import post_spawn

logger = logging.getLogger(__name__)


@receiver(post_spawn)
def on_worker_spawn(sender, proc_name, **kwargs):
    from exports.services import heartbeat
    from exports.services.sweep import sweep_stale_leases

    try:
        close_old_connections()
        heartbeat.beat()
        sweep_stale_leases()
    except Exception:
        logger.exception("Start-up sweep failed; the maintenance schedule will retry it")
