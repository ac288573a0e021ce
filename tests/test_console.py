"""The web console at ``/console``, end to end: a real ``botwire serve`` with tokens (on SQLite
and on PostgreSQL) and a real headless Chromium (Debian's ``chromium``) driven by Playwright.

The tests save screenshots of the main views under ``build/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from botwire import Memory
from botwire.backends import create_backend
from botwire.server.auth import create_token

from .conftest import store_url
from .helpers import Server, run_python

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
CHROMIUM = os.environ.get("BOTWIRE_CHROMIUM", "/usr/bin/chromium")
XSS = ["<script>window.__pwned = 1</script>", '<img src=x onerror="window.__pwned = 1">']


# -- the browser and the server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package (Playwright's own download is not reachable),
    for this module only: Playwright's sync API holds an event loop while it runs, which other
    modules' ``asyncio.run`` must not meet.

    Where it is missing, the browser tests skip, unless ``BOTWIRE_REQUIRE_BROWSER=1`` (as in
    CI, which installs it), where they fail."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set BOTWIRE_CHROMIUM)"
        if os.environ.get("BOTWIRE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        yield chromium
        chromium.close()


class Console:
    """A server with three tokens: admin, read-only, and a writer scoped to ``team-a:``."""

    def __init__(self, server: Server, tokens: dict[str, str]) -> None:
        self.server = server
        self.url = server.url
        self.tokens = tokens

    def memory(self, ns: str, token: str = "admin") -> Memory:
        return Memory(ns, self.url, token=self.tokens[token])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    urls = store_url(request.param, tmp_path_factory.mktemp("console"), request)
    db = next(urls)
    backend = create_backend(db)
    tokens = {
        "admin": create_token(backend, "admin", ["*"], admin=True),
        "reader": create_token(backend, "reader", ["*"], read_only=True),
        "team": create_token(backend, "team-writer", ["team-a:"]),
    }
    backend.close()
    with Server(db) as server:
        yield Console(server, tokens)
    next(urls, None)  # drops the PostgreSQL schema


@pytest.fixture
def ns() -> str:
    """A namespace of the test's own (the server is shared by the module)."""
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    yield page
    context.close()
    assert not errors, errors


def sign_in(page: Any, console: Console, who: str = "admin", path: str = "/console") -> Any:
    page.goto(console.url + path)
    page.fill("#token", console.tokens[who])
    page.press("#token", "Enter")
    page.wait_for_selector("#nav:not([hidden])")
    return page


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def key_row(page: Any, key: str) -> Any:
    return page.locator(f'#key-list .item[data-key="{key}"]')


# -- served safely ----------------------------------------------------------------------------


def test_console_and_docs_are_served_from_the_package_with_a_strict_policy(
    console: Console,
) -> None:
    home = httpx.get(console.url + "/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/console"
    page = httpx.get(console.url + "/console?ns=x")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert page.headers["x-frame-options"] == "DENY"
    # no inline script, nothing from another host
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    for asset in ("console.js", "console.css", "favicon.svg", "docs.js"):
        answer = httpx.get(f"{console.url}/console/{asset}")
        assert answer.status_code == 200 and "content-security-policy" in answer.headers
    assert httpx.get(console.url + "/console/..%2Fapp.py").status_code == 404
    assert httpx.get(console.url + "/console/nothing.js").status_code == 404
    docs = httpx.get(console.url + "/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert not re.search(r"(src|href)=\"(https?:)?//", docs.text)
    assert not re.search(r"<script(?![^>]*\bsrc=)", docs.text)
    assert httpx.get(console.url + "/docs/assets/swagger-ui-bundle.js").status_code == 200
    # the API's answers go out as they were
    assert "content-security-policy" not in httpx.get(console.url + "/healthz").headers


def test_namespace_sizes_are_numbers_on_every_store(console: Console, ns: str) -> None:
    console.memory(ns).set_many({"a": "xyz", "b": [1, 2]})
    headers = {"authorization": f"Bearer {console.tokens['admin']}"}
    found = httpx.get(console.url + "/v1/namespaces", params={"prefix": ns}, headers=headers)
    assert found.json() == {
        "namespaces": [{"namespace": ns, "keys": 2, "bytes": 10, "writes_today": 0}]
    }
    ops = {"ops": [{"op": "list_namespaces", "prefix": ns, "sizes": True}]}
    answer = httpx.post(console.url + "/v1/batch", json=ops, headers=headers)
    assert answer.status_code == 200 and answer.json()["results"] == [[[ns, 2, 10, 0]]]


def test_docs_render_offline_in_the_browser(console: Console, page: Any) -> None:
    outside: list[str] = []
    page.on(
        "request", lambda r: outside.append(r.url) if not r.url.startswith(console.url) else None
    )
    page.goto(console.url + "/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() > 10
    assert outside == []


def test_a_wrong_token_is_refused_and_the_token_stays_out_of_urls(
    console: Console, page: Any
) -> None:
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(console.url + "/console")
    page.fill("#token", "bw_not-a-token")
    page.press("#token", "Enter")
    page.wait_for_selector("text=That token was not accepted")
    sign_in(page, console)
    assert not any(console.tokens["admin"] in url for url in urls)
    assert page.evaluate("sessionStorage.length") == 1  # kept for the tab only
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
    page.click("#sign-out")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("sessionStorage.length") == 0
    assert console.server.log is not None
    assert console.tokens["admin"] not in Path(console.server.log).read_text()  # nor in logs


# -- browse -----------------------------------------------------------------------------------


def test_browse_namespaces_keys_and_a_value(console: Console, page: Any, ns: str) -> None:
    mem = console.memory(ns)
    mem.set("prefs", {"lang": "en", "ratio": 1.0, "big": 12345678901234567890})
    mem.set("b-older", "x")
    mem.set("z-newest", [1, 2, 3], ttl=3600)
    sign_in(page, console)
    row = page.locator("#ns-list button", has_text=ns)
    assert "3 keys" in row.inner_text()
    row.click()
    page.wait_for_selector('#key-list .item[data-key="z-newest"]')
    names = page.locator("#key-list .item .name").all_inner_texts()
    assert names == ["b-older", "prefs", "z-newest"]
    page.select_option("#key-sort", "updated")
    expect(page.locator("#key-list .item .name").first).to_have_text("z-newest")
    page.fill("#key-prefix", "pr")
    expect(page.locator("#key-list .item")).to_have_count(1)
    key_row(page, "prefs").click()
    page.wait_for_selector("#detail:not([hidden])")
    shown = page.inner_text("#value")
    assert '"ratio": 1.0' in shown and "12345678901234567890" in shown  # exactly as stored
    assert "Version" in page.inner_text("#meta")
    assert f"ns={ns}" in page.url and "key=prefs" in page.url
    shot(page, "browse")
    # a deep link opens the key at once, in a tab that signs in
    other = page.context.new_page()
    sign_in(other, console, path=f"/console?ns={ns}&key=z-newest")
    other.wait_for_selector("#detail:not([hidden])")
    assert "in 3" in other.inner_text("#meta")  # its TTL: expires in 35xx s
    assert other.inner_text("#detail-title") == "z-newest"


def test_a_chat_history_reads_as_a_conversation(console: Console, page: Any, ns: str) -> None:
    mem = console.memory(ns)
    mem.append("chat:42", {"role": "user", "content": "Plan a trip to Lisbon"})
    mem.append("chat:42", {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}}]})  # fmt: skip
    mem.append("chat:42", {"role": "tool", "tool_call_id": "call_1", "content": "21 C, sunny"})
    mem.append(
        "chat:42", {"type": "ai", "data": {"content": [{"type": "text", "text": "Pack light."}]}}
    )
    sign_in(page, console, path=f"/console?ns={ns}&key=chat:42")
    page.wait_for_selector("#chat:not([hidden])")
    cards = page.locator(".msg-card")
    assert cards.count() == 4
    texts = cards.all_text_contents()
    assert texts[0].startswith("user") and "Plan a trip to Lisbon" in texts[0]
    assert "calls weather" in texts[1] and "Lisbon" in texts[1]
    assert "result of call_1" in texts[2] and "21 C, sunny" in texts[2]
    assert texts[3].startswith("ai") and "Pack light." in texts[3]
    shot(page, "chat")


def test_ten_thousand_keys_and_a_ten_thousand_message_chat_open_without_freezing(
    console: Console, page: Any, ns: str
) -> None:
    mem = console.memory(ns)
    for start in range(0, 10_000, 1000):
        mem.set_many({f"key:{n:05}": {"n": n} for n in range(start, start + 1000)})
    chat = [
        {"role": "user" if n % 2 else "assistant", "content": f"message {n}"} for n in range(10_000)
    ]
    mem.set("chat", chat)
    sign_in(page, console)
    started = time.monotonic()
    page.locator("#ns-list button", has_text=ns).click()
    page.wait_for_selector('#key-list .item[data-key="key:00000"]')
    assert time.monotonic() - started < 5
    assert page.locator("#key-list .item").count() < 100  # a window, not 10,000 rows
    box = page.locator("#key-list")
    for _ in range(40):  # scroll to the end: the pages load as it goes
        box.evaluate("b => { b.scrollTop = b.scrollHeight; }")
        page.wait_for_timeout(100)
        if page.inner_text("#keys-count") == "10001 keys":
            break
    assert page.inner_text("#keys-count") == "10001 keys"
    page.wait_for_selector('#key-list .item[data-key="key:09999"]')
    started = time.monotonic()
    page.goto(f"{console.url}/console?ns={ns}&key=chat")
    page.wait_for_selector("text=10000 messages, the last 200 shown")
    assert time.monotonic() - started < 5
    assert page.locator(".msg-card").count() == 200
    assert page.locator(".msg-card").last.inner_text().endswith("message 9999")
    page.click("text=Show 200 earlier")
    assert page.locator(".msg-card").count() == 400
    # still answers at once
    assert page.evaluate("1 + 1") == 2


def test_keyboard_alone(console: Console, page: Any, ns: str) -> None:
    console.memory(ns).set_many({"alpha": 1, "beta": 2, "gamma": 3})
    page.goto(f"{console.url}/console?ns={ns}")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "token"  # the first thing to do
    page.keyboard.type(console.tokens["admin"])
    page.keyboard.press("Enter")
    page.wait_for_selector('#key-list .item[data-key="alpha"]')
    page.focus("#key-list")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.inner_text("#detail-title") == "beta"
    page.focus("#tab-value")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-edit"
    assert page.is_visible("#editor")


def test_phone_width_shows_one_pane_at_a_time(console: Console, browser: Any, ns: str) -> None:
    console.memory(ns).set("note", "hello")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, console)
    assert page.is_visible("#ns-pane") and not page.is_visible("#keys-pane")
    page.locator("#ns-list button", has_text=ns).click()
    page.wait_for_selector('#key-list .item[data-key="note"]')
    assert not page.is_visible("#ns-pane")
    key_row(page, "note").click()
    page.wait_for_selector("#detail:not([hidden])")
    assert not page.is_visible("#keys-pane") and page.is_visible("#detail-pane")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "phone")
    page.click("#detail-pane .back")
    page.wait_for_selector("#keys-pane", state="visible")
    context.close()


def test_a_namespace_opened_while_another_still_loads_shows_its_own_keys(
    console: Console, page: Any, ns: str
) -> None:
    console.memory(ns + "-a").set("from-a", 1)
    console.memory(ns + "-b").set("from-b", 1)
    sign_in(page, console)
    held: list[Any] = []
    page.route(f"**/memory/{ns}-a?*", lambda route: held.append(route))
    page.locator("#ns-list button", has_text=ns + "-a").click()
    page.wait_for_timeout(200)
    assert len(held) == 1  # a's keys are still on their way
    page.locator("#ns-list button", has_text=ns + "-b").click()
    key_row(page, "from-b").wait_for()
    held[0].continue_()
    page.wait_for_timeout(300)
    assert page.locator("#key-list .item .name").all_inner_texts() == ["from-b"]


def test_a_slow_key_never_shows_in_place_of_the_key_opened_after_it(
    console: Console, page: Any, ns: str
) -> None:
    console.memory(ns).set_many({"a0": "value of a0", "a1": "value of a1"})
    sign_in(page, console, path=f"/console?ns={ns}")
    held: list[Any] = []

    def hold_a0(route: Any) -> None:
        if '"key":"a0"' in (route.request.post_data or "").replace(" ", ""):
            held.append(route)
        else:
            route.continue_()

    page.route("**/v1/batch", hold_a0)
    key_row(page, "a0").click()
    page.wait_for_timeout(200)
    assert len(held) == 1
    key_row(page, "a1").click()
    page.wait_for_selector("#value:text('value of a1')")
    held[0].continue_()
    page.wait_for_timeout(300)
    assert page.inner_text("#detail-title") == "a1" and "value of a1" in page.inner_text("#value")


def test_unsaved_edits_meet_a_conflict_even_after_a_live_reload(
    console: Console, page: Any, ns: str
) -> None:
    mem = console.memory(ns)
    mem.set("doc", {"v": "first"})
    sign_in(page, console, path=f"/console?ns={ns}&key=doc")
    page.click("#tab-edit")
    page.fill("#editor", '{"v": "mine"}')
    page.click("#tab-value")
    page.wait_for_timeout(300)  # the feed is open
    mem.set("doc", {"v": "theirs"})
    page.wait_for_selector("#value:text('theirs')")  # the view follows the store
    expect(page.locator("#live-note")).to_be_visible()
    page.click("#tab-edit")
    assert "mine" in page.input_value("#editor")  # the unsaved text is kept
    page.click("#save")
    page.wait_for_selector("#conflict:not([hidden])")
    assert mem.get("doc") == {"v": "theirs"}


def test_a_namespace_left_and_opened_again_follows_the_store_again(
    console: Console, page: Any, ns: str
) -> None:
    mem = console.memory(ns)
    mem.set("first", 1)
    sign_in(page, console, path=f"/console?ns={ns}")
    key_row(page, "first").wait_for()
    page.click("#nav a[data-nav=search]")
    page.go_back()
    key_row(page, "first").wait_for()
    page.wait_for_timeout(300)
    mem.set("second", 2)
    key_row(page, "second").wait_for(timeout=2000)


# -- search -----------------------------------------------------------------------------------


def test_search_highlights_the_words(console: Console, page: Any, ns: str) -> None:
    mem = console.memory(ns)
    mem.set("trip", {"text": "We planned a trip to Lisbon in May"})
    mem.append("chat", {"role": "user", "content": "Porto or Lisbon?"})
    mem.set("other", "nothing here")
    sign_in(page, console)
    page.click("#nav a[data-nav=search]")
    page.fill("#search-q", "Lisbon")
    page.fill("#search-ns", ns)
    page.press("#search-q", "Enter")
    page.wait_for_selector("#search-results li")
    assert page.locator("#search-results li").count() == 2
    assert page.locator("#search-results mark").first.inner_text() == "Lisbon"
    shot(page, "search")
    page.fill("#search-ns", ns[:4] + "*")
    page.click("#search-form button")
    page.wait_for_selector("#search-results li")
    page.locator("#search-results a", has_text="trip").click()
    page.wait_for_selector("#detail:not([hidden])")
    assert page.inner_text("#detail-title") == "trip"


# -- edit -------------------------------------------------------------------------------------


def test_edit_saves_with_the_version_it_loaded_and_a_conflict_shows_both(
    console: Console, page: Any, ns: str
) -> None:
    mem = console.memory(ns)
    mem.set("profile", {"name": "Ada"}, ttl=3600)
    sign_in(page, console, path=f"/console?ns={ns}&key=profile")
    page.click("#tab-edit")
    page.fill("#editor", '{"name": "Ada Lovelace"}')
    page.click("#save")
    page.wait_for_selector("text=Saved version")
    assert mem.get("profile") == {"name": "Ada Lovelace"}
    entry = mem.entry("profile")
    assert entry is not None and entry.expires_at is not None  # the TTL is kept
    # a second writer between load and save
    page.fill("#editor", '{"name": "mine"}')
    mem.set("profile", {"name": "theirs"})
    page.click("#save")
    page.wait_for_selector("#conflict:not([hidden])")
    assert "mine" in page.inner_text("#conflict-mine")
    assert "theirs" in page.inner_text("#conflict-theirs")
    assert mem.get("profile") == {"name": "theirs"}  # nothing written
    shot(page, "conflict")
    page.click("#keep-mine")
    page.wait_for_selector("#conflict", state="hidden")
    assert mem.get("profile") == {"name": "mine"}
    # and the other choice
    page.fill("#editor", '{"name": "mine again"}')
    mem.set("profile", {"name": "theirs again"})
    page.click("#save")
    page.wait_for_selector("#conflict:not([hidden])")
    page.click("#take-theirs")
    assert "theirs again" in page.input_value("#editor")
    assert mem.get("profile") == {"name": "theirs again"}


def test_invalid_json_is_refused_before_sending(console: Console, page: Any, ns: str) -> None:
    mem = console.memory(ns)
    mem.set("k", {"a": 1})
    before = mem.entry("k")
    sign_in(page, console, path=f"/console?ns={ns}&key=k")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.method) if r.method in ("PUT", "POST") else None)
    page.click("#tab-edit")
    page.fill("#editor", '{"a": 1,')
    page.click("#save")
    assert "Not valid JSON, nothing was sent" in page.inner_text("#editor-error")
    page.fill("#append-item", "[oops")
    page.click("#append")
    page.wait_for_selector("text=The item is not valid JSON")
    assert sent == []
    assert mem.entry("k") == before


def test_ttl_append_new_key_and_delete(console: Console, page: Any, ns: str) -> None:
    mem = console.memory(ns)
    mem.set("log", ["a"])
    sign_in(page, console, path=f"/console?ns={ns}&key=log")
    page.click("#tab-edit")
    page.fill("#ttl", "120")
    page.click("#set-ttl")
    page.wait_for_selector("text=It now expires in 120 s")
    entry = mem.entry("log")
    assert entry is not None and entry.expires_at is not None
    page.click("#remove-ttl")
    page.wait_for_selector("text=It no longer expires")
    entry = mem.entry("log")
    assert entry is not None and entry.expires_at is None
    page.fill("#append-item", '{"role": "user", "content": "b"}')
    page.fill("#append-max", "2")
    page.click("#append")
    page.wait_for_selector("text=Appended.")
    expect(page.locator("#append-item")).to_have_value("")
    assert mem.get("log") == ["a", {"role": "user", "content": "b"}]
    page.fill("#append-item", '"c"')
    page.click("#append")
    expect(page.locator("#append-item")).to_have_value("")
    assert mem.get("log") == [{"role": "user", "content": "b"}, "c"]
    # a new key
    page.click("#new-key")
    page.fill("#new-key-name", "fresh")
    page.fill("#new-key-value", '{"x": 1}')
    page.click("#new-key-create")
    page.wait_for_selector("#detail-title:text('fresh')")
    assert mem.get("fresh") == {"x": 1}
    # delete, after a confirmation; cancelling keeps it
    page.click("#tab-edit")
    page.click("#delete")
    page.click("#confirm button[value=no]")
    assert mem.get("fresh") == {"x": 1}
    page.click("#delete")
    page.click("#confirm-yes")
    page.wait_for_selector("text=Deleted fresh.")
    assert "fresh" not in mem


# -- live -------------------------------------------------------------------------------------


def test_the_open_namespace_updates_as_another_process_writes(
    console: Console, page: Any, ns: str
) -> None:
    mem = console.memory(ns)
    mem.set("watched", "v1")
    sign_in(page, console, path=f"/console?ns={ns}&key=watched")
    page.wait_for_selector("#value:text('v1')")
    page.wait_for_timeout(300)  # the feed is open
    code = (
        "from botwire import Memory\n"
        f"m = Memory({ns!r}, {console.url!r}, token={console.tokens['admin']!r})\n"
        "m.set('arrived', {'from': 'another process'})\n"
        "m.set('watched', 'v2')\n"
    )
    run_python(code)
    written = time.monotonic()
    key_row(page, "arrived").wait_for(timeout=5000)
    page.wait_for_selector("#value:text('v2')", timeout=5000)
    assert time.monotonic() - written < 1.0
    mem.delete("arrived")
    key_row(page, "arrived").wait_for(state="detached", timeout=1000)


# -- history ----------------------------------------------------------------------------------


def test_history_diff_and_restore(console: Console, page: Any, ns: str) -> None:
    mem = console.memory(ns)
    v1 = mem.set("doc", {"title": "draft", "tags": ["a"]})
    mem.set("doc", {"title": "final", "tags": ["a", "b"]})
    sign_in(page, console, path=f"/console?ns={ns}&key=doc")
    page.click("#tab-history")
    page.wait_for_selector("#history-table tbody tr")
    assert page.locator("#history-table tbody tr").count() == 2
    page.click("#compare")
    page.wait_for_selector("#diff .add")
    assert '"title": "final"' in page.locator("#diff .add").all_inner_texts()[0]
    assert any('"title": "draft"' in t for t in page.locator("#diff .del").all_inner_texts())
    shot(page, "history")
    page.click(f"button[aria-label='Restore version {v1}']")
    page.click("#confirm-yes")
    page.wait_for_selector(f"text=Restored version {v1}")
    assert mem.get("doc") == {"title": "draft", "tags": ["a"]}
    expect(page.locator("#history-table tbody tr")).to_have_count(3)


# -- admin and rights -------------------------------------------------------------------------


def test_admin_pages_audit_tokens_usage_and_webhooks(console: Console, page: Any, ns: str) -> None:
    console.memory(ns).set("k", 1)
    sign_in(page, console)
    page.click("#nav a[data-nav=audit]")
    page.fill("#audit-prefix", ns)
    page.click("#audit-form button")
    page.wait_for_selector("#audit-rows tr td:text('token:admin')")
    shot(page, "audit")
    page.click("#nav a[data-nav=tokens]")
    page.wait_for_selector("#token-rows tr td:text('reader')")
    name = f"bot-{uuid.uuid4().hex[:6]}"
    page.fill("#token-name", name)
    page.fill("#token-prefixes", f"{ns}, other:")
    page.check("#token-read-only")
    page.click("#token-form button")
    page.wait_for_selector("#token-made:not([hidden])")
    made = page.inner_text("#token-made-value")
    assert made.startswith("bw_")
    assert (
        httpx.get(
            f"{console.url}/memory/{ns}/k", headers={"authorization": f"Bearer {made}"}
        ).status_code
        == 200
    )
    shot(page, "tokens")
    page.click(f"button[aria-label^='Revoke token {name}']")
    page.click("#confirm-yes")
    page.wait_for_selector(f"text=Revoked {name}.")
    answer = httpx.get(f"{console.url}/memory/{ns}/k", headers={"authorization": f"Bearer {made}"})
    assert answer.status_code == 401
    page.click("#nav a[data-nav=quota]")
    page.wait_for_selector(f"#quota-rows td:text('{ns}')")
    page.click("#nav a[data-nav=webhooks]")
    page.fill("#webhook-url", "http://127.0.0.1:9/hook")
    page.fill("#webhook-prefix", ns)
    page.click("#webhook-form button")
    page.wait_for_selector("#webhook-made:not([hidden])")
    page.wait_for_selector("#webhook-rows td:text('http://127.0.0.1:9/hook')")
    page.click("#webhook-rows button")
    page.click("#confirm-yes")
    page.wait_for_selector("#webhook-rows td:text('No webhooks.')")


def test_other_tokens_see_no_admin_pages_and_are_refused_anyway(
    console: Console, page: Any, ns: str
) -> None:
    console.memory(ns).set("k", 1)
    sign_in(page, console, who="team")
    for view in ("audit", "tokens", "quota"):
        assert not page.is_visible(f"#nav a[data-nav={view}]")
    headers = {"authorization": f"Bearer {console.tokens['team']}"}
    assert httpx.get(console.url + "/v1/audit", headers=headers).status_code == 403
    assert httpx.get(console.url + "/v1/tokens", headers=headers).status_code == 403
    body = {"name": "sneaky", "prefixes": ["*"], "admin": True}
    assert httpx.post(console.url + "/v1/tokens", json=body, headers=headers).status_code == 403
    # the scoped token sees only its own namespaces
    names = [n.get_attribute("title") for n in page.locator("#ns-list button").all()]
    assert ns not in names


def test_a_read_only_token_gets_no_edit_controls_and_a_forged_write_gets_403(
    console: Console, page: Any, ns: str
) -> None:
    mem = console.memory(ns)
    version = mem.set("k", {"a": 1})
    mem.set("k", {"a": 2})
    sign_in(page, console, who="reader", path=f"/console?ns={ns}&key=k")
    page.wait_for_selector("#detail:not([hidden])")
    assert "read-only" in page.inner_text("#who")
    for control in ("#tab-edit", "#new-key", "#nav a[data-nav=webhooks]"):
        assert not page.is_visible(control)
    page.click("#tab-history")
    page.wait_for_selector("#history-table tbody tr")
    assert page.locator("#history-table button", has_text="Restore").count() == 0
    status = page.evaluate(
        """async ([ns, token, version]) => {
            const put = await fetch(`/memory/${ns}/k`, {method: "PUT",
                headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"},
                body: JSON.stringify({value: "forged"})});
            const batch = await fetch("/v1/batch", {method: "POST",
                headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"},
                body: JSON.stringify({ops: [{op: "delete", ns, key: "k"}]})});
            const restore = await fetch("/v1/restore", {method: "POST",
                headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"},
                body: JSON.stringify({ns, key: "k", version})});
            return [put.status, batch.status, restore.status];
        }""",
        [ns, console.tokens["reader"], version],
    )
    assert status == [403, 403, 403]
    assert mem.get("k") == {"a": 2}


# -- safety -----------------------------------------------------------------------------------


def test_values_that_look_like_html_render_as_text(console: Console, page: Any, ns: str) -> None:
    mem = console.memory(ns)
    mem.set(XSS[0], XSS[1])
    mem.set("html", {"title": XSS[0], "body": XSS[1]})
    mem.append("chat", {"role": XSS[1], "content": XSS[0], "name": XSS[1]})
    console.memory(ns + XSS[1].replace("/", "")).set("k", XSS[0])
    sign_in(page, console, path=f"/console?ns={ns}&key=html")
    page.wait_for_selector("#detail:not([hidden])")
    shown = page.inner_text("#value")
    assert XSS[0] in shown and XSS[1].replace('"', '\\"') in shown
    key_row(page, XSS[0]).click()
    page.wait_for_selector("#detail-title:has-text('<script>')")
    key_row(page, "chat").click()
    page.wait_for_selector("#chat:not([hidden])")
    assert XSS[0] in page.inner_text("#chat")
    page.click("#nav a[data-nav=search]")
    page.fill("#search-q", "pwned")
    page.fill("#search-ns", ns[:2] + "*")
    page.click("#search-form button")
    page.wait_for_selector("#search-results li")
    page.click("#nav a[data-nav=home]")
    page.wait_for_selector("#ns-list button")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#main img, #main script").count() == 0
