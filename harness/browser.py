"""Headless Chromium for the comparison site's browser tests: find it, or install it from the system's packages.

The tests drive a real browser (selenium with chromedriver) rather than trusting the HTML: console errors,
rendered charts and sorting only show up there. Chromium and its chromedriver must be the same version, so
both come from the same place: the system's package manager, never a download at test time.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from . import HarnessError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PACKAGES = ("chromium", "chromium-driver")  # Debian's names, one version for both
_INSTALL = "apt-get update && apt-get install -y " + " ".join(PACKAGES)


def find() -> tuple[str, str]:
    """The browser and its chromedriver on PATH, or an error saying how to get them."""
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    missing = " and ".join(name for name, path in (("Chromium", browser), ("chromedriver", driver)) if not path)
    raise HarnessError(f"the browser tests need {missing} on PATH: run `python -m harness fetch-browser` "
                       f"(Debian, as root: `{_INSTALL}`; elsewhere install Chromium and the chromedriver of "
                       "the same version with the system's package manager)")


def fetch(progress=print) -> tuple[str, str]:
    """Install Chromium and chromedriver with apt-get when they are missing (root only: it says what to run
    otherwise)."""
    try:
        found = find()
        progress(f"browser for the tests: {found[0]}, driver {found[1]}")
        return found
    except HarnessError:
        pass  # missing: installed below
    if not shutil.which("apt-get"):
        raise HarnessError("Chromium and chromedriver are missing and this system has no apt-get: install both "
                           "(the same version) with its package manager, then run the tests again")
    if os.geteuid() != 0:
        raise HarnessError(f"Chromium and chromedriver are missing and installing them needs root: run "
                           f"`sudo sh -c '{_INSTALL}'`, then the tests again")
    progress(f"installing the browser for the tests: {_INSTALL}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
        if subprocess.run(command, env=env).returncode != 0:
            raise HarnessError(f"`{' '.join(command)}` failed (its output is above): install {' and '.join(PACKAGES)}"
                               " by hand, then run the tests again")
    return find()
