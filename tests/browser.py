"""Open a page of a generated project in a real headless browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .debian import debian_tool

VIEWPORT = {"width": 1280, "height": 900}


@dataclass
class PageCheck:
    console_errors: list[str]
    images: int
    broken_images: list[str]
    first_screen: dict[str, bool]  # selector -> visible without scrolling


def open_page(page_file: Path, screenshot: Path, selectors: tuple[str, ...] = ()) -> PageCheck:
    """Load `page_file`, note console errors and images that did not load, and save a screenshot."""
    from playwright.sync_api import sync_playwright

    chromium = debian_tool("chromium", "chromium")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_file.as_uri(), wait_until="load")
        images = int(page.evaluate("document.images.length"))
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src)"
        )
        first_screen = {}
        for selector in selectors:
            box = page.locator(selector).first.bounding_box()
            first_screen[selector] = box is not None and box["height"] > 0 and box["y"] < VIEWPORT["height"]
        page.screenshot(path=str(screenshot))
        browser.close()
    return PageCheck(errors, images, list(broken), first_screen)
