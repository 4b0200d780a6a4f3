// Returning freed heap memory to the system. Compiling a step builds graphs and
// buffer lists that are freed once the step tables exist; glibc's malloc keeps those
// pages (resident) for later allocations that a planned run never makes. Callers
// that have just freed a transient peak (compilation, loading a data set) call
// release_free_heap() once, so the process's resident set is the plan again. Never on
// a hot path.
#pragma once

#include <cstddef>

namespace onnas {

void release_free_heap();

// Makes every block of 64 KiB or more come from the system and go back to it when
// freed (glibc: a fixed M_MMAP_THRESHOLD, which also stops malloc from raising the
// threshold after a large free). Transient tables of compilation and data loading then
// leave no resident holes behind. Called once at start-up by the tool.
void return_large_blocks_to_system();

// The bytes of memory the program holds now: malloc's blocks in use (glibc: every
// arena, and its mapped blocks) and the blocks Buffer maps itself. What a memory plan
// does not name of it is bookkeeping (names, samplers, tables). 0 from malloc on other
// C libraries.
size_t dynamic_memory_bytes();

}  // namespace onnas
