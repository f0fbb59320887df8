"""The lineage report as a reader gets it: one HTML page that opens offline, and a markdown summary."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from report_util import LINEAGE, SETS, make_inputs

BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# Appended to a copy of the page: after load, records how many images decoded and what the page holds.
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({
    images: imgs.length,
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    rows: document.querySelectorAll('#results-table tbody tr').length,
    plots: document.querySelectorAll('img.plot').length,
    panels: [...document.querySelectorAll('img.panel')].map(i => [i.naturalWidth, i.naturalHeight]),
    tableWidth: document.querySelector('#results-table').getBoundingClientRect().width,
  });
  document.body.appendChild(out);
});
</script>"""


def distillery(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "distillery"), *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc


def report_args(inputs: dict, out: Path, evaluations=None) -> list[str]:
    args = ["report", "--evaluations", *(evaluations or inputs["evaluations"]), "--lineage", json.dumps(LINEAGE),
            "--manifest", inputs["manifest"], "--deploy-dir", inputs["deploy_dir"],
            "--out-html", str(out / "lineage.html"), "--out-md", str(out / "lineage.md")]
    for version, path in inputs["checkpoints"].items():
        args += ["--checkpoint", f"{version}={path}"]
    return args


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    inputs = make_inputs(root)
    out = root / "results" / "report"
    distillery(*report_args(inputs, out))
    return {"inputs": inputs, "root": root, "html": out / "lineage.html", "md": out / "lineage.md"}


def test_page_is_self_contained(report):
    page = report["html"].read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "http://" not in page and "https://" not in page
    for version in LINEAGE:
        for s in SETS:
            assert re.search(rf"<td[^>]*>{version}</td><td[^>]*>{s}</td>", page), (version, s)


def test_real_data_figures_only_in_their_labelled_column(report):
    page = report["html"].read_text()
    assert "reference, real data" in page
    cells = re.findall(r'<td class="([^"]*)">([^<]*75 m[^<]*)</td>', page)
    assert cells and all(cls == "ref" for cls, _ in cells)
    md = report["md"].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| version | set |"))
    assert header.rstrip(" |").endswith("reference, real data")


def test_reference_column_quotes_each_versions_config_text():
    """The column comes from the lineage (a version's `reference:`), whatever the versions are called."""
    from distillery.report.data import Evaluation
    from distillery.report.page import results_rows

    evals = [Evaluation(v, "rooms", Path(f"{v}.json"), {"frames": 3, "depth": {}}) for v in ("base", "tuned")]
    rows = results_rows(evals, "truth", lineage={"base": {"reference": "NYU RMSE 0.5 m"}, "tuned": {}})
    assert [row[-1] for row in rows] == ["NYU RMSE 0.5 m", "-"]


def test_markdown_summary_holds_the_same_table(report):
    md = report["md"].read_text()
    results = md.split("## Results")[1].split("## ")[0]
    rows = [line for line in results.splitlines() if re.match(r"\| V\d \| (rooms|corridors) \|", line)]
    assert len(rows) == len(LINEAGE) * len(SETS)
    assert "lineage.html" in md and "## Deployment: INT8 versus FP32" in md
    v1 = next(r for r in rows if r.startswith("| V1 | rooms"))
    assert re.search(r"\| \d+\.\d{3} \[\d+\.\d{3}, \d+\.\d{3}\] \|", v1)  # a mean with its 95 % CI


def test_evaluation_without_a_field_is_refused_naming_file_and_field(report, tmp_path):
    broken = tmp_path / "V9.json"
    data = json.loads(Path(report["inputs"]["evaluations"][0]).read_text())
    del data["depth"]
    broken.write_text(json.dumps(data))
    proc = distillery(*report_args(report["inputs"], tmp_path, [str(broken)]), check=False)
    assert proc.returncode == 1
    assert str(broken) in proc.stderr and "'depth'" in proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="no headless browser: `make browser-deps` installs Debian's chromium")
def test_page_renders_in_a_headless_browser(report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report["html"].read_text().replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1280,2000", "--virtual-time-budget=10000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                         timeout=120)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert match, dom.stderr[-2000:]
    probe = json.loads(match.group(1).replace("&quot;", '"'))
    assert probe["broken"] == [] and probe["images"] >= 12
    assert probe["rows"] == len(LINEAGE) * len(SETS)
    assert probe["plots"] >= 10 and len(probe["panels"]) == 3
    assert all(w > 300 and h > 300 for w, h in probe["panels"])
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", report["html"].as_uri()], capture_output=True,
                   timeout=120)
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    assert pixels.getextrema()[1] - pixels.getextrema()[0] > 100  # not a blank page


def test_a_range_of_few_sequences_is_printed_as_such_not_as_an_interval():
    from distillery.report.data import fmt_ci

    assert fmt_ci({"mean": 0.5, "ci95": [0.4, 0.6]}) == "0.500 [0.400, 0.600]"
    few = {"mean": 0.5, "ci95": None, "range": [0.45, 0.55], "interval": "range of 2 sequences"}
    assert fmt_ci(few) == "0.500 (range of 2 sequences: 0.450-0.550)"
    assert "[" not in fmt_ci(few)


def test_the_best_constant_depth_of_a_set_and_a_students_ratio_to_it(tmp_path):
    import h5py
    import numpy as np

    from distillery.manifest import create_layout
    from distillery.report.baseline import constant_baselines, ratio_text

    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:  # two test frames of 1 m and 3 m, a train frame of 10 m
        create_layout(f, 3, 4, 4)
        for i, (depth, split) in enumerate(((1.0, "test"), (3.0, "test"), (10.0, "train"))):
            f["truth_depth"][i], f["has_truth_depth"][i] = np.full((4, 4), depth, np.float32), True
            f["key"][i], f["dataset"][i], f["sequence"][i], f["split"][i] = f"w/s{i}/0", "w", f"s{i}", split
    base = constant_baselines(str(path), ["w", "absent"])
    assert base == {"w": {"constant_m": 2.0, "rmse": 1.0, "frames": 2,  # 2 m is 1 m off each frame
                          "teacher_rmse": None, "teacher_frames": 0}}
    assert ratio_text({"mean": 0.5}, base["w"]) == "0.50x of 1.000 m" and ratio_text(None, base["w"]) == "-"
    with h5py.File(path, "a") as f:  # a metric teacher 10 % long on the first test frame only
        f["teacher_depth"][0], f["has_teacher_depth"][0] = np.full((4, 4), 1.1, np.float16), True
    base = constant_baselines(str(path), ["w"])["w"]
    assert base["teacher_frames"] == 1 and abs(base["teacher_rmse"] - 0.1) < 1e-3

    from distillery.report.baseline import yardstick_rows

    assert yardstick_rows({"w": base}) == [["w", "2", "2.000", "1.000", "0.100", "0.10x"]]


def test_simulator_settings_are_labelled_when_a_teacher_is_simulated():
    from distillery.report.page import simulated_note

    note = simulated_note([{"id": "da3_sim", "simulated": True}, {"id": "yolo"}])
    assert "simulator settings, not findings" in note and "ToF-valid" in note and "V1" in note
    assert simulated_note([{"id": "da3", "simulated": False}]) is None and simulated_note([]) is None
