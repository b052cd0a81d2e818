"""System checks: refuse to run quietly with a django-q2 configuration that runs tasks twice."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def q_cluster_settings(app_configs, **kwargs):
    conf = settings.Q_CLUSTER
    problems = []
    timeout, retry = conf.get("timeout"), conf.get("retry", 60)
    if not timeout:
        problems.append(
            Warning(
                "Q_CLUSTER has no 'timeout': a stuck task would hold a worker forever.",
                id="exports.W001",
            )
        )
    elif retry <= timeout:
        problems.append(
            Warning(
                f"Q_CLUSTER 'retry' ({retry}s) is not above 'timeout' ({timeout}s): the broker "
                f"re-delivers a task that is still running, so one check runs twice.",
                hint="Set retry clearly above timeout (the default is timeout + 300 s).",
                id="exports.W002",
            )
        )
    if conf.get("catch_up", True):
        problems.append(
            Warning(
                "Q_CLUSTER 'catch_up' is on: after a scheduler outage every missed poll runs "
                "at once (a burst against Pleo's rate limit).",
                id="exports.W003",
            )
        )
    if not conf.get("max_attempts"):
        problems.append(
            Warning(
                "Q_CLUSTER 'max_attempts' is 0 (retry forever): a failing task loops.",
                id="exports.W004",
            )
        )
    return problems
