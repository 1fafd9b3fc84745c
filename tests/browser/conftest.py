"""The servers and the browser the browser tests share: started once for the package (a 2-instance
cluster costs more to start than most of the tests themselves), stopped when it is done. Package
scope, not session: Playwright's sync API keeps an event loop running while its browser is open,
which the async tests after this package could not run beside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.cluster import Cluster
from tests.support.server import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="package", params=["embedded", "two-instances"])
def instances(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[list[ServerProcess]]:
    """The servers the pages use: the GM's page talks to the first, the player's to the last
    (test_web_tabletop restarts the last one and leaves it running). Once one embedded-mode
    server; once a 2-instance scale-out cluster (PostgreSQL + Redis), each player on a
    different instance."""
    from tests.browser.pages import free_port

    data = tmp_path_factory.mktemp(f"web-{request.param}")
    if request.param == "embedded":
        proc = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(data)}, name="web")
        proc.start()
        yield [proc]
        proc.stop()
        return
    cluster = Cluster(2, request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url"), data).start()
    yield cluster.servers
    cluster.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    from tests.browser.pages import CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()
