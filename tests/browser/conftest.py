"""Fixtures for tests in a real browser: a JupyterLab server and a Chromium page on it (see harness.py)."""

import pytest
from harness import JupyterLab, LabPage, launch_chromium, missing_requirements


@pytest.fixture(scope="session")
def browser_requirements():
    reason = missing_requirements()
    if reason:
        pytest.skip(f"browser tests need Chromium, JupyterLab and Playwright: {reason}")


@pytest.fixture(scope="session")
def lab(browser_requirements, tmp_path_factory):
    """A JupyterLab server whose root folder (``lab.root``) the tests write their notebooks into."""
    base = tmp_path_factory.mktemp("jupyterlab")
    (base / "root").mkdir()
    with JupyterLab(base / "root", base / "state") as server:
        yield server


@pytest.fixture(scope="session")
def chromium(browser_requirements, tmp_path_factory):
    """A headless Chromium browser context shared by the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = launch_chromium(playwright, tmp_path_factory.mktemp("chromium") / "profile")
        context.set_default_timeout(30_000)
        yield context
        context.close()


@pytest.fixture
def page(chromium):
    """A blank page."""
    page = chromium.new_page()
    yield page
    page.close()


@pytest.fixture
def lab_page(lab, page, request):
    """A page on the JupyterLab server; the kernel of the notebook it opened is shut down afterwards.

    Under ``@pytest.mark.warm_kernel`` the notebook instead shares a kernel with the other such tests
    of this server (torch imported, datashader compiled: ~30 s less each on two cores), interrupted
    afterwards; for tests that leave nothing running in the kernel and need no fresh one.
    """
    lab_page = LabPage(page, lab, warm=request.node.get_closest_marker("warm_kernel") is not None)
    yield lab_page
    lab_page.close()
