// cp.async pipeline primitives (cuda_pipeline_primitives.h) with asynchronous semantics: a copy
// lands in shared memory only when a __pipeline_wait_prior that covers its batch returns, so a
// missing wait leaves the destination as the emulator filled it (NaN) and shows.
#pragma once

#include "core.h"

void __pipeline_memcpy_async(void* dst_shared, void const* src_global, size_t size_and_align, size_t zfill = 0);
void __pipeline_commit();
void __pipeline_wait_prior(size_t prior);
