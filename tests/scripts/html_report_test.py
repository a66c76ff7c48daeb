#!/usr/bin/python3
"""The HTML report in a real browser (headless Chromium): the page loads, logs nothing to the
console (no script error, no blocked fetch), its own self-check ran, and the op x verdict matrix
shows every op with the counts of the JSON report of the same run.

The run goes through the misbehaving test plugin in mode wrong_values, so the report has an exact
FAIL and a bounded FAIL (red points on a chart) besides the passing cases. Two doctored copies of
the page (a script error; an external image) must be caught, which shows the console capture
works. Only the standard library.

usage: html_report_test.py QCONF GOLDEN_DIR BAD_PLUGIN CHROMIUM WORK_DIR
"""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

qconf, golden, bad_plugin, chromium, work = sys.argv[1:6]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


if not chromium or not shutil.which(chromium):
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        print("html_report_test: chromium not found (make deps installs Debian's chromium)")
        sys.exit(1)
    chromium = found

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
page = os.path.join(work, "report.html")
report = os.path.join(work, "report.json")
env = dict(os.environ, QCONF_BAD_PLUGIN_MODE="wrong_values")
run = subprocess.run([qconf, "run", "--impl", "plugin:" + bad_plugin, "--golden-dir", golden,
                      "--quiet", "--no-progress", "--json", report, "--html", page],
                     env=env, capture_output=True, text=True, timeout=600)
check(run.returncode == 1, "qconf run exits 1 (the plugin gets cases wrong): %d" % run.returncode)
if not os.path.exists(page):
    print(run.stdout[-3000:], run.stderr[-3000:])
    sys.exit(1)
expected = json.load(open(report))


def browse(path, *extra, dump=True):
    """Loads a page in headless Chromium: (dumped DOM, console messages)."""
    profile = tempfile.mkdtemp(prefix="qconf-chromium-")
    try:
        p = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
             *extra, *(["--dump-dom"] if dump else []), "file://" + os.path.abspath(path)],
            capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    # Console messages, e.g. [1:2:1122/074334.444:INFO:CONSOLE:1] "Uncaught TypeError: ..."
    console = [l for l in p.stderr.splitlines() if re.search(r":CONSOLE[:(]\d+\)?\]", l)]
    return p.stdout, console


class Dom(html.parser.HTMLParser):
    """The parts of the dumped DOM the test looks at."""

    def __init__(self):
        super().__init__()
        self.stack, self.rows, self.cells, self.selfcheck = [], [], {}, None
        self.plots = self.svgs = self.bad_points = self.charts_failing = 0
        self.failures, self.text = [], ""
        self.row = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        self.stack.append(tag)
        if tag == "tr" and "data-op" in a and "qconf-matrix" in self.context:
            self.row = a["data-op"]
            self.rows.append(self.row)
        if tag == "table" and a.get("id") == "qconf-matrix":
            self.context = "qconf-matrix"
        if tag == "td" and self.row and "data-verdict" in a:
            self.cell = (self.row, a["data-verdict"])
            self.cells[self.cell] = ""
        if tag == "div" and a.get("id") == "qconf-selfcheck":
            self.selfcheck = a
        if tag == "div" and "plot" in cls:
            self.plots += 1
        if tag == "svg":
            self.svgs += 1
        if tag == "circle" and "bad" in cls:
            self.bad_points += 1
        if tag == "figure" and "v-FAIL" in cls:
            self.charts_failing += 1
        if tag == "article" and "failure" in cls:
            self.failures.append(a.get("data-case"))

    context = ""

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()
        if tag == "table" and self.context == "qconf-matrix":
            self.context = ""
            self.row = None
        if tag == "tr":
            self.row = None
        if tag == "td":
            self.cell = None

    def handle_data(self, data):
        if self.cell:
            self.cells[self.cell] += data
        self.text += data


dom_text, console = browse(page)
for line in console:
    print("  console: " + line)
check(not console, "no console message while loading the report (%d)" % len(console))
d = Dom()
d.feed(dom_text)
check(d.selfcheck is not None and d.selfcheck.get("data-status") == "ok",
      "the page's script ran to the end: %s" % d.selfcheck)
ops = sorted(expected["ops"])
check(d.rows == ops, "matrix rows are the %d ops of the run" % len(ops))
wrong = [(op, v, d.cells.get((op, v)), n) for op, counts in expected["ops"].items()
         for v, n in counts.items() if d.cells.get((op, v), "").strip() != str(n)]
check(not wrong, "matrix counts equal the JSON report's (first differences: %s)" % wrong[:3])
failing = [c["id"] for c in expected["cases"]
           if c["verdict"] in ("FAIL", "UNIMPLEMENTED", "CRASH", "TIMEOUT")]
check(len(failing) >= 2 and sorted(d.failures) == sorted(failing),
      "a failure section for each of the %d failing cases" % len(failing))
check("npu_convert_weight_to_int4pack/ascending_0_to_7" in failing, "the exact FAIL is reported")
check("first differing stage: acc" in d.text, "the bounded FAIL names its first differing stage")
check("repro:" in d.text and "--filter 'npu_convert_weight_to_int4pack/ascending_0_to_7'"
      in d.text, "failures carry the repro command")
check(d.plots > 0 and d.svgs == d.plots and d.selfcheck and
      d.selfcheck.get("data-charts") == str(d.plots),
      "one chart drawn per bounded stage (%d plots, %d svg)" % (d.plots, d.svgs))
check(d.charts_failing >= 1 and d.bad_points >= 1,
      "the bounded FAIL is charted with points over the bound (%d)" % d.bad_points)

# The capture must be able to fail: a script error, and a fetch the page's policy blocks.
src = open(page, encoding="utf-8").read()
for name, inject in [("script_error", "<script>null.qconf_missing();</script>"),
                     ("external_fetch", '<img src="http://example.invalid/x.png" alt="">')]:
    broken = os.path.join(work, "broken_%s.html" % name)
    open(broken, "w", encoding="utf-8").write(src.replace("</footer>", inject + "</footer>", 1))
    _, c = browse(broken)
    check(len(c) >= 1, "a page with a planted %s is caught (%d console lines)" % (name, len(c)))

if os.environ.get("QCONF_HTML_SCREENSHOT"):
    shot = os.environ["QCONF_HTML_SCREENSHOT"]
    browse(page, "--screenshot=" + os.path.abspath(shot), "--window-size=1400,1000", dump=False)
    print("screenshot: " + shot)

print("html_report_test: %s" % ("OK" if not failures else "%d check(s) failed" % len(failures)))
sys.exit(1 if failures else 0)
