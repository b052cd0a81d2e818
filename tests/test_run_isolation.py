"""Two test runs on one machine (a developer's and CI's, or two of either) share its Redis: each
run, and each of its pytest-xdist workers, has a worker queue of its own (``settings_test``), so
neither takes the other's tasks nor purges the other's queue (``product_env`` purges its own
before starting a worker); the product processes a test starts name the same queue as the test.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from pleo_integration.settings_test import per_run_queue_name, per_worker_redis_url, xdist_worker
from tests import processes

NAMES = (
    "import json, django; django.setup(); from django.conf import settings; "
    "from django_q.brokers import get_broker; from django_q.conf import Conf; "
    "broker = get_broker(); broker.purge_queue(); broker.enqueue('theirs'); "
    "print(json.dumps([Conf.CLUSTER_NAME, settings.REDIS_URL, broker.list_key]))"
)


def names_in_child(**env: str) -> tuple[str, str, str]:
    """The queue name, Redis URL and broker list key of a process loading the test settings
    with this process's environment (less ``PLEO_TEST_RUN_ID`` when ``env`` says so); it purges
    its queue and queues one task, as a test run starting a worker would."""
    without = ("PLEO_TEST_RUN_ID",) if env.pop("other_run", "") else ()
    child = processes.child_env(
        without=without, DJANGO_SETTINGS_MODULE="pleo_integration.settings_test", **env
    )
    result = processes.run([sys.executable, "-c", NAMES], child)
    assert result.returncode == 0, result.stderr[-3000:]
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def test_each_xdist_worker_has_its_own_redis_database():
    url = "redis://:pw@127.0.0.1:6379/13"
    assert per_worker_redis_url(url, 0, 2) == "redis://:pw@127.0.0.1:6379/13"
    assert per_worker_redis_url(url, 1, 2) == "redis://:pw@127.0.0.1:6379/14"
    assert per_worker_redis_url("redis://127.0.0.1:6379", 1, 2) == "redis://127.0.0.1:6379/1"
    assert per_worker_redis_url(url) == url  # outside xdist
    assert per_worker_redis_url("", 1, 2) == ""  # no Redis: the ORM broker


@pytest.mark.parametrize(("base", "workers"), [(15, 2), (14, 3), (13, 4)])
def test_a_base_database_leaving_no_room_for_every_worker_is_refused_naming_the_choice(
    base, workers
):
    for worker in range(workers):  # every worker alike, the first too
        with pytest.raises(ImproperlyConfigured) as refused:
            per_worker_redis_url(f"redis://127.0.0.1:6379/{base}", worker, workers)
        message = str(refused.value)
        assert f"database {base}" in message and "Redis has databases 0-15" in message
        assert f"at most {16 - workers} in REDIS_URL" in message
    last = per_worker_redis_url(f"redis://127.0.0.1:6379/{base - 1}", workers - 1, workers)
    assert last == "redis://127.0.0.1:6379/15"


def test_the_queue_name_is_the_runs_and_the_workers():
    names = {
        per_run_queue_name("pleo-export-bridge", run, worker, workers)
        for run in ("run-a", "run-b")
        for worker, workers in ((0, 1), (0, 2), (1, 2))
    }
    assert len(names) == 6
    assert per_run_queue_name("q", "abc", 1, 2) == "q-test-abc-gw1"
    assert per_run_queue_name("q", "abc", 0, 1) == "q-test-abc"


def test_this_process_runs_on_its_runs_and_workers_queue(settings):
    from django_q.conf import Conf

    worker, workers = xdist_worker()
    expected = per_run_queue_name(
        "pleo-export-bridge", os.environ["PLEO_TEST_RUN_ID"], *(worker, workers)
    )
    assert settings.Q_CLUSTER["name"] == Conf.CLUSTER_NAME == expected


@pytest.mark.redis
def test_another_run_on_the_same_redis_database_neither_takes_nor_purges_our_queue(redis_url):
    import redis
    from django_q.conf import Conf

    ours = f"django_q:{Conf.CLUSTER_NAME}:q"
    url = per_worker_redis_url(redis_url, *xdist_worker())  # as a worker this process starts
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    keys = [ours]
    client.delete(ours)
    client.rpush(ours, b"ours")
    try:
        # A product process of this run (a qcluster started with product_env) is on our queue:
        # its purge empties it, its task is there.
        name, child_url, key = names_in_child(REDIS_URL=redis_url)
        assert (name, child_url, key) == (Conf.CLUSTER_NAME, url, ours)
        assert client.lrange(ours, 0, -1) == [b"theirs"]

        # Another run's (its own PLEO_TEST_RUN_ID), same Redis database: purges and queues its own.
        client.delete(ours)
        client.rpush(ours, b"ours")
        name, child_url, key = names_in_child(REDIS_URL=redis_url, other_run="1")
        theirs = key
        keys.append(theirs)
        assert child_url == url and name != Conf.CLUSTER_NAME and theirs != ours
        assert client.lrange(ours, 0, -1) == [b"ours"]  # neither purged nor given their task
        assert client.lrange(theirs, 0, -1) == [b"theirs"]
    finally:
        client.delete(*keys)
