// Compares the tensors of two safetensors files (a meta cell from a P-rank run against
// the one-process run's): the same names, dtypes and shapes, and every element within
//   |a - b| <= atol + rtol * |b|.
// Prints the largest differences; exit status 0 when within tolerance, 1 otherwise
// (2 on bad use or unreadable files).
//
//   compare_tensors one.safetensors two.safetensors --rtol 1e-4 --atol 1e-6
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "runtime/serialize/safetensors.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: compare_tensors A.safetensors B.safetensors [--rtol R] [--atol A]\n");
    return 2;
  }
  double rtol = 0, atol = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--rtol") rtol = std::atof(argv[i + 1]);
    else if (flag == "--atol") atol = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "compare_tensors: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  try {
    const onnas::SafetensorsFile a = onnas::read_safetensors(argv[1]), b = onnas::read_safetensors(argv[2]);
    bool ok = a.tensors.size() == b.tensors.size();
    if (!ok) std::printf("tensor counts differ: %zu against %zu\n", a.tensors.size(), b.tensors.size());
    double worst_abs = 0, worst_rel = 0;
    std::string worst_name;
    long long elements = 0, differing = 0, outside = 0;
    for (const onnas::SafetensorsTensor& ta : a.tensors) {
      const onnas::SafetensorsTensor* tb = b.find(ta.name);
      if (!tb) {
        std::printf("%s: only in %s\n", ta.name.c_str(), argv[1]);
        ok = false;
        continue;
      }
      if (ta.dtype != tb->dtype || !(ta.shape == tb->shape)) {
        std::printf("%s: dtype or shape differs\n", ta.name.c_str());
        ok = false;
        continue;
      }
      const onnas::Tensor x = ta.tensor(), y = tb->tensor();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const double u = ta.dtype == onnas::DType::f32 ? double(x.f32()[i]) : double(x.i32()[i]);
        const double v = ta.dtype == onnas::DType::f32 ? double(y.f32()[i]) : double(y.i32()[i]);
        const double d = std::fabs(u - v);
        ++elements;
        if (!(d == 0)) ++differing;  // NaN counts as differing
        if (!(d <= atol + rtol * std::fabs(v))) ++outside;
        if (d > worst_abs || std::isnan(d)) worst_abs = d, worst_name = ta.name;
        if (std::fabs(v) > 0) worst_rel = std::fmax(worst_rel, d / std::fabs(v));
      }
    }
    std::printf("%lld elements, %lld differ, %lld outside atol %g + rtol %g; largest |a-b| %.3g (%s), largest relative "
                "%.3g\n",
                elements, differing, outside, atol, rtol, worst_abs, worst_name.c_str(), worst_rel);
    return ok && outside == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_tensors: %s\n", e.what());
    return 2;
  }
}
