#include "data/cifar.h"

#include "data/gz_file.h"
#include "runtime/error.h"

namespace onnas::data {

Dataset load_cifar10(std::span<const std::string> batch_files) {
  if (batch_files.empty()) fail("load_cifar10: no batch files given");
  Dataset d;
  d.C = 3;
  d.H = kCifarSide;
  d.W = kCifarSide;
  d.num_classes = kCifar10Classes;
  d.source = batch_files[0];
  for (const std::string& path : batch_files) {
    GzFile f(path, "CIFAR-10 batch");
    // A plain file's size tells at once whether it holds whole records.
    if (f.plain() && f.size() % uint64_t(kCifarRecordBytes) != 0)
      fail("CIFAR-10 batch file '{}' is {} bytes, not a multiple of the {}-byte record (1 label + {} pixels): truncated "
           "or not a CIFAR-10 batch",
           path, f.size(), kCifarRecordBytes, kCifarImageBytes);
    if (f.plain()) {  // exact sizes, so the pixels hold no slack (Dataset::bytes)
      d.pixels.reserve(d.pixels.size() + size_t(f.size() / uint64_t(kCifarRecordBytes)) * size_t(kCifarImageBytes));
      d.labels.reserve(d.labels.size() + size_t(f.size() / uint64_t(kCifarRecordBytes)));
    }
    std::vector<uint8_t> record(static_cast<size_t>(kCifarRecordBytes));
    int64_t records = 0;
    for (;;) {
      uint64_t got = f.read_up_to(record.data(), record.size());
      if (got == 0) break;
      if (got != record.size())
        fail("CIFAR-10 batch file '{}' ends inside record {} ({} of {} bytes): truncated or not a CIFAR-10 batch", path,
             records, got, kCifarRecordBytes);
      if (record[0] >= kCifar10Classes)
        fail("CIFAR-10 batch file '{}': record {} has label {}, expected 0..9", path, records, int(record[0]));
      d.labels.push_back(record[0]);
      d.pixels.insert(d.pixels.end(), record.begin() + 1, record.end());  // kept as stored
      ++records;
    }
    if (records == 0) fail("CIFAR-10 batch file '{}' is empty", path);
    d.N += records;
  }
  d.pixels.shrink_to_fit();  // a gzip'ed batch grew them geometrically
  d.labels.shrink_to_fit();
  return d;
}

Dataset load_cifar10_dir(const std::string& dir, Split split) {
  std::vector<std::string> files;
  if (split == Split::train) {
    for (int i = 1; i <= 5; ++i) files.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(dir + "/test_batch.bin");
  }
  return load_cifar10(files);
}

}  // namespace onnas::data
