// The scheme registry and the shape-formula evaluator (qconf/schemes/scheme.h).
#include <cctype>
#include <stdexcept>

#include "qconf/schemes/scheme.h"

namespace qconf::schemes {

std::string format_name(Format f) {
  return f == Format::kModelSlim ? "modelslim" : "compressed-tensors";
}

DTypeRule exact(std::vector<std::string> allowed) {
  DTypeRule r;
  r.kind = DTypeRule::Kind::kExact;
  r.allowed = std::move(allowed);
  return r;
}
DTypeRule params_dtype() {
  DTypeRule r;
  r.kind = DTypeRule::Kind::kParams;
  return r;
}
DTypeRule by_params(std::string bf16, std::string fp16) {
  DTypeRule r;
  r.kind = DTypeRule::Kind::kByParams;
  r.bf16 = std::move(bf16);
  r.fp16 = std::move(fp16);
  return r;
}

std::vector<std::string> DTypeRule::accepted(const std::string& pdt) const {
  switch (kind) {
    case Kind::kExact:
      return allowed;
    // param.data.copy_(loaded) converts any float; the value is then rounded to pdt.
    case Kind::kParams:
      return {"F32", "BF16", "F16"};
    case Kind::kByParams:
      return {pdt == "F16" ? fp16 : bf16};
  }
  return {};
}

std::string DTypeRule::describe() const {
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : "|") + x;
    return s;
  };
  switch (kind) {
    case Kind::kExact:
      return join(allowed);
    case Kind::kParams:
      return "pdt (F32|BF16|F16, rounded to the params dtype at load)";
    case Kind::kByParams:
      return bf16 + " (bf16 model) / " + fp16 + " (fp16 model)";
  }
  return "?";
}

SchemeRegistry& SchemeRegistry::instance() {
  static SchemeRegistry r;
  return r;
}

void SchemeRegistry::add(SchemeDef def) {
  bool known = false;
  for (const auto& l : kLayerTypes) known |= l == def.layer_type;
  if (!known)
    throw std::logic_error("scheme " + def.quant_type + ": unknown layer type \"" + def.layer_type +
                           "\"");
  auto key = std::make_pair(def.quant_type, def.layer_type);
  if (schemes_.count(key))
    throw std::logic_error("scheme (" + def.quant_type + ", " + def.layer_type +
                           ") registered twice (vllm-ascend's registry raises ValueError)");
  schemes_.emplace(key, std::move(def));
}

const SchemeDef* SchemeRegistry::find(const std::string& q, const std::string& l) const {
  auto it = schemes_.find({q, l});
  return it == schemes_.end() ? nullptr : &it->second;
}

std::vector<const SchemeDef*> SchemeRegistry::all() const {
  std::vector<const SchemeDef*> v;
  for (const auto& [k, d] : schemes_) v.push_back(&d);
  return v;
}

std::vector<std::string> SchemeRegistry::layer_types_of(const std::string& q) const {
  std::vector<std::string> v;
  for (const auto& l : kLayerTypes)
    if (schemes_.count({q, l})) v.push_back(l);
  return v;
}

// ---- formulas: a small recursive-descent evaluator --------------------------------------------
namespace {
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

struct Parser {
  const std::string& s;
  const std::map<std::string, int64_t>& syms;
  size_t i = 0;
  std::string unbound, error;

  void ws() {
    while (i < s.size() && is_space(s[i])) ++i;
  }
  bool fail(const std::string& e) {
    if (error.empty() && unbound.empty()) error = e;
    return false;
  }
  bool expect(char c, const char* what) {
    ws();
    if (i >= s.size() || s[i] != c) return fail(s + ": expected " + what);
    ++i;
    return true;
  }
  bool expr(int64_t& v) {
    if (!term(v)) return false;
    for (;;) {
      ws();
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        char op = s[i++];
        int64_t r;
        if (!term(r)) return false;
        v = op == '+' ? v + r : v - r;
      } else {
        return true;
      }
    }
  }
  bool term(int64_t& v) {
    if (!factor(v)) return false;
    for (;;) {
      ws();
      if (i < s.size() && (s[i] == '*' || s[i] == '/')) {
        char op = s[i++];
        int64_t r;
        if (!factor(r)) return false;
        if (op == '*') {
          v *= r;
        } else {
          if (r == 0) return fail(s + ": division by zero");
          if (v % r != 0)
            return fail(s + ": " + std::to_string(v) + " is not divisible by " + std::to_string(r));
          v /= r;
        }
      } else {
        return true;
      }
    }
  }
  bool factor(int64_t& v) {
    ws();
    if (i >= s.size()) return fail(s + ": unexpected end");
    if (s[i] == '(') {
      ++i;
      if (!expr(v)) return false;
      return expect(')', "')'");
    }
    if (is_digit(s[i])) {
      v = 0;
      while (i < s.size() && is_digit(s[i])) v = v * 10 + (s[i++] - '0');
      return true;
    }
    if (is_alpha(s[i])) {
      std::string name;
      while (i < s.size() && (is_alnum(s[i]) || s[i] == '_')) name += s[i++];
      if (name == "cdiv") {
        int64_t a, b;
        if (!expect('(', "cdiv(a, b)") || !expr(a) || !expect(',', "',' in cdiv") || !expr(b) ||
            !expect(')', "')'"))
          return false;
        if (b <= 0) return fail(s + ": cdiv by " + std::to_string(b));
        v = (a + b - 1) / b;
        return true;
      }
      auto it = syms.find(name);
      if (it == syms.end()) {
        if (unbound.empty() && error.empty()) unbound = name;
        return false;
      }
      v = it->second;
      return true;
    }
    return fail(s + ": unexpected '" + std::string(1, s[i]) + "'");
  }
};
}  // namespace

FormulaResult eval_formula(const std::string& formula, const std::map<std::string, int64_t>& syms) {
  Parser p{formula, syms, 0, "", ""};
  int64_t v = 0;
  FormulaResult r;
  if (p.expr(v)) {
    p.ws();
    if (p.i != formula.size()) {
      r.error = formula + ": trailing characters";
      return r;
    }
    r.value = v;
    return r;
  }
  r.unbound = p.unbound;
  r.error = p.error;
  return r;
}

std::optional<std::pair<std::string, int64_t>> solve_formula(
    const std::string& f, int64_t actual, const std::map<std::string, int64_t>& syms) {
  std::string s;
  for (char c : f)
    if (!is_space(c)) s += c;
  auto is_sym = [&](const std::string& t) {
    if (t.empty() || !is_alpha(t[0])) return false;
    for (char c : t)
      if (!is_alnum(c) && c != '_') return false;
    return t != "cdiv" && !syms.count(t);
  };
  auto value_of = [&](const std::string& t) { return eval_formula(t, syms).value; };
  if (is_sym(s)) return std::make_pair(s, actual);
  for (char op : {'*', '/'}) {
    auto pos = s.find(op);
    if (pos == std::string::npos) continue;
    std::string a = s.substr(0, pos), b = s.substr(pos + 1);
    if (a.find_first_of("*/+-(),") != std::string::npos ||
        b.find_first_of("*/+-(),") != std::string::npos)
      continue;
    if (op == '*') {
      auto vb = value_of(b), va = value_of(a);
      if (is_sym(a) && vb && *vb != 0 && actual % *vb == 0) return std::make_pair(a, actual / *vb);
      if (is_sym(b) && va && *va != 0 && actual % *va == 0) return std::make_pair(b, actual / *va);
    } else if (is_sym(a)) {
      if (auto vb = value_of(b)) return std::make_pair(a, actual * *vb);
    }
  }
  return std::nullopt;
}

}  // namespace qconf::schemes
