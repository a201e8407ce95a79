"""A person's path through the page in headless Chromium: write a prompt, watch it being made, read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.stack import running_stack

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def _artifacts_dir() -> None:
    ARTIFACTS.mkdir(exist_ok=True)


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname in ("127.0.0.1", "localhost")


async def test_a_prompt_becomes_a_story_with_pictures(browser: Any, tmp_path: Path, redis_url: str) -> None:
    async with running_stack(tmp_path, redis_url) as stack:
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))

        # Record every percent and stage the live view shows (the CSP does not apply to init scripts).
        await page.add_init_script(
            """
            window.__seen = {percent: [], stage: [], text: 0};
            document.addEventListener("DOMContentLoaded", () => {
              const watch = (id, into) => new MutationObserver(() => {
                window.__seen[into].push(document.getElementById(id).textContent);
              }).observe(document.getElementById(id), {childList: true, characterData: true, subtree: true});
              watch("job-percent", "percent");
              watch("job-stage", "stage");
              new MutationObserver(() => {
                if (document.querySelector("#job-parts .writing")) window.__seen.text += 1;
              }).observe(document.getElementById("job-parts"), {childList: true, subtree: true});
            });
            """
        )
        await page.goto(stack.gateway.url + "/")
        await page.get_by_label("Story prompt").fill("a bear who finds a mine full of honey")
        await page.get_by_label("Parts").select_option("2")
        await page.get_by_label("Story prompt").press("Enter")

        # Live view: the address is the job's, progress shows, text and pictures appear, then the link.
        await page.wait_for_url("**/jobs/*", timeout=30_000)
        open_link = page.locator("#job-open")
        await open_link.wait_for(state="visible", timeout=120_000)
        assert await page.locator("#job-percent").text_content() == "100%"
        seen = await page.evaluate("window.__seen")
        assert any(p not in ("0%", "100%") for p in seen["percent"]), seen["percent"]
        assert len(set(seen["stage"])) >= 3, seen["stage"]
        assert seen["text"] > 0, "the story text should appear while it is being written"
        assert await page.locator("#job-parts .part").count() == 2
        assert await page.locator("#job-parts .part-text p").first.text_content()
        await page.screenshot(path=str(ARTIFACTS / "web-progress.png"), full_page=True)

        await open_link.click()
        await page.wait_for_url("**/stories/*")
        await page.locator("#story-parts .part img").first.wait_for(timeout=30_000)
        assert await page.locator("#story-parts .part").count() == 2
        images = page.locator("#story-parts .part img")
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#story-parts img')].every(i => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        assert await images.count() == 2
        assert "not an AI model" in (await page.locator("#story-engine").text_content() or "")
        story_url = page.url
        await page.screenshot(path=str(ARTIFACTS / "web-story.png"), full_page=True)

        # The back button returns to the library, which lists the story; the deep link opens it again.
        await page.go_back()
        await page.go_back()
        await page.wait_for_url(stack.gateway.url + "/")
        await page.locator("#library li").first.wait_for(timeout=30_000)
        assert await page.locator("#library li").count() == 1
        await page.screenshot(path=str(ARTIFACTS / "web-library.png"), full_page=True)
        await page.goto(story_url)
        await page.locator("#story-parts .part").first.wait_for(timeout=30_000)

        # Delete asks first; "Keep it" keeps it, "Delete" removes it and returns to the empty library.
        await page.get_by_role("button", name="Delete this story").click()
        await page.get_by_role("button", name="Keep it").click()
        assert page.url == story_url
        await page.get_by_role("button", name="Delete this story").click()
        await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        await page.wait_for_url(stack.gateway.url + "/")
        await page.get_by_text("No stories yet").wait_for(timeout=30_000)
        assert await page.locator("#library li").count() == 0

        assert errors == []
        outside = [url for url in requests if not _is_local(url)]
        assert outside == [], "the page must work offline"


async def test_the_api_error_is_shown_next_to_the_prompt(browser: Any) -> None:
    from tests.support.gateway import running_gateway

    async with running_gateway() as gateway:  # backends down: the API answers 503
        page = await browser.new_page(viewport={"width": 390, "height": 844})
        await page.goto(gateway.url + "/")
        button = page.get_by_role("button", name="Generate")
        await page.get_by_label("Story prompt").fill("a bear")
        await button.click()
        alert = page.locator("#compose-error")
        await alert.wait_for(state="visible", timeout=30_000)
        assert "did not answer" in (await alert.text_content() or "")
        assert await button.is_enabled()
        await page.screenshot(path=str(ARTIFACTS / "web-phone-error.png"), full_page=True)


async def test_a_queued_story_can_be_cancelled_from_the_live_view(browser: Any, tmp_path: Path, redis_url: str) -> None:
    # No workers: the job waits in the queue until it is cancelled.
    async with running_stack(tmp_path, redis_url, generator_overrides={"workers": 0}) as stack:
        page = await browser.new_page()
        await page.goto(stack.gateway.url + "/")
        await page.get_by_label("Story prompt").fill("a story nobody will write")
        await page.get_by_role("button", name="Generate").click()
        await page.wait_for_url("**/jobs/*", timeout=30_000)
        await page.get_by_text("Queued").wait_for(timeout=30_000)
        await page.get_by_role("button", name="Cancel").click()
        error = page.locator("#job-error")
        await error.wait_for(state="visible", timeout=30_000)
        assert "cancel" in (await error.text_content() or "").lower()
        await page.locator("#job-stage", has_text="Cancelled.").wait_for(timeout=30_000)
        assert await page.get_by_role("button", name="Cancel").is_hidden()
