"""The receipt page in a real browser (Debian's chromium driven by Playwright, never a downloaded one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from tests.bookings.helpers import confirmed, future_window

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it"
    ),
    pytest.mark.django_db(transaction=True),
]


def test_a_driver_reads_and_prints_the_receipt(live_server, driver, car_park, monkeypatch, tmp_path):
    from playwright.sync_api import sync_playwright

    start, end = future_window(hours=2)
    booking = confirmed(driver, car_park, start, end)
    token = str(RefreshToken.for_user(driver).access_token)
    url = f"{live_server.url}/api/v1/bookings/{booking.pk}/receipt"
    # Playwright's sync API runs an event loop in this thread; the ORM work is done above.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
        page = context.new_page()
        response = page.goto(url)
        assert response is not None
        assert response.status == 200
        text = page.inner_text("body")
        assert car_park.name in text
        assert booking.plate in text
        assert "5.00 GBP" in text
        assert "20%" in text
        assert page.evaluate("document.styleSheets.length") >= 1  # styled inline, no external assets
        page.emulate_media(media="print")
        pdf = page.pdf()
        assert pdf.startswith(b"%PDF")
        page.screenshot(path=str(tmp_path / "receipt.png"), full_page=True)
        assert (tmp_path / "receipt.png").stat().st_size > 0

        stranger = browser.new_context().new_page()
        denied = stranger.goto(url)
        assert denied is not None
        assert denied.status == 401
        assert "application/problem+json" in denied.headers["content-type"]
        browser.close()
