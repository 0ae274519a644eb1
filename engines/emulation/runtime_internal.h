// State shared by the emulator's runtime.cpp and trace.cpp.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "emu/pipeline.h"
#include "emu/runtime.h"
#include "emu/wmma.h"

namespace emu {

constexpr size_t kSmemCapacity = 256 * 1024;  // above any GPU's opt-in limit (227 KiB on sm_90)
constexpr size_t kGuardBytes = 4096;
constexpr size_t kSmemAlign = 128;

struct Barrier {
    std::mutex m;
    std::condition_variable cv;
    int expected = 0, arrived = 0;
    uint64_t generation = 0;

    void reset(int n);
    void arrive_and_wait(char const* what);
    void drop();  // a thread left the kernel: it counts as arrived from now on
};

struct Launch {
    std::string name;
    dim3 grid, block;
    int nthreads = 0;
    size_t smem = 0;
    unsigned max_blocks = 0;
    std::function<void()> const* body = nullptr;
    Barrier team;  // the emulator's own block boundaries, never dropped
    Barrier block_barrier;
    std::vector<std::unique_ptr<Barrier>> warp_barriers;
    std::vector<struct ThreadState*> states;  // each team thread's, for the trace's merge
};

struct AsyncCopy {
    void* dst;
    void const* src;
    size_t size, zfill;
};

struct TraceRecord {
    uintptr_t pc, addr;
    uint32_t occurrence;
    uint16_t size;
    uint8_t store, buffer;  // buffer: kSharedBuffer or the index of a registered global buffer
};

struct ThreadState {
    Launch* launch = nullptr;
    int tid = 0, warp = 0, lane = 0;
    bool in_kernel = false, exited = false;
    int untraced = 0;
    std::vector<AsyncCopy> current;                       // copies of the batch not yet committed
    std::deque<std::vector<AsyncCopy>> pending;           // committed batches, oldest first
    std::unordered_map<uintptr_t, uint32_t> occurrences;  // per access site, this block
    std::vector<TraceRecord> log;
};

extern thread_local ThreadState t_state;

ThreadState& current_thread(char const* what);
cudaError_t set_error(cudaError_t err, std::string detail);
void register_launch_bounds(char const* kernel, int max_threads);

// trace.cpp
void trace_launch_begin(Launch& L);
void trace_block_begin();
void trace_block_end(Launch& L);
void trace_thread_access(uintptr_t addr, uint32_t size, bool store, void const* site);

}  // namespace emu
