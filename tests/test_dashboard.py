"""The comparison site: merging runs, missing and malformed files, escaping, exports, and the page in a real
headless Chromium (console errors, the fixture's numbers in the summary table, charts, sorting).

tests/fixtures/results holds two runs from two hosts (gpubox: CPU and GPU with comparison.json, GPU metrics
and timelines, a malformed record and a malformed comparison row; cpubox: records only, a GPU skipped, a
workload name and configuration values that are HTML) and a partial smoke run (no run.json, one benchmark
that never finished).
"""

import csv
import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

from harness import REPO_ROOT, HarnessError, browser, dashboard
from harness.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "results"
EVIL = "<script>document.title='pwned'</script>"


def quiet(message):
    """Stands in for print: the tests read what build returns."""


def fixture_table():
    results = dashboard.collect(dashboard.find_runs(FIXTURE))
    return results, {(r["workload"], r["scale"], r["hostname"]): r for r in dashboard.table(results.rows)}


def write_records(run_dir: Path, workload: str, samples_by_engine: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    for engine, samples in samples_by_engine.items():
        (run_dir / f"{workload}.{engine}.1e6.json").write_text(json.dumps({
            "workload": workload, "engine": engine, "scale": "1e6", "status": "ok", "samples_s": samples,
            "rows": 1_000_000}))
    return run_dir


# ---------------------------------------------------------------------------------------------- reading


def test_runs_from_two_hosts_merge_with_comparison_figures_and_record_figures():
    results, rows = fixture_table()
    assert len(rows) == 7 and {r["hostname"] for r in results.runs} == {"gpubox", "cpubox", None}
    gpu_host = rows[("groupby_sum_mean", "1e6", "gpubox")]
    assert gpu_host["source"] == "comparison.json" and gpu_host["verdict"] == "share"
    assert (gpu_host["cpu_median_s"], gpu_host["gpu_median_s"]) == (0.468, 0.104)
    assert gpu_host["speedup"] == pytest.approx(4.5) and gpu_host["break_even_speedup"] == pytest.approx(3.992, abs=1e-3)
    assert gpu_host["gpu_cost_per_mrows_usd"] == pytest.approx(0.8048 * 0.104 / 3600)
    assert gpu_host["gpu_util_mean_pct"] == 71.2 and gpu_host["gpu_memory_peak_bytes"] == 3758096384
    assert gpu_host["commit"].startswith("a1b2c3d4") and gpu_host["host_profile"] == "gpu-local"
    cpu_host = rows[("groupby_sum_mean", "1e6", "cpubox")]  # no comparison.json: what the records give
    assert cpu_host["source"] == "records only" and cpu_host["verdict"] is None
    assert cpu_host["cpu_median_s"] == 0.31 and cpu_host["cpu_rows_per_s"] == pytest.approx(1e6 / 0.31)
    assert cpu_host["gpu_status"] == "skipped" and cpu_host["speedup"] is None
    assert cpu_host["cpu_cost_per_mrows_usd"] is None
    fallbacks = rows[("standardize_clip_udf", "1e6", "gpubox")]
    assert fallbacks["gpu_fallbacks"] == "BatchEvalPythonExec" and fallbacks["gpu_fallback_fraction"] == 0.33
    assert rows[("sort_global", "1e4", None)]["cpu_status"] == "running"


def test_missing_partial_and_malformed_files_are_listed_not_fatal():
    missing = "\n".join(dashboard.collect(dashboard.find_runs(FIXTURE)).missing)
    for expected in ("gpubox: record broken.gpu.1e6.json is unreadable",
                     "gpubox: comparison.json row 4 is not a workload row",
                     "cpubox: no comparison.json",
                     "laptop: run.json is missing: host, date and commit are unknown",
                     "laptop: sort_global at 1e4 did not finish"):
        assert expected in missing


@pytest.mark.parametrize("content", ["", "[1, 2]", '{"schema": 99, "rows": []}', '{"schema": 1, "rows": "none"}'])
def test_an_unusable_comparison_file_falls_back_to_the_records(tmp_path, content):
    run = write_records(tmp_path / "runs" / "20260101T000000Z-h", "w", {"cpu": [1.0, 1.1], "gpu": [0.5, 0.6]})
    (run / "run.json").write_text("{not json")
    (run / "comparison.json").write_text(content)
    results = dashboard.collect([run])
    (row,) = dashboard.table(results.rows)
    assert row["speedup"] == pytest.approx(1.05 / 0.55) and row["speedup_within_noise"] is False
    assert any("comparison.json" in m for m in results.missing) and any("run.json is unreadable" in m for m in results.missing)


def test_overlapping_repeats_are_within_noise_and_single_samples_are_unknown(tmp_path):
    runs = [write_records(tmp_path / "a", "overlap", {"cpu": [1.0, 1.2, 1.6], "gpu": [0.9, 1.1, 1.3]}),
            write_records(tmp_path / "b", "apart", {"cpu": [2.0, 2.1], "gpu": [1.0, 1.1]}),
            write_records(tmp_path / "c", "once", {"cpu": [2.0], "gpu": [1.0]})]
    results = dashboard.collect(runs)
    noise = {r["workload"]: r["speedup_within_noise"] for r in dashboard.table(results.rows)}
    assert noise == {"overlap": True, "apart": False, "once": None}
    page = dashboard.page(results, dashboard.table(results.rows), asv_published=False)
    assert page.count("GPU faster</span>") == 2  # only the clear difference: in the summary and its details
    assert "within noise</span>" in page and "noise unknown</span>" in page


def test_the_newest_run_of_a_case_on_a_host_wins(tmp_path):
    old = write_records(tmp_path / "runs" / "20260101T000000Z-h", "w", {"cpu": [3.0, 3.0]})
    new = write_records(tmp_path / "runs" / "20260102T000000Z-h", "w", {"cpu": [1.0, 1.0]})
    for run_dir, day in ((old, "01"), (new, "02")):
        (run_dir / "run.json").write_text(json.dumps({"started": f"2026-01-{day}T00:00:00+00:00",
                                                      "environment": {"hostname": "h"}}))
    results = dashboard.collect(dashboard.find_runs(tmp_path))
    assert [r["cpu_median_s"] for r in dashboard.table(results.rows)] == [1.0]
    assert [run["rows_shown"] for run in results.runs] == [0, 1]


# ---------------------------------------------------------------------------------------------- writing


def test_every_string_from_the_results_is_escaped(tmp_path):
    page = dashboard.build(dashboard.find_runs(FIXTURE), tmp_path / "site", progress=quiet).read_text()
    assert page.count("<script") == 1  # the page's own
    assert "<img" not in page and "<b>Python UDFs" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "&lt;b&gt;Python UDFs&lt;/b&gt; run on the CPU &amp; are not columnar" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


def test_the_site_command_writes_the_page_and_the_same_table_as_csv_and_json(tmp_path, capsys):
    assert main(["site", "--results", str(FIXTURE), "--out", str(tmp_path / "site")]) == 0
    assert f"comparison site written to {tmp_path / 'site' / 'index.html'}" in capsys.readouterr().out
    with open(tmp_path / "site" / "comparison.csv", newline="") as f:
        from_csv = list(csv.DictReader(f))
    exported = json.loads((tmp_path / "site" / "comparison.json").read_text())
    assert list(from_csv[0]) == list(dashboard.FIELDS) == list(exported["rows"][0])
    assert [r["workload"] for r in from_csv] == [r["workload"] for r in exported["rows"]]
    assert len(from_csv) == 7 and EVIL in {r["workload"] for r in from_csv}
    row = next(r for r in exported["rows"] if r["workload"] == "groupby_sum_mean" and r["hostname"] == "gpubox")
    assert row["speedup"] == pytest.approx(4.5) and row["verdict"] == "share"
    assert len(exported["missing"]) == 6 and not (tmp_path / "site" / "asv").exists()


def test_a_failed_build_leaves_the_previous_site_whole(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dashboard.build(dashboard.find_runs(FIXTURE), site, progress=quiet)
    before = (site / "index.html").read_text()
    monkeypatch.setattr(dashboard, "page", lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        dashboard.build([], site, progress=quiet)
    assert (site / "index.html").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no half-built directory left beside it


def test_no_results_make_a_page_that_says_so(tmp_path):
    page = dashboard.build(dashboard.find_runs(tmp_path), tmp_path / "site", progress=quiet).read_text()
    assert "No run directories found." in page and "No results to compare" in page


def test_the_committed_runs_with_asv_history(tmp_path):
    """The records that exist today (no comparison.json) and asv's history, published into the site."""
    results = REPO_ROOT / "results"
    runs = sorted((results / "runs").glob("*"))
    index = dashboard.build(runs, tmp_path / "site", results / "asv", progress=quiet)
    page = index.read_text()
    assert (index.parent / "asv" / "index.html").is_file() and 'href="asv/index.html"' in page
    assert page.count(": no comparison.json: cost") == sum(not (r / "comparison.json").exists() for r in runs)
    assert "groupby_sum_mean" in page and f"from {len(runs)} runs on 1 host." in page


# ---------------------------------------------------------------------------------------------- in a browser


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
def site_url(tmp_path_factory):
    """The fixture's site, served by a plain static server, as a reader would get it."""
    site = tmp_path_factory.mktemp("served") / "site"
    dashboard.build(dashboard.find_runs(FIXTURE), site, progress=quiet)
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


def test_the_summary_table_shows_the_fixture_numbers(page):
    rows = page.execute_script(SUMMARY_JS)
    assert len(rows) == 7
    gpubox = next(r for r in rows if r["Workload"] == "groupby_sum_mean" and r["Host"] == "gpubox")
    assert gpubox == {
        "Workload": "groupby_sum_mean", "Scale": "1e6", "Verdict": "share", "Speedup": "4.50× GPU faster",
        "Break-even": "3.99×", "CPU s": "0.468", "GPU s": "0.104", "CPU M rows/s": "2.14", "GPU M rows/s": "9.62",
        "CPU $/M rows": "$0.0000262", "GPU $/M rows": "$0.0000232", "GPU util.": "71%", "Host": "gpubox",
        "Date": "2026-11-20 10:00", "Commit": "a1b2c3d4e5",
    }
    join = next(r for r in rows if r["Workload"] == "join_medium_inner_int")
    assert join["Speedup"] == "1.09× within noise" and join["Verdict"] == "keep-on-cpu"
    cpubox = next(r for r in rows if r["Workload"] == "groupby_sum_mean" and r["Host"] == "cpubox")
    assert (cpubox["CPU s"], cpubox["GPU s"], cpubox["Verdict"]) == ("0.310", "skipped", "none")
    assert "laptop: run.json is missing" in page.find_element("id", "missing").text


def test_the_charts_render(page):
    sizes = page.execute_script("""
        return [...document.querySelectorAll('svg.chart')].map(svg => ({
            id: svg.id, width: svg.getBoundingClientRect().width, height: svg.getBoundingClientRect().height,
            bars: [...svg.querySelectorAll('rect.bar')].filter(r => r.getBBox().width > 0).length,
            markers: svg.querySelectorAll('line.marker').length}));""")
    assert [s["id"] for s in sizes] == ["svg-rows", "svg-cost", "svg-speedup"]
    assert all(s["width"] > 300 and s["height"] > 50 for s in sizes)
    assert [s["bars"] for s in sizes] == [9, 6, 3] and sizes[2]["markers"] == 3
    lines = page.execute_script("return [...document.querySelectorAll('svg.spark polyline')]"
                                ".map(p => p.getBBox().width)")
    assert len(lines) == 6 and min(lines) > 50  # three GPU runs, in the table and in their details


def test_sorting_by_a_column(page):
    header = page.find_element("css selector", "#summary th[data-key=speedup] button")
    column = "return [...document.querySelectorAll('#summary tbody tr')].map(tr => tr.cells[3].innerText.trim())"
    header.click()
    assert page.execute_script(column)[:4] == ["0.80× GPU slower", "1.09× within noise", "4.50× GPU faster", ""]
    header.click()
    assert page.execute_script(column)[:4] == ["4.50× GPU faster", "1.09× within noise", "0.80× GPU slower", ""]
    assert header.find_element("xpath", "..").get_attribute("aria-sort") == "descending"
    page.find_element("css selector", "#summary th[data-key=hostname] button").click()
    hosts = page.execute_script(column.replace("cells[3]", "cells[12]"))
    assert hosts == sorted(hosts)


def test_html_in_the_results_shows_as_text(page):
    assert page.title == "prepbench: CPU vs GPU comparison"
    assert page.execute_script("return document.images.length") == 0
    assert page.find_element("css selector", "#summary tbody tr td a").text == EVIL
    assert EVIL in page.find_element("id", "details").text
