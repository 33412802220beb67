"""The chaos suite's hosts (bench/hosts.py): each reaches the servers only over its links,
under its own hostname, loses one server when that link is cut and gets it back when it is
mended, and nothing of them is left when they stop. Skipped, saying why, where network
namespaces cannot be made."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.hosts import Hosts, server_address
from tests.support.waiting import eventually

UNAVAILABLE = Hosts.unavailable()
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"no hosts here: {UNAVAILABLE}")

# Asks the database and Redis over the URLs it is given; prints what answered.
PROBE = """
import sys, psycopg, redis
try:
    with psycopg.connect(sys.argv[1], connect_timeout=2) as c:
        print("postgres", c.execute("SELECT 1").fetchone()[0])
except psycopg.OperationalError:
    print("postgres cut")
print("redis", redis.Redis.from_url(sys.argv[2], socket_timeout=2).ping())
"""


def test_hosts_reach_the_servers_over_links_that_can_be_cut():
    database, broker = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    hosts = Hosts(2, {"postgres": server_address(database), "broker": server_address(broker)})
    with hosts:

        def probe(host: int) -> str:
            return subprocess.run(
                hosts.command(host, [sys.executable, "-c", PROBE,
                                     hosts.url(host, "postgres", database),
                                     hosts.url(host, "broker", broker)]),
                capture_output=True, text=True, timeout=60).stdout

        assert probe(1) == "postgres 1\nredis True\n"
        hosts.cut(1, "postgres")
        assert probe(1) == "postgres cut\nredis True\n"  # the broker's link still works
        assert probe(0) == "postgres 1\nredis True\n"  # and the other host's
        hosts.mend(1, "postgres")  # back once the link's neighbours find each other again
        eventually(lambda: probe(1) == "postgres 1\nredis True\n")
        named = subprocess.run(hosts.command(1, ["hostname"]), capture_output=True,
                               text=True, check=True).stdout
        assert named == "host2\n"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert hosts.name(0) not in namespaces and hosts.name(1) not in namespaces
