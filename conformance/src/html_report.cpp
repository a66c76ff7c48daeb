// The HTML report of a run: one self-contained page (inline CSS, JS and SVG, a Content Security
// Policy that forbids every fetch), readable without JavaScript except for the charts.
//   - header: implementation, golden dir and set, time, qconf version, counts;
//   - the op x verdict matrix; a count opens that op's case list filtered to that verdict;
//   - every failing case: first differing stage, first mismatches, the repro command;
//   - every BOUNDED stage: |got - exact| against the bound per element (log-log scatter; the
//     diagonal is the bound), with the error statistics of verdict.h.
// All text from fixtures, results files and implementations is escaped; the chart data is
// embedded as JSON with '<', '>' and '&' written as \u escapes.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <sstream>

#include "qconf/conformance/runner.h"

#ifndef QCONF_VERSION
#define QCONF_VERSION "unknown"
#endif

namespace qconf::conf {

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t')
          o += ' ';
        else
          o += c;
    }
  }
  return o;
}

namespace {

constexpr Verdict kVerdicts[] = {Verdict::kPass,          Verdict::kFail,    Verdict::kMistrusted,
                                 Verdict::kUnimplemented, Verdict::kSkipped, Verdict::kCrash,
                                 Verdict::kTimeout};

std::string vname(Verdict v) { return std::string(verdict_name(v)); }

std::string num(double v, const char* fmt = "%.4g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// JSON text that is safe inside a <script> element: no '<', '>' or '&' at all.
std::string script_safe(const std::string& json) {
  std::string o;
  for (char c : json) {
    if (c == '<')
      o += "\\u003c";
    else if (c == '>')
      o += "\\u003e";
    else if (c == '&')
      o += "\\u0026";
    else
      o += c;
  }
  return o;
}

const char* kStyle = R"css(
:root{--pass:#1a7f37;--fail:#cf222e;--mistrusted:#bf8700;--unimplemented:#8250df;
--skipped:#6e7781;--crash:#82071e;--timeout:#bc4c00;--line:#d0d7de;--bg2:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;
color:#1f2328;background:#fff}
header,main{max-width:1300px;margin:0 auto;padding:0 20px}
header{padding-top:16px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
var(--line);padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.result{display:inline-block;font-weight:700;padding:2px 10px;border-radius:4px;color:#fff}
.result.PASS{background:var(--pass)}.result.FAIL{background:var(--fail)}
table{border-collapse:collapse}
table.meta td{padding:1px 12px 1px 0;vertical-align:top}table.meta td:first-child{color:#59636e}
nav{margin:10px 0;display:flex;gap:16px;flex-wrap:wrap}
#qconf-matrix th,#qconf-matrix td{border:1px solid var(--line);padding:3px 8px}
#qconf-matrix thead th{background:var(--bg2);position:sticky;top:0}
#qconf-matrix tbody th{text-align:left;font-weight:400}
#qconf-matrix td{text-align:right;min-width:64px;font-variant-numeric:tabular-nums}
#qconf-matrix td.zero{color:#c4c9cf}
#qconf-matrix td.nz a{color:#fff;font-weight:600;text-decoration:none;display:block}
#qconf-matrix td.nz a:hover{text-decoration:underline}
#qconf-matrix tfoot td,#qconf-matrix tfoot th{font-weight:700;background:var(--bg2)}
.v-PASS.nz,.badge.v-PASS{background:var(--pass)}.v-FAIL.nz,.badge.v-FAIL{background:var(--fail)}
.v-MISTRUSTED.nz,.badge.v-MISTRUSTED{background:var(--mistrusted)}
.v-UNIMPLEMENTED.nz,.badge.v-UNIMPLEMENTED{background:var(--unimplemented)}
.v-SKIPPED.nz,.badge.v-SKIPPED{background:var(--skipped)}
.v-CRASH.nz,.badge.v-CRASH{background:var(--crash)}
.v-TIMEOUT.nz,.badge.v-TIMEOUT{background:var(--timeout)}
.badge{color:#fff;border-radius:3px;padding:0 5px;font-size:11px;font-weight:700;
display:inline-block;min-width:44px;text-align:center}
article.failure{border:1px solid var(--line);border-left:4px solid var(--fail);border-radius:4px;
padding:6px 12px;margin:10px 0}
article.failure h3{margin:4px 0}
table.mm{margin:4px 0 6px}table.mm th,table.mm td{border:1px solid var(--line);padding:1px 8px;
text-align:left}table.mm th{background:var(--bg2)}
.repro{background:var(--bg2);border:1px solid var(--line);border-radius:4px;padding:4px 8px;
overflow-x:auto;white-space:pre}
details.op{border:1px solid var(--line);border-radius:4px;margin:6px 0;padding:2px 10px}
details.op summary{cursor:pointer;padding:3px 0}
table.cases td{padding:1px 8px;border-top:1px solid #eaeef2;vertical-align:top}
table.cases td.num{text-align:right;font-variant-numeric:tabular-nums;color:#59636e}
.filter-note{margin:4px 0;color:#59636e}.filter-note button{margin-left:8px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:4px;padding:6px;width:372px}
figure.chart.v-FAIL{border-color:var(--fail)}
figcaption{font-size:12px;margin-bottom:4px;overflow-wrap:anywhere}
svg .frame{fill:none;stroke:#8c959f}svg .grid{stroke:#eaeef2}svg .diag{stroke:var(--fail);
stroke-dasharray:5 3}svg .floor{stroke:#8c959f;stroke-dasharray:2 3}
svg text{font-size:10px;fill:#59636e}svg .ok{fill:var(--pass);fill-opacity:.55}
svg .bad{fill:var(--fail)}
.muted{color:#59636e}
footer{max-width:1300px;margin:30px auto;padding:0 20px;color:#59636e;font-size:12px}
)css";

// Plain ES5 so it runs in any browser; everything it needs is in the page.
const char* kScript = R"js(
(function () {
  'use strict';
  var SVGNS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function log10(v) { return Math.log(v) / Math.LN10; }
  // pts: [[err, bound, index], ...] with bound > 0 and err >= 0.
  function scatter(pts) {
    var W = 360, H = 300, L = 50, R = 10, T = 8, B = 44, FLOOR = 16;
    var pw = W - L - R, ph = H - T - B - FLOOR;
    var lo = Infinity, hi = -Infinity;
    pts.forEach(function (p) {
      if (p[0] > 0) { lo = Math.min(lo, p[0]); hi = Math.max(hi, p[0]); }
      lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]);
    });
    var a = Math.floor(log10(lo)), b = Math.ceil(log10(hi));
    if (b <= a) b = a + 1;
    function x(v) { return L + (log10(v) - a) / (b - a) * pw; }
    function y(v) { return T + ph - (log10(v) - a) / (b - a) * ph; }
    var floorY = T + ph + FLOOR / 2 + 2;
    var svg = el('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img'});
    var step = Math.max(1, Math.ceil((b - a) / 7));
    for (var d = a; d <= b; d += step) {
      var v = Math.pow(10, d);
      el('line', {x1: x(v), x2: x(v), y1: T, y2: T + ph + FLOOR, 'class': 'grid'}, svg);
      el('line', {x1: L, x2: L + pw, y1: y(v), y2: y(v), 'class': 'grid'}, svg);
      var tx = el('text', {x: x(v), y: T + ph + FLOOR + 12, 'text-anchor': 'middle'}, svg);
      tx.textContent = '1e' + d;
      var ty = el('text', {x: L - 4, y: y(v) + 3, 'text-anchor': 'end'}, svg);
      ty.textContent = '1e' + d;
    }
    el('line', {x1: L, x2: L + pw, y1: floorY, y2: floorY, 'class': 'floor'}, svg);
    var tz = el('text', {x: L - 4, y: floorY + 3, 'text-anchor': 'end'}, svg);
    tz.textContent = '0';
    el('rect', {x: L, y: T, width: pw, height: ph + FLOOR, 'class': 'frame'}, svg);
    el('line', {x1: x(Math.pow(10, a)), y1: y(Math.pow(10, a)), x2: x(Math.pow(10, b)),
                y2: y(Math.pow(10, b)), 'class': 'diag'}, svg);
    var xl = el('text', {x: L + pw / 2, y: H - 4, 'text-anchor': 'middle'}, svg);
    xl.textContent = 'bound (derived from the exact result)';
    var yl = el('text', {x: 10, y: T + ph / 2, 'text-anchor': 'middle',
                         transform: 'rotate(-90 10 ' + (T + ph / 2) + ')'}, svg);
    yl.textContent = '|got \u2212 exact|';
    pts.forEach(function (p) {
      var bad = p[0] > p[1];
      var c = el('circle', {cx: x(p[1]), cy: p[0] > 0 ? y(p[0]) : floorY, r: bad ? 3 : 2.5,
                            'class': bad ? 'bad' : 'ok'}, svg);
      var t = el('title', {}, c);
      t.textContent = 'element ' + p[2] + ': |err| ' + p[0] + ', bound ' + p[1] +
                      (bad ? ' (exceeds the bound)' : '');
    });
    return svg;
  }
  function drawCharts() {
    var node = document.getElementById('qconf-bounded-data');
    var data = node ? JSON.parse(node.textContent) : [];
    var plots = document.querySelectorAll('div.plot');
    for (var i = 0; i < plots.length; ++i) {
      var pts = data[+plots[i].getAttribute('data-series')];
      if (!pts) throw new Error('chart ' + i + ' has no data');
      if (pts.length) plots[i].appendChild(scatter(pts));
      else plots[i].textContent = 'no element with a finite, positive bound';
    }
    return plots.length;
  }
  function filterCases(section, verdict) {
    var rows = section.querySelectorAll('tr.case');
    var shown = 0;
    for (var i = 0; i < rows.length; ++i) {
      var hide = !!verdict && rows[i].getAttribute('data-verdict') !== verdict;
      rows[i].hidden = hide;
      shown += hide ? 0 : 1;
    }
    var note = section.querySelector('.filter-note');
    note.textContent = '';
    if (verdict) {
      note.appendChild(document.createTextNode('showing the ' + shown + ' ' + verdict +
                                               ' case(s) only'));
      var b = document.createElement('button');
      b.type = 'button';
      b.textContent = 'show all';
      b.addEventListener('click', function () { filterCases(section, ''); });
      note.appendChild(b);
    }
  }
  function wireMatrix() {
    var links = document.querySelectorAll('#qconf-matrix a[data-target]');
    for (var i = 0; i < links.length; ++i) {
      links[i].addEventListener('click', function (ev) {
        var section = document.getElementById(this.getAttribute('data-target'));
        if (!section) return;
        section.open = true;
        filterCases(section, this.getAttribute('data-verdict') || '');
      });
    }
    return document.querySelectorAll('#qconf-matrix tbody tr').length;
  }
  var marker = document.createElement('div');
  marker.id = 'qconf-selfcheck';
  marker.className = 'muted';
  try {
    var charts = drawCharts();
    var rows = wireMatrix();
    var sections = document.querySelectorAll('details.op').length;
    if (rows !== sections) throw new Error(rows + ' matrix rows but ' + sections + ' op sections');
    marker.setAttribute('data-status', 'ok');
    marker.setAttribute('data-charts', charts);
    marker.setAttribute('data-rows', rows);
    marker.textContent = 'page self-check: ok (' + rows + ' ops, ' + charts + ' charts)';
  } catch (e) {
    marker.setAttribute('data-status', 'error');
    marker.textContent = 'page self-check failed: ' + e;
    console.error('qconf report self-check failed: ' + e);
  }
  document.querySelector('footer').appendChild(marker);
})();
)js";

struct ChartRef {
  const CaseResult* r;
  const StageResult* s;
  size_t series;
};

std::string mismatch_table(const StageResult& s) {
  std::ostringstream o;
  o << "<table class=\"mm mono\"><thead><tr><th>at</th><th>flat</th><th>expected</th>"
       "<th>got</th><th>difference</th></tr></thead><tbody>";
  for (const Mismatch& m : s.first)
    o << "<tr><td>" << html_escape(m.coords) << "</td><td>" << m.index << "</td><td>"
      << html_escape(m.expected) << "</td><td>" << html_escape(m.got) << "</td><td>"
      << html_escape(m.difference) << "</td></tr>";
  o << "</tbody></table>";
  if (s.mismatches > static_cast<int64_t>(s.first.size()))
    o << "<div class=\"muted\">... and " << (s.mismatches - static_cast<int64_t>(s.first.size()))
      << " more</div>";
  return o.str();
}

}  // namespace

std::string html_report(const std::vector<CaseResult>& results, const HtmlReportInfo& info) {
  // Group by op (sorted, as in the console summary); index ops and failing cases for anchors.
  std::map<std::string, std::vector<const CaseResult*>> by_op;
  for (const auto& r : results) by_op[r.c->op].push_back(&r);
  std::map<std::string, size_t> op_index;
  for (const auto& [op, rs] : by_op) op_index.emplace(op, op_index.size());
  std::map<const CaseResult*, size_t> failure_index;
  for (const auto& r : results)
    if (verdict_is_failure(r.verdict)) failure_index.emplace(&r, failure_index.size());
  int total[7] = {0, 0, 0, 0, 0, 0, 0};
  for (const auto& r : results) ++total[static_cast<int>(r.verdict)];
  const bool failed = any_failure(results);

  // Chart data: one series per BOUNDED stage result.
  std::vector<ChartRef> charts;
  std::string data = "[";
  int64_t points = 0;
  for (const auto& [op, rs] : by_op)
    for (const CaseResult* r : rs)
      for (const StageResult& s : r->stages) {
        // Bounded stages with at least one element of finite, positive bound.
        if (s.sample_stride == 0 || s.samples.empty()) continue;
        data += charts.empty() ? "\n[" : ",\n[";
        for (size_t k = 0; k < s.samples.size(); ++k) {
          const BoundSample& x = s.samples[k];
          data += (k ? ",[" : "[") + num(x.err) + "," + num(x.bound) + "," +
                  std::to_string(x.index) + "]";
        }
        data += "]";
        points += static_cast<int64_t>(s.samples.size());
        charts.push_back({r, &s, charts.size()});
      }
  data += "]";

  std::ostringstream o;
  const std::string title = "qconf conformance: " + info.implementation;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<link rel=\"icon\" href=\"data:,\">\n<title>" << html_escape(title) << "</title>\n<style>"
    << kStyle << "</style>\n</head>\n<body>\n";

  // ---- header ----
  o << "<header>\n<h1>qconf conformance report <span class=\"result " << (failed ? "FAIL" : "PASS")
    << "\" id=\"qconf-result\">" << (failed ? "FAIL" : "PASS")
    << "</span></h1>\n<table class=\"meta\">\n";
  auto meta = [&](const char* k, const std::string& v, bool code) {
    if (v.empty()) return;
    o << "<tr><td>" << k << "</td><td>" << (code ? "<code>" : "") << html_escape(v)
      << (code ? "</code>" : "") << "</td></tr>\n";
  };
  meta("implementation", info.implementation, true);
  meta("golden dir", info.golden_dir, true);
  meta("golden set", info.golden_set.empty() ? "" : "MANIFEST.json sha256 " + info.golden_set,
       true);
  meta("command", info.command, true);
  meta("generated", utc_now(), false);
  meta("qconf version", QCONF_VERSION, false);
  std::string counts =
      std::to_string(results.size()) + " cases in " + std::to_string(by_op.size()) + " ops:";
  for (Verdict v : kVerdicts)
    if (total[static_cast<int>(v)] || v == Verdict::kPass || v == Verdict::kFail)
      counts += " " + std::to_string(total[static_cast<int>(v)]) + " " + vname(v) + ",";
  counts.pop_back();
  meta("cases", counts, false);
  o << "</table>\n<nav><a href=\"#matrix\">Op &times; verdict</a><a href=\"#failures\">Failures ("
    << failure_index.size() << ")</a><a href=\"#bounded\">Bounded stages (" << charts.size()
    << ")</a><a href=\"#cases\">Cases by op</a></nav>\n</header>\n<main>\n";

  // ---- matrix ----
  o << "<section id=\"matrix\">\n<h2>Op &times; verdict</h2>\n"
    << "<p class=\"muted\">A count opens the op's cases, filtered to that verdict.</p>\n"
    << "<table id=\"qconf-matrix\">\n<thead><tr><th>op</th>";
  for (Verdict v : kVerdicts) o << "<th>" << vname(v) << "</th>";
  o << "<th>total</th></tr></thead>\n<tbody>\n";
  for (const auto& [op, rs] : by_op) {
    int counts_op[7] = {0, 0, 0, 0, 0, 0, 0};
    for (const CaseResult* r : rs) ++counts_op[static_cast<int>(r->verdict)];
    const std::string target = "op-" + std::to_string(op_index[op]);
    o << "<tr data-op=\"" << html_escape(op) << "\"><th><a href=\"#" << target
      << "\" data-target=\"" << target << "\">" << html_escape(op) << "</a></th>";
    for (Verdict v : kVerdicts) {
      const int n = counts_op[static_cast<int>(v)];
      if (n == 0) {
        o << "<td class=\"zero\" data-verdict=\"" << vname(v) << "\">0</td>";
      } else {
        o << "<td class=\"nz v-" << vname(v) << "\" data-verdict=\"" << vname(v) << "\"><a href=\"#"
          << target << "\" data-target=\"" << target << "\" data-verdict=\"" << vname(v) << "\">"
          << n << "</a></td>";
      }
    }
    o << "<td>" << rs.size() << "</td></tr>\n";
  }
  o << "</tbody>\n<tfoot><tr><th>all ops</th>";
  for (Verdict v : kVerdicts) o << "<td>" << total[static_cast<int>(v)] << "</td>";
  o << "<td>" << results.size() << "</td></tr></tfoot>\n</table>\n</section>\n";

  // ---- failures ----
  o << "<section id=\"failures\">\n<h2>Failures (" << failure_index.size() << ")</h2>\n";
  if (failure_index.empty()) o << "<p>No case failed.</p>\n";
  for (const auto& r : results) {
    if (!verdict_is_failure(r.verdict)) continue;
    o << "<article class=\"failure\" id=\"fail-" << failure_index[&r] << "\" data-case=\""
      << html_escape(r.c->id) << "\">\n<h3><span class=\"badge v-" << vname(r.verdict) << "\">"
      << vname(r.verdict) << "</span> <code>" << html_escape(r.c->id) << "</code></h3>\n<div>"
      << html_escape(r.message) << "</div>\n";
    if (!r.failing_stage.empty())
      o << "<div>first differing stage: <b><code>" << html_escape(r.failing_stage)
        << "</code></b></div>\n";
    for (const StageResult& s : r.stages) {
      if (s.verdict != Verdict::kFail) continue;
      if (r.message != "stage " + s.stage + ": " + s.message)  // not already the headline
        o << "<div>stage <code>" << html_escape(s.stage) << "</code>: " << html_escape(s.message)
          << "</div>\n";
      if (!s.first.empty()) o << mismatch_table(s) << "\n";
    }
    o << "<div>repro:</div><div class=\"repro mono\">" << html_escape(r.repro) << "</div>\n"
      << "</article>\n";
  }
  o << "</section>\n";

  // ---- bounded stages ----
  o << "<section id=\"bounded\">\n<h2>Bounded stages (" << charts.size() << ")</h2>\n";
  if (charts.empty()) {
    o << "<p>No bounded stage was checked.</p>\n";
  } else {
    o << "<p class=\"muted\">One point per element: the element's derived bound (x) against "
         "|got &minus; exact| (y), both on log scales; the dashed red diagonal is the bound, so "
         "points above it fail (drawn red). Elements computed exactly sit on the dotted "
         "&ldquo;0&rdquo; line. Each chart shows every element when the stage has at most "
      << kMaxBoundSamples << "; larger stages show every k-th element (stated per chart), plus "
      << "up to " << kMaxFailingSamples << " failing elements and the element with the largest "
      << "|err|/bound. Statistics (max, rms and mean of (got &minus; exact)/bound) cover every "
      << "element. " << points << " points in all.</p>\n";
    std::string current_op;
    for (const ChartRef& c : charts) {
      if (c.r->c->op != current_op) {
        if (!current_op.empty()) o << "</div>\n";
        current_op = c.r->c->op;
        o << "<h3><code>" << html_escape(current_op) << "</code></h3>\n<div class=\"charts\">\n";
      }
      const StageResult& s = *c.s;
      o << "<figure class=\"chart v-" << vname(s.verdict) << "\" data-case=\""
        << html_escape(c.r->c->id) << "\" data-stage=\"" << html_escape(s.stage) << "\">"
        << "<figcaption><code>" << html_escape(c.r->c->id) << "</code> stage <b>"
        << html_escape(s.stage) << "</b> <span class=\"badge v-" << vname(s.verdict) << "\">"
        << vname(s.verdict) << "</span><br>max |err|/bound " << num(s.stats.max_err_over_bound)
        << ", rms " << num(s.stats.rms_err_over_bound) << ", mean "
        << num(s.stats.mean_err_over_bound, "%+.3g") << "; " << s.samples.size() << " of "
        << s.stats.elements << " elements shown"
        << (s.sample_stride > 1
                ? " (every " + std::to_string(s.sample_stride) + "-th, the failing, the worst)"
                : std::string())
        << "</figcaption><div class=\"plot\" data-series=\"" << c.series << "\"></div></figure>\n";
    }
    o << "</div>\n";
  }
  o << "</section>\n";

  // ---- cases by op ----
  o << "<section id=\"cases\">\n<h2>Cases by op</h2>\n";
  for (const auto& [op, rs] : by_op) {
    int counts_op[7] = {0, 0, 0, 0, 0, 0, 0};
    for (const CaseResult* r : rs) ++counts_op[static_cast<int>(r->verdict)];
    std::string summary;
    for (Verdict v : kVerdicts)
      if (counts_op[static_cast<int>(v)])
        summary += (summary.empty() ? "" : ", ") + std::to_string(counts_op[static_cast<int>(v)]) +
                   " " + vname(v);
    o << "<details class=\"op\" id=\"op-" << op_index[op] << "\" data-op=\"" << html_escape(op)
      << "\"><summary><code>" << html_escape(op) << "</code> &mdash; " << summary
      << "</summary>\n<div class=\"filter-note\"></div>\n<table class=\"cases\"><tbody>\n";
    for (const CaseResult* r : rs) {
      o << "<tr class=\"case\" data-verdict=\"" << vname(r->verdict) << "\"><td><span "
        << "class=\"badge v-" << vname(r->verdict) << "\">" << vname(r->verdict)
        << "</span></td><td>";
      auto f = failure_index.find(r);
      if (f != failure_index.end())
        o << "<a href=\"#fail-" << f->second << "\"><code>" << html_escape(r->c->id)
          << "</code></a>";
      else
        o << "<code>" << html_escape(r->c->id) << "</code>";
      o << "</td><td class=\"num\">" << num(r->ms, "%.2f") << " ms</td><td>"
        << html_escape(r->message) << "</td></tr>\n";
    }
    o << "</tbody></table>\n</details>\n";
  }
  o << "</section>\n</main>\n<footer>Written by qconf " << QCONF_VERSION
    << ". Self-contained: no network access, no external files.</footer>\n"
    << "<script type=\"application/json\" id=\"qconf-bounded-data\">" << script_safe(data)
    << "</script>\n<script>" << kScript << "</script>\n</body>\n</html>\n";
  return o.str();
}

}  // namespace qconf::conf
