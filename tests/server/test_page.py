"""The search page in a real headless Chromium (Debian's, driven by Playwright; no download).

A server with an API key and an empty store; everything goes through the page: the key prompt,
uploading a real PDF (generated, with captioned figures) and a photo, searching, the figure
thumbnails, the full-size viewer, filters, search by picture, deletion, and a phone-width window.
The test also writes the README's screenshot (docs/search-page.png).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from docgen import figures_pdf
from helpers import REPO, SHARED, running_server
from PIL import Image

from mrag.model import JinaClipModel
from mrag.server.app import ServerConfig, create_app
from mrag.store import StoreSettings

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")

API_KEY = "page-key-0123456789"
#: Long enough for an upload's ingestion on a busy machine; the page polls, nothing is timed.
WAIT_MS = 120_000


def chromium_path() -> str:
    found = (
        os.environ.get("MRAG_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not found:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("page-docs")
    work = root / "work"
    work.mkdir()
    photo = SHARED / "corpus" / "images" / "photos" / "chelsea.png"
    if not photo.is_file():  # a clean clone: a generated photo-like picture instead
        photo = root / "chelsea.png"
        Image.effect_mandelbrot((400, 300), (-2, -1.2, 1, 1.2), 60).convert("RGB").save(photo)
    notes = root / "zanzibar-notes.md"
    notes.write_text("# Travel notes\n\nThe zanzibar spice market opens at dawn.\n")
    return {"pdf": figures_pdf(root / "report.pdf", work), "photo": photo, "notes": notes}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model: JinaClipModel) -> Iterator[str]:
    store = StoreSettings(path=str(tmp_path_factory.mktemp("page-store")), collection="page")
    with running_server(create_app(tiny_model, ServerConfig(store=store, api_key=API_KEY))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        launched.close()


def upload(page: object, files: list[Path], expected: list[str]) -> None:
    page.click("#tab-documents")
    page.set_input_files("#upload", [str(path) for path in files])
    for outcome in expected:
        page.wait_for_selector(f"#uploads .outcome.{outcome}", timeout=WAIT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#uploads .outcome')]"
        ".every((e) => /ingested|unchanged|failed|refused/.test(e.textContent))",
        timeout=WAIT_MS,
    )


def search(page: object, query: str) -> None:
    page.click("#tab-search")
    page.fill("#query", query)
    page.click("#search-button")
    page.wait_for_function(
        "() => /results|Nothing found|failed/.test(document.querySelector('#search-status')"
        ".textContent)",
        timeout=WAIT_MS,
    )


def test_the_page_end_to_end(server: str, browser: object, documents: dict[str, Path]):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server + "/")

    # The key is asked for once; a wrong one is refused and asked again.
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key", "not-the-key")
    page.click("#key-submit")
    page.wait_for_function(
        "() => document.querySelector('#key-error').textContent.includes('not accepted')"
    )
    page.fill("#key", API_KEY)
    page.click("#key-submit")
    page.wait_for_function("() => !document.querySelector('#key-dialog').open")
    assert page.evaluate("sessionStorage.getItem('mrag-api-key')") == API_KEY

    upload(page, [documents["pdf"], documents["photo"]], ["ingested"])
    outcomes = page.locator("#uploads .outcome").all_text_contents()
    assert len(outcomes) == 2 and all(text.startswith("ingested") for text in outcomes), outcomes
    page.wait_for_function(
        "() => ['report.pdf', 'chelsea.png'].every((name) =>"
        " document.querySelector('#documents tbody').textContent.includes(name))"
    )
    assert "passages" in page.text_content("#store-summary")

    search(page, "red square figure")
    passages = page.locator("#results .hit.text .where").all_text_contents()
    assert any(text.startswith("report.pdf") for text in passages), passages
    assert page.locator("#results .hit.text mark").count() > 0  # the query's words are marked
    # Every thumbnail in view has loaded (those below load lazily, when scrolled to).
    page.wait_for_function(
        "() => { const shown = [...document.querySelectorAll('#results .hit.image img')]"
        ".filter((img) => img.getBoundingClientRect().top < window.innerHeight);"
        " return shown.length > 0 && shown.every((img) => img.complete && img.naturalWidth > 0); }",
        timeout=WAIT_MS,
    )
    (REPO / "docs").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "docs" / "search-page.png"))

    # A thumbnail opens the stored rendition at full size.
    page.locator("#results .hit.image .thumb").first.click()
    page.wait_for_function(
        "() => document.querySelector('#viewer').open"
        " && document.querySelector('#viewer-image').naturalWidth > 0"
    )
    page.click("#viewer-close")

    # Pictures only.
    page.select_option("#modality", "image")
    page.wait_for_function("() => document.querySelector('#search-status').textContent")
    search(page, "red square figure")
    kinds = page.eval_on_selector_all("#results .hit", "(items) => items.map((i) => i.className)")
    assert kinds and all("image" in kind for kind in kinds), kinds
    page.select_option("#modality", "")

    # Search by picture: the photo finds itself.
    page.set_input_files("#picture", str(documents["photo"]))
    # The status still shows the last search's count until this one answers: wait for the hit.
    page.wait_for_function(
        "() => (document.querySelector('#results .hit .where') || {}).textContent"
        "?.includes('chelsea.png')",
        timeout=WAIT_MS,
    )
    page.click("#picture-clear")

    # Upload a note through the page, find it, delete it.
    upload(page, [documents["notes"]], ["ingested"])
    search(page, "zanzibar spice market")
    assert "zanzibar-notes.md" in page.locator("#results .hit .where").all_text_contents()[0]
    page.click("#tab-documents")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[aria-label='Delete zanzibar-notes.md']")
    page.wait_for_function(
        "() => document.querySelector('#store-summary').textContent.startsWith('Deleted')"
        " || !document.querySelector('#documents').textContent.includes('zanzibar')"
    )
    page.wait_for_function(
        "() => !document.querySelector('#documents').textContent.includes('zanzibar-notes.md')"
    )
    search(page, "zanzibar spice market")
    names = page.locator("#results .hit .where").all_text_contents()
    assert not any("zanzibar" in name for name in names), names
    page.close()


def test_phone_width_and_labels(server: str, browser: object):
    page = browser.new_page(viewport={"width": 390, "height": 800})
    page.goto(server + "/")
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key", API_KEY)
    page.click("#key-submit")
    search(page, "red square")
    # Nothing wider than the window, and every control has a label.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    unlabelled = page.evaluate(
        "() => [...document.querySelectorAll('input, select')]"
        ".filter((e) => !e.labels || !e.labels.length).map((e) => e.id)"
    )
    assert unlabelled == []
    # The keyboard reaches the query box, then the search button.
    page.focus("#query")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "search-button"
    page.close()
