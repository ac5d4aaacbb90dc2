"""The dashboard: its API guards, and the page in headless Chromium against `wascc up`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wascc import Host
from wascc.observe import Recorder
from wascc.observe.dashboard import Dashboard
from wascc.observe.server import Request

TOKEN = "test-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- the action guards, in-process -------------------------------------------------------


@pytest.fixture
def board(host: Host) -> Iterator[Dashboard]:
    ran: list[bytes] = []

    def act(line: bytes) -> bytes:
        ran.append(line)
        return b'{"ok": true}\n'

    with Recorder(host) as recorder:
        dashboard = Dashboard(host, recorder, labels=dict, act=act, token=TOKEN)
        dashboard.serve_at("127.0.0.1", 8090)
        dashboard.ran = ran  # type: ignore[attr-defined]
        yield dashboard


def _post(
    headers: dict[str, str], body: bytes = b'{"command": "stop-actor", "actor": "x"}'
) -> Request:
    base = {"host": "127.0.0.1:8090", "content-type": "application/json", "x-wascc-token": TOKEN}
    merged = {k: v for k, v in {**base, **headers}.items() if v is not None}
    return Request("POST", "/api/action", "", merged, body)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"origin": "http://127.0.0.1:8090"}, 200),
        ({"host": "localhost:8090", "origin": "http://localhost:8090"}, 200),
        ({"x-wascc-token": ""}, 401),
        ({"x-wascc-token": "wrong"}, 401),
        ({"content-type": "text/plain"}, 403),
        ({"content-type": "application/x-www-form-urlencoded"}, 403),
        ({"origin": "http://evil.example"}, 403),
        ({"host": "evil.example:8090"}, 403),  # DNS rebinding
    ],
)
def test_actions_need_the_token_json_and_this_origin(
    board: Dashboard, headers: dict[str, str], status: int
) -> None:
    response = board.action(_post(headers))
    assert response.status == status, response.body
    assert bool(board.ran) is (status == 200)  # type: ignore[attr-defined]


def test_only_dashboard_actions_pass(board: Dashboard) -> None:
    response = board.action(_post({}, b'{"command": "call", "actor": "x", "operation": "Echo"}'))
    assert response.status == 400 and b"command must be one of" in response.body
    assert board.action(_post({}, b"not json")).status == 400
    assert board.action(Request("GET", "/api/action", "", {}, b"")).status == 405


def test_the_page_forbids_everything_it_does_not_need(board: Dashboard) -> None:
    response = board.page(Request("GET", "/", "", {}, b""))
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert b"http://" not in response.body.replace(b"http://www.w3.org/2000/svg", b"")


# ---- the page in headless Chromium, against the demo under `wascc up` -----------------------


@pytest.fixture
def demo_host(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port, board_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "WASCC_DEMO_DIR": str(tmp_path / "keys"),
        "WASCC_DEMO_PORT": str(port),
        "WASCC_DASHBOARD_TOKEN": TOKEN,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wascc",
            "up",
            "--health-interval",
            "0",
            "--no-control",
            "--dashboard",
            f"127.0.0.1:{board_port}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not any("stop it with Ctrl-C" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                process.wait(30)
                raise AssertionError(f"exit {process.returncode}: {process.communicate()[1]}")
            lines.append(line)
        printed = "".join(lines)
        assert f"dashboard  http://127.0.0.1:{board_port}/" in printed
        assert f"token      {TOKEN}" in printed
        yield {"port": port, "board": f"http://127.0.0.1:{board_port}"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.fail("chromium and chromium-driver are needed (bash .ci/system-deps installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.1)


def _calls(driver: Any, name: str) -> int:
    return int(
        driver.execute_script(
            "const r = document.querySelector(`#actors tr[data-name='${arguments[0]}'] td.calls`);"
            "return r ? r.textContent : '-1';",
            name,
        )
    )


def test_dashboard_in_headless_chromium(
    demo_host: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(demo_host["board"] + "/")
    _wait(lambda: browser.find_element(By.ID, "status").text == "live")
    rows = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#actors tbody tr"))
    assert sorted(r.get_attribute("data-name") for r in rows) == ["echo", "kvcounter"]
    edges = browser.find_elements(By.CSS_SELECTOR, "#graph path.edge")
    bound = sorted(
        (e.get_attribute("data-actor"), e.get_attribute("data-capability")) for e in edges
    )
    assert bound == [
        ("echo", "wascc:http_server"),
        ("kvcounter", "wascc:http_server"),
        ("kvcounter", "wascc:keyvalue"),
    ]
    assert "wascc:keyvalue" in browser.find_element(By.ID, "providers").text

    # the calls counter rises while a client calls
    before = _calls(browser, "kvcounter")
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            with urllib.request.urlopen(f"http://127.0.0.1:{demo_host['port'] + 1}/visits") as r:
                r.read()
            time.sleep(0.02)

    caller = threading.Thread(target=client)
    caller.start()
    try:
        _wait(lambda: _calls(browser, "kvcounter") >= before + 20)
        _wait(lambda: float(_rate(browser, "kvcounter")) > 0)
        browser.save_screenshot(str(tmp_path / "dashboard-busy.png"))
    finally:
        stop.set()
        caller.join()

    # an action without the token is refused, shown on the page
    _unbind_from_page(browser)
    result = _wait(lambda: browser.find_element(By.ID, "act-result").text.startswith("refused"))
    assert result
    assert "401" in browser.find_element(By.ID, "act-result").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph path.edge")) == 3

    # ...and works with it
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    _unbind_from_page(browser)
    _wait(lambda: browser.find_element(By.ID, "act-result").text == "done: unbind")
    _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#graph path.edge")) == 2)
    browser.save_screenshot(str(tmp_path / "dashboard-after-unbind.png"))

    # a cross-site request with the right token is still refused
    request = urllib.request.Request(
        demo_host["board"] + "/api/action",
        data=json.dumps({"command": "stop-actor", "actor": "echo"}).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Wascc-Token": TOKEN,
            "Origin": "http://evil.example",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403

    errors = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "/api/action" not in entry["message"]
    ]
    assert errors == []  # the refused action's 401 is the only error the console saw
    shots = os.environ.get("WASCC_SCREENSHOT_DIR")
    if shots:
        shutil.copy(tmp_path / "dashboard-busy.png", Path(shots) / "dashboard.png")


def _rate(driver: Any, name: str) -> str:
    return str(
        driver.execute_script(
            "const r = document.querySelector(`#actors tr[data-name='${arguments[0]}']`);"
            "return r ? r.children[5].textContent : '0';",
            name,
        )
    )


def _unbind_from_page(driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "act-command")).select_by_value("unbind")
    Select(driver.find_element(By.ID, "act-actor")).select_by_visible_text("kvcounter")
    capability = driver.find_element(By.ID, "act-capability")
    capability.clear()
    capability.send_keys("wascc:keyvalue")
    driver.find_element(By.ID, "act-run").click()
