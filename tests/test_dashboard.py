"""The comparison site: runs read through the result model, cases of any number of engines, cases that pair two
hosts, missing and malformed files, escaping, exports, and the page in a real headless Chromium (console errors,
the fixture's numbers in the summary table, charts, sorting). The fixture is written by the real writer."""

import csv
import functools
import http.server
import json
import os
import threading

import pytest

from harness import REPO_ROOT, HarnessError, analysis, browser, dashboard
from harness.cli import main

from site_fixture import EVIL, build


def quiet(message):
    """Stands in for print: the tests read what build returns."""


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    return build(tmp_path_factory.mktemp("results"))


def collected(root):
    return analysis.analyze_dirs(dashboard.find_runs(root), analysis.find_comparisons(root))


def rows_by(found):
    return {(r["workload"], r["hosts"], r["engine"]): r for r in analysis.csv_rows(analysis.export(found))}


# ---------------------------------------------------------------------------------------------- reading


def test_runs_from_two_hosts_and_their_pairing_become_cases(fixture_root):
    site = collected(fixture_root)
    keys = sorted((c.workload, tuple(c.hosts)) for c in site.cases)
    assert ("groupby_sum_mean", ("gpubox",)) in keys and ("groupby_sum_mean", ("cpubox",)) in keys
    assert ("groupby_sum_mean", ("cpubox", "gpubox")) in keys  # the saved cross-host comparison
    rows = rows_by(site)
    gpu = rows[("groupby_sum_mean", "gpubox", "gpu")]
    assert (gpu["verdict"], gpu["verdict_engine"], gpu["compared_with"]) == ("keep-on-cpu (measured)", "comet", "comet")
    assert gpu["speedup"] == pytest.approx(0.31 / 0.104) and gpu["break_even_speedup"] == pytest.approx(0.8048 / 0.2016)
    assert gpu["median_s"] == 0.104 and gpu["cost_per_mrows_usd"] == pytest.approx(0.8048 * 0.104 / 3600)
    assert gpu["gpu_busy_pct"] == 71.2 and gpu["gpu_memory_peak_bytes"] == 3758096384
    assert rows[("groupby_sum_mean", "gpubox", "cpu")]["median_s"] == 0.468
    assert rows[("groupby_sum_mean", "cpubox", "gpu")]["status"] == "skipped"
    assert rows[("standardize_clip_udf", "gpubox", "gpu")]["not_accelerated"] == "BatchEvalPython"
    assert rows[("standardize_clip_udf", "gpubox", "gpu")]["fallback_fraction"] == pytest.approx(1 / 3)


def test_missing_partial_and_malformed_files_are_listed_not_fatal(fixture_root):
    missing = "\n".join(collected(fixture_root).missing)
    for expected in ("gpubox: record broken.gpu.1e6.json is unreadable: not valid JSON",
                     "laptop: run.json is missing: host, date and commit are unknown",
                     "laptop: sort_global under cpu at 1e6 never finished (its record says running)"):
        assert expected in missing


def test_an_unfinished_case_never_hides_a_finished_one(tmp_path):
    from site_fixture import M7I, _run, record

    old = _run(tmp_path, "runs", "20260101T000000Z", "h", "local", [], "c1")
    new = _run(tmp_path, "runs", "20260102T000000Z", "h", "local", [], "c2")
    record(old, "w", "cpu", "cpu", [3.0, 3.0], M7I)
    record(new, "w", "cpu", "cpu", [], M7I, status="running")
    site = analysis.analyze_dirs(dashboard.find_runs(tmp_path))
    assert [e.record.median_s for c in site.cases for e in c.engines] == [3.0]
    record(new, "w", "cpu", "cpu", [1.0, 1.0], M7I)  # now it finished: the newer one wins
    site = analysis.analyze_dirs(dashboard.find_runs(tmp_path))
    assert [e.record.median_s for c in site.cases for e in c.engines] == [1.0]
    assert site.shown_per_run == {old.name: 0, new.name: 1}


# ---------------------------------------------------------------------------------------------- writing


def test_every_string_from_the_results_is_escaped(fixture_root, tmp_path):
    page = dashboard.build(collected(fixture_root), tmp_path / "site", progress=quiet).read_text()
    assert page.count("<script") == 1  # the page's own
    assert "<img" not in page and "<b>Python UDFs" not in page
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in page
    assert "&lt;b&gt;Python UDFs&lt;/b&gt; run on the CPU &amp; are not columnar" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


def test_the_site_command_writes_the_page_and_the_same_table_as_csv_and_json(fixture_root, tmp_path, capsys):
    assert main(["site", "--results", str(fixture_root), "--out", str(tmp_path / "site")]) == 0
    assert f"comparison site written to {tmp_path / 'site' / 'index.html'}" in capsys.readouterr().out
    with open(tmp_path / "site" / "comparison.csv", newline="") as f:
        from_csv = list(csv.DictReader(f))
    exported = json.loads((tmp_path / "site" / "comparison.json").read_text())
    rows = analysis.csv_rows(exported)
    assert list(from_csv[0]) == list(analysis.CSV_FIELDS) == list(rows[0])
    assert [(r["workload"], r["engine"]) for r in from_csv] == [(r["workload"], r["engine"]) for r in rows]
    assert EVIL in {r["workload"] for r in from_csv} and exported["schema"] == analysis.ANALYSIS_SCHEMA
    paired = [r for r in rows if r["hosts"] == "cpubox, gpubox"]
    assert {r["engine"] for r in paired} == {"cpu (cpubox)", "cpu (gpubox)", "comet", "gpu"}
    assert not (tmp_path / "site" / "asv").exists()


def test_a_failed_build_leaves_the_previous_site_whole(fixture_root, tmp_path, monkeypatch):
    site = tmp_path / "site"
    dashboard.build(collected(fixture_root), site, progress=quiet)
    before = (site / "index.html").read_text()
    monkeypatch.setattr(dashboard, "page", lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        dashboard.build(analysis.analyze_dirs([]), site, progress=quiet)
    assert (site / "index.html").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no half-built directory left beside it


def test_no_results_make_a_page_that_says_so(tmp_path):
    page = dashboard.build(analysis.analyze_dirs(dashboard.find_runs(tmp_path)), tmp_path / "site", progress=quiet).read_text()
    assert "No run directories found." in page and "No results to compare" in page


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """The runs committed under results/, analysed, and their site with asv's history, as `python -m harness site`
    draws it."""
    results = REPO_ROOT / "results"
    found = analysis.analyze_dirs(sorted((results / "runs").glob("*")))
    return found, dashboard.build(found, tmp_path_factory.mktemp("committed") / "site", results / "asv", progress=quiet)


@pytest.mark.slow
def test_the_committed_runs_with_asv_history(committed):
    """The runs committed under results/ and asv's history, published into the site."""
    runs = sorted((REPO_ROOT / "results" / "runs").glob("*"))
    index = committed[1]
    page = index.read_text()
    assert (index.parent / "asv" / "index.html").is_file() and 'href="asv/index.html"' in page
    assert "groupby_sum_mean" in page and f"from {len(runs)} runs on" in page


# ---------------------------------------------------------------------------------------------- in a browser


@pytest.mark.slow
def test_fetch_browser_finds_it_or_says_what_to_run(monkeypatch, capsys):
    assert main(["fetch-browser"]) == 0 and "browser for the tests:" in capsys.readouterr().out
    monkeypatch.setattr(browser.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    with pytest.raises(HarnessError, match=r"needs root: run `sudo sh -c 'apt-get update && apt-get install -y "
                                           r"chromium chromium-driver'`"):
        browser.fetch(progress=quiet)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        """Requests are not worth a line each in the test output."""


@pytest.fixture(scope="module")
def site_url(fixture_root, tmp_path_factory):
    """The fixture's site, served by a plain static server, as a reader would get it."""
    site = tmp_path_factory.mktemp("served") / "site"
    dashboard.build(collected(fixture_root), site, progress=quiet)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/index.html"
    server.shutdown()


@pytest.fixture(scope="module")
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = browser.find()  # `tox -e test` installs them first (`python -m harness fetch-browser`)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


@pytest.fixture
def page(chromium, site_url):
    chromium.get(site_url)
    yield chromium
    errors = [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"


SUMMARY_JS = """
const heads = [...document.querySelectorAll('#summary thead th')].map(th => th.innerText.trim());
return [...document.querySelectorAll('#summary tbody tr')].map(
    tr => Object.fromEntries([...tr.cells].map((td, i) => [heads[i], td.innerText.trim()])));
"""


@pytest.mark.browser
def test_the_summary_table_shows_the_fixture_numbers(page):
    rows = page.execute_script(SUMMARY_JS)
    gpubox = next(r for r in rows if r["Workload"] == "groupby_sum_mean" and r["Host"] == "gpubox")
    assert gpubox == {
        "Workload": "groupby_sum_mean", "Scale": "1e6", "Verdict": "keep-on-cpu (measured)", "Use": "comet",
        "Speedup": "2.98× GPU faster", "QualX": "", "Coverage": "", "Break-even": "3.99×", "Outputs": "agree",
        "GPU busy": "71%", "Host": "gpubox", "Date": "2026-11-20 10:00",
    }
    join = next(r for r in rows if r["Workload"] == "join_medium_inner_int")
    assert join["Speedup"] == "1.10× within noise" and join["Verdict"] == "keep-on-cpu (measured)"
    cpubox = next(r for r in rows if r["Workload"] == "groupby_sum_mean" and r["Host"] == "cpubox")
    assert (cpubox["Coverage"], cpubox["Verdict"]) == ("80%", "undecided")
    paired = next(r for r in rows if r["Host"] == "cpubox, gpubox")
    assert paired["Use"] == "cpu (cpubox)"  # as cheap as comet, and first
    assert "laptop: run.json is missing" in page.find_element("id", "missing").text


@pytest.mark.browser
def test_the_first_screen_gives_the_answer_and_the_table_fits_the_window(page, tmp_path):
    geometry = page.execute_script("""
        const box = id => document.getElementById(id).getBoundingClientRect();
        return {answer: box('answer').top, engines: box('engines').bottom, window: window.innerWidth,
                summary: box('summary').right, heat: box('heat').right};""")
    assert geometry["answer"] < 400 and geometry["engines"] < 1000  # in the first 1400 x 1000 screen
    assert geometry["summary"] <= geometry["window"] and geometry["heat"] <= geometry["window"]
    engines = page.execute_script("return [...document.querySelectorAll('#engines tbody tr')].map("
                                  "tr => [...tr.cells].map(td => td.innerText.trim()))")
    assert engines[0][:4] == ["cpu", "cpu", "4", "reference"]
    comet = next(row for row in engines if row[0] == "comet")
    assert comet[3] == "0.81× over 2 cases"  # 0.310 s over 0.468 s on gpubox, 0.310 s over 0.310 s paired
    heat = page.execute_script("return [...document.querySelectorAll('#heat tbody tr')].map(tr => [...tr.cells].map("
                               "td => [td.innerText.trim(), td.className]))")
    row = next(r for r in heat if r[0][0].startswith("groupby_sum_mean @1e6 · gpubox"))
    assert ["0.66", "heat w2"] in row and ["0.22", "heat w3"] in row  # comet and gpu against cpu
    page.save_screenshot(str(tmp_path / "first-screen.png"))  # look at it: PREPBENCH_SCREENSHOT=path keeps a copy
    if os.environ.get("PREPBENCH_SCREENSHOT"):
        page.save_screenshot(os.environ["PREPBENCH_SCREENSHOT"])
    assert (tmp_path / "first-screen.png").stat().st_size > 10_000


@pytest.mark.browser
def test_the_charts_render(page):
    sizes = page.execute_script("""
        return [...document.querySelectorAll('svg.chart')].map(svg => ({
            id: svg.id, width: svg.getBoundingClientRect().width, height: svg.getBoundingClientRect().height,
            bars: [...svg.querySelectorAll('rect.bar')].filter(r => r.getBBox().width > 0).length,
            markers: svg.querySelectorAll('line.marker').length}));""")
    assert [s["id"] for s in sizes] == ["svg-rows", "svg-cost", "svg-speedup"]
    assert all(s["width"] > 300 and s["height"] > 50 for s in sizes)
    assert sizes[0]["bars"] >= 9 and sizes[2]["bars"] == 4 and sizes[2]["markers"] == 4
    lines = page.execute_script("return [...document.querySelectorAll('svg.spark polyline')].map(p => p.getBBox().width)")
    assert len(lines) >= 6 and min(lines) > 50


@pytest.mark.browser
def test_sorting_by_a_column(page):
    header = page.find_element("css selector", "#summary th[data-key=speedup] button")
    column = "return [...document.querySelectorAll('#summary tbody tr')].map(tr => tr.cells[4].innerText.trim())"
    header.click()
    ascending = [v for v in page.execute_script(column) if v]
    assert ascending == sorted(ascending, key=lambda v: float(v.split("×")[0]))
    header.click()
    assert [v for v in page.execute_script(column) if v] == ascending[::-1]
    assert header.find_element("xpath", "..").get_attribute("aria-sort") == "descending"


@pytest.mark.browser
def test_html_in_the_results_shows_as_text(page):
    assert page.title == "prepbench: should data preparation share the GPUs?"
    assert page.execute_script("return document.images.length") == 0
    assert EVIL in [a.text for a in page.find_elements("css selector", "#summary tbody tr td a")]
    assert EVIL in page.find_element("id", "details").text


@pytest.mark.browser
def test_the_scaling_view_draws_every_engine_of_every_workload(chromium, committed):
    """Each workload's cost-per-million-rows chart has a visible line and legend entry per engine, and names its
    crossovers; a legend mark that swallowed the lines after it (an unquoted `height=9/>`) once hid all but one."""
    found, site = committed
    chromium.get(site.as_uri())
    figures = chromium.execute_script("""
        return [...document.querySelectorAll('#scaling figure.scale')].map(f => ({
            caption: f.querySelector('figcaption').innerText,
            lines: [...f.querySelectorAll('svg > polyline.line')].filter(p => p.getBoundingClientRect().width > 100).length,
            legend: [...f.querySelectorAll('svg > text')].map(t => t.textContent).filter(t => / k=/.test(t)),
            nested: f.querySelectorAll('svg rect *').length}));""")
    assert len(figures) == len(found.scaling) == len({c.workload for c in found.cases if c.scale == "1e7"}) == 39
    for figure, view in zip(figures, found.scaling):
        assert figure["nested"] == 0 and figure["lines"] == len(figure["legend"]) == len(view.engines) >= 2, figure
        assert figure["caption"].splitlines() == [f"{view.label} vm", view.sentence], figure
        assert [t.split(" k=")[0] for t in figure["legend"]] == [e.label for e in view.engines]
