#include "apps/onnas/distributed.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef ONNAS_MPI
#include <mpi.h>
#endif

namespace onnas::app {

Distributed& Distributed::world() {
  static Distributed w;
  return w;
}

#ifdef ONNAS_MPI

namespace {

// MPI counts are int: exchange long arrays in pieces.
constexpr size_t kMaxPiece = size_t(1) << 28;

template <typename T>
void allreduce_in_place(T* data, size_t n, MPI_Datatype type, MPI_Op op) {
  for (size_t lo = 0; lo < n; lo += kMaxPiece)
    MPI_Allreduce(MPI_IN_PLACE, data + lo, int(std::min(kMaxPiece, n - lo)), type, op, MPI_COMM_WORLD);
}

// FNV-1a over the doubles' bits, a word at a time: the same on every rank when the
// bits are (a difference anywhere changes it with overwhelming likelihood).
uint64_t hash_words(const std::vector<double>& v) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (double x : v) {
    uint64_t w;
    std::memcpy(&w, &x, sizeof w);
    h = (h ^ w) * 0x100000001b3ull;
  }
  return h;
}

}  // namespace

bool Distributed::built_with_mpi() { return true; }

Distributed::Distributed() {
  int ready = 0;
  MPI_Initialized(&ready);
  if (!ready) {
    // Only the main thread calls MPI; the kernels' oneTBB workers never do.
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
}

Distributed::~Distributed() {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}

size_t Distributed::allreduce_fold(nas::FoldAverage& fold) {
  if (size_ == 1) return 0;
  const size_t n = fold.size();
  std::vector<double>& sum = fold.sum_terms();
  std::vector<double>& weighted = fold.weighted_terms();
  size_t bytes = 0;
  if (fold.weighting() == nas::FoldWeighting::softmax) {
    std::vector<float>& max = fold.max_terms();
    std::vector<float> global(max);
    allreduce_in_place(global.data(), n, MPI_FLOAT, MPI_MAX);
    bytes += n * sizeof(float);
    // The same rescaling as FoldAverage::merge: sums relative to the global maximum.
    // An element this rank did not cover (sum 0, maximum -inf) contributes nothing.
    for (size_t i = 0; i < n; ++i) {
      if (sum[i] > 0) {
        const double r = std::exp(double(max[i]) - double(global[i]));
        sum[i] *= r;
        weighted[i] *= r;
      }
      max[i] = global[i];
    }
  }
  // One exchange for both sums.
  std::vector<double> both(2 * n);
  std::copy(sum.begin(), sum.end(), both.begin());
  std::copy(weighted.begin(), weighted.end(), both.begin() + ptrdiff_t(n));
  allreduce_in_place(both.data(), both.size(), MPI_DOUBLE, MPI_SUM);
  bytes += both.size() * sizeof(double);
  std::copy(both.begin(), both.begin() + ptrdiff_t(n), sum.begin());
  std::copy(both.begin() + ptrdiff_t(n), both.end(), weighted.begin());

  // MPI does not promise that a reduction gives every rank the same bits; the ranks
  // must apply the same update, so check it (max of h and of ~h: min and max agree).
  const uint64_t h = hash_words(both);
  uint64_t check[2] = {h, ~h};
  MPI_Allreduce(MPI_IN_PLACE, check, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  bytes += sizeof(check);
  if (check[0] != h || check[1] != ~h) abort("the ranks' combined task folds differ (MPI reduction not reproducible)");
  return bytes;
}

size_t Distributed::gather_slots(std::span<double> slots) {
  if (size_ == 1) return 0;
  allreduce_in_place(slots.data(), slots.size(), MPI_DOUBLE, MPI_SUM);
  return slots.size_bytes();
}

void Distributed::barrier() {
  if (size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void Distributed::abort(const std::string& message) {
  std::fprintf(stderr, "onnas: error: rank %d of %d: %s\n", rank_, size_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

#else  // a job of one rank

bool Distributed::built_with_mpi() { return false; }
Distributed::Distributed() = default;
Distributed::~Distributed() = default;
size_t Distributed::allreduce_fold(nas::FoldAverage&) { return 0; }
size_t Distributed::gather_slots(std::span<double>) { return 0; }
void Distributed::barrier() {}

void Distributed::abort(const std::string& message) {
  std::fprintf(stderr, "onnas: error: rank 0 of 1: %s\n", message.c_str());
  std::exit(1);
}

#endif

}  // namespace onnas::app
