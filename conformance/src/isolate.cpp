// Crash and hang isolation: batches of cases run in a child process that reports one JSON line
// per case through a pipe. When the child dies or a case exceeds the timeout, that case gets
// CRASH or TIMEOUT and a new child resumes with the next case.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "qconf/conformance/guarded.h"
#include "qconf/conformance/runner.h"

namespace qconf::conf {

namespace {

constexpr int kExitInputWrite = 86;

void on_segv(int sig, siginfo_t* info, void*) {
  if (info && address_in_read_only_input(info->si_addr)) _exit(kExitInputWrite);
  signal(sig, SIG_DFL);
  raise(sig);
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) _exit(97);
    off += static_cast<size_t>(n);
  }
}

[[noreturn]] void child_main(int fd, const std::vector<const Case*>& cases, size_t first,
                             const Implementation& impl, const RunOptions& o) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
  for (size_t i = first; i < cases.size(); ++i) {
    CaseResult r = run_case(*cases[i], impl, o);
    write_all(fd, case_result_to_json(r).dump() + "\n");
  }
  close(fd);
  _exit(0);
}

std::string describe_death(int status) {
  if (WIFSIGNALED(status))
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  if (WIFEXITED(status) && WEXITSTATUS(status) == kExitInputWrite)
    return "wrote to an input (inputs are read-only)";
  if (WIFEXITED(status))
    return "the process exited with status " + std::to_string(WEXITSTATUS(status));
  return "the process died";
}

}  // namespace

std::vector<CaseResult> run_all_isolated(const std::vector<const Case*>& cases,
                                         const Implementation& impl, const RunOptions& o) {
  std::vector<CaseResult> results;
  results.reserve(cases.size());
  const bool tty = o.progress && isatty(STDERR_FILENO);
  std::fflush(nullptr);  // the child must not flush the parent's buffered output
  while (results.size() < cases.size()) {
    const size_t first = results.size();
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe() failed");
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork() failed");
    if (pid == 0) {
      close(fds[0]);
      child_main(fds[1], cases, first, impl, o);
    }
    close(fds[1]);
    std::string buf;
    bool timed_out = false;
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) {
        timed_out = true;
        break;
      }
      pollfd pfd{fds[0], POLLIN, 0};
      int pr = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) continue;
      char chunk[65536];
      ssize_t n = read(fds[0], chunk, sizeof chunk);
      if (n <= 0) break;  // EOF: the child finished or died
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        const Case* c = cases[results.size()];
        results.push_back(case_result_from_json(Json::parse(buf.substr(0, nl)), c));
        buf.erase(0, nl + 1);
        if (tty)
          std::fprintf(stderr, "\r[%zu/%zu] %-70.70s", results.size(), cases.size(), c->id.c_str());
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
      }
    }
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (results.size() < cases.size() &&
        (timed_out || !(WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
      // The case in flight is the culprit; the next child resumes after it.
      CaseResult r;
      r.c = cases[results.size()];
      r.verdict = timed_out ? Verdict::kTimeout : Verdict::kCrash;
      r.message = timed_out ? "no result within " + std::to_string(o.timeout_s) + " s"
                            : describe_death(status);
      r.repro = repro_line(impl, o, *r.c);
      results.push_back(std::move(r));
    } else if (results.size() < cases.size()) {
      throw std::runtime_error("isolated child exited early without reporting every case");
    }
  }
  if (tty) std::fprintf(stderr, "\r%*s\r", 90, "");
  return results;
}

// Error statistics can be +-Inf or NaN (a port that overflows a bounded stage); JSON has no such
// numbers (nlohmann writes null), so they travel as the strings "inf", "-inf" and "nan".
Json stat_to_json(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}
double stat_from_json(const Json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string s = j.get<std::string>();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  throw std::runtime_error("case result: bad statistic \"" + s + "\"");
}

Json case_result_to_json(const CaseResult& r) {
  Json j = Json::object();
  j["verdict"] = static_cast<int>(r.verdict);
  j["failing_stage"] = r.failing_stage;
  j["message"] = r.message;
  j["ms"] = r.ms;
  j["repro"] = r.repro;
  Json st = Json::array();
  for (const auto& s : r.stages) {
    Json js = Json::object();
    js["stage"] = s.stage;
    js["verdict"] = static_cast<int>(s.verdict);
    js["message"] = s.message;
    js["mismatches"] = s.mismatches;
    js["used_accept_set"] = s.used_accept_set;
    js["stats"] = {stat_to_json(s.stats.max_err_over_bound),
                   stat_to_json(s.stats.rms_err_over_bound),
                   stat_to_json(s.stats.mean_err_over_bound), s.stats.elements};
    Json first = Json::array();
    for (const auto& m : s.first)
      first.push_back({m.index, m.coords, m.expected, m.got, m.difference});
    js["first"] = std::move(first);
    if (!s.samples.empty()) {
      Json samples = Json::array();
      for (const auto& x : s.samples) samples.push_back({x.index, x.err, x.bound});
      js["samples"] = std::move(samples);
      js["sample_stride"] = s.sample_stride;
    }
    st.push_back(std::move(js));
  }
  j["stages"] = std::move(st);
  return j;
}

CaseResult case_result_from_json(const Json& j, const Case* c) {
  CaseResult r;
  r.c = c;
  r.verdict = static_cast<Verdict>(j.at("verdict").get<int>());
  r.failing_stage = j.at("failing_stage").get<std::string>();
  r.message = j.at("message").get<std::string>();
  r.ms = j.at("ms").get<double>();
  r.repro = j.at("repro").get<std::string>();
  for (const auto& js : j.at("stages")) {
    StageResult s;
    s.stage = js.at("stage").get<std::string>();
    s.verdict = static_cast<Verdict>(js.at("verdict").get<int>());
    s.message = js.at("message").get<std::string>();
    s.mismatches = js.at("mismatches").get<int64_t>();
    s.used_accept_set = js.at("used_accept_set").get<bool>();
    const Json& stt = js.at("stats");
    s.stats = {stat_from_json(stt[0]), stat_from_json(stt[1]), stat_from_json(stt[2]),
               stt[3].get<int64_t>()};
    for (const auto& m : js.at("first"))
      s.first.push_back({m[0].get<int64_t>(), m[1].get<std::string>(), m[2].get<std::string>(),
                         m[3].get<std::string>(), m[4].get<std::string>()});
    if (js.contains("samples")) {
      for (const auto& x : js.at("samples"))
        s.samples.push_back({x[0].get<int64_t>(), x[1].get<double>(), x[2].get<double>()});
      s.sample_stride = js.at("sample_stride").get<int64_t>();
    }
    r.stages.push_back(std::move(s));
  }
  return r;
}

}  // namespace qconf::conf
