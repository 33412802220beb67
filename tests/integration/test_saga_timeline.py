"""A saga's timeline, opened in a real browser by the owner: each attempt a bar on one time
axis, by service, the compensations running back, each bar linked to its task in Flower.

Set SAGA_TIMELINE_SCREENSHOT=docs/saga-timeline.png to also write the README's picture.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from common.settings import get_settings
from tests.support.browser import chromium, needs_chromium, served
from tests.support.system import settled
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.slow  # a real worker with a fault


@pytest.fixture(scope="module")
def compensated(app, owner, tmp_path_factory) -> dict:
    """A create-order saga whose last step refused: its first two steps undone."""
    client = app.test_client()
    customer = signed_up(client)
    log = tmp_path_factory.mktemp("timeline") / "worker.log"
    worker = WorkerProcess(log, "timeline", env={"PETSTORE_FAULTS":
                                                 "inventory.reserve_stock=fail"}).start()
    try:
        pet = client.post("/v2/pet", json={"name": f"rex-{uuid.uuid4().hex[:8]}",
                                           "photoUrls": []}, headers=owner).json
        answer = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
        assert answer.status_code == 503 and answer.json["sagaStatus"] == "compensated"
        saga = client.get(f"/v2/sagas/{answer.json['sagaId']}", headers=owner).json
        eventually(lambda: settled(pets=[pet["id"]], sagas=[saga["id"]]))
        return {**saga, "worker": worker.name}
    finally:
        worker.stop()


def test_the_timeline_is_a_page_of_every_attempt_linked_to_flower(client, owner, compensated):
    answer = client.get(f"/v2/sagas/{compensated['id']}/timeline", headers=owner)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    page = answer.get_data(as_text=True)
    assert "<script" not in page and "<style" not in page
    flower = get_settings().flower_url
    for step in compensated["steps"]:
        assert f'href="{flower}/task/{step["taskId"]}"' in page
    labels = re.findall(r'<text [^>]*>(\w+ (?:do|undo) #\d+ \w+ on [^<]+)</text>', page)
    assert [label.split(" on ")[0] for label in labels] == [
        # By service, in the order the saga reached them; the compensations running back.
        "reserve_pet do #1 succeeded", "reserve_pet undo #1 succeeded",
        "place_order do #1 succeeded", "place_order undo #1 succeeded",
        "count_reservation do #1 refused"]
    assert all(f"on {compensated['worker']}, " in label for label in labels)


def test_another_customers_saga_has_no_timeline(client, compensated):
    stranger = signed_up(client)
    answer = client.get(f"/v2/sagas/{compensated['id']}/timeline", headers=stranger)
    assert answer.status_code == 404 and answer.json["code"] == 404


def signed_up(client) -> dict[str, str]:
    """Headers of a new customer."""
    name = f"timeline{uuid.uuid4().hex[:8]}"
    client.post("/v2/user", json={"username": name, "password": "secret-pass"})
    return {"api_key": client.get(f"/v2/user/login?username={name}&password=secret-pass").json}


@needs_chromium
def test_the_owner_logs_in_and_opens_the_timeline_in_a_browser(app, compensated, tmp_path):
    owner, password = get_settings().owner
    with served(app) as base:
        # The owner's browser logs in (the answer sets its cookie), then opens the page.
        chromium(f"{base}/v2/user/login?username={owner}&password={password}",
                 profile=tmp_path)
        screenshot = Path(os.environ.get("SAGA_TIMELINE_SCREENSHOT") or tmp_path / "t.png")
        url = f"{base}/v2/sagas/{compensated['id']}/timeline"
        dom, requested = chromium(url, "--dump-dom", profile=tmp_path)
        chromium(url, f"--screenshot={screenshot.resolve()}", "--window-size=1120,330",
                 "--hide-scrollbars", profile=tmp_path)
    assert requested == set()  # the page is whole: it loads nothing more
    assert dom.count("<rect ") == len(compensated["steps"])
    assert f"create_order saga {compensated['id']}: compensated" in dom
    assert screenshot.stat().st_size > 5_000  # drawn, not blank
