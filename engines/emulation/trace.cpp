// The emulator's access trace: which warp-level memory requests a kernel makes, and what they
// cost on the hardware's memory system: global requests in 32-byte sectors, shared requests in
// bank-conflict ways. Only the trace build (ASAP_EMU_TRACE) records; hooks.cpp feeds it every
// load and store of the instrumented kernel source, and wmma.h / cp.async add the warp-level
// requests they stand for. `python -m asap_deploy.kernel_report` drives it.
#include "runtime_internal.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

extern "C" unsigned char emu_dynamic_smem[];

namespace emu {
namespace {

constexpr uint8_t kSharedBuffer = 255;
constexpr uint32_t kOccurrenceCap = 64;  // requests analysed per site, lane and block

struct Buffer {
    uintptr_t begin, end;
    std::string name;
};

struct SiteStats {
    uint64_t analyzed = 0, executions = 0;
    double sum_ways = 0, max_ways = 0;
    uint64_t useful = 0, sector_bytes = 0;
};

using SiteKey = std::tuple<uintptr_t, uint8_t, bool, bool>;  // pc, buffer, store, modeled

struct Session {
    bool active = false;
    std::vector<Buffer> buffers;
    std::map<SiteKey, SiteStats> sites;
    std::mutex m;
};

Session g_session;

bool trace_build() {
#ifdef ASAP_EMU_TRACE
    return true;
#else
    return false;
#endif
}

// Conflict degree of a shared request: accesses wider than 4 bytes are served in phases of
// 128 bytes (half-warps for 8 bytes, quarter-warps for 16); within a phase, the degree is the
// largest number of distinct 32-bit words that fall in one of the 32 banks.
double shared_ways(std::vector<LaneAccess> const& lanes, double* worst) {
    uint32_t width = 4;
    for (auto const& a : lanes) width = std::max(width, a.size);
    size_t const per_phase = width <= 4 ? 32 : 128 / width;
    double cost = 0, phases = 0;
    std::vector<uintptr_t> words;  // word addresses of one phase, bank in the low bits' order
    for (size_t first = 0; first < lanes.size(); first += per_phase) {
        words.clear();
        for (size_t l = first; l < std::min(lanes.size(), first + per_phase); ++l)
            if (lanes[l].size)
                for (uintptr_t w = lanes[l].addr / 4; w <= (lanes[l].addr + lanes[l].size - 1) / 4; ++w)
                    words.push_back(w);
        if (words.empty()) continue;
        // distinct words per bank: sort by (bank, word), count unique words in each bank
        std::sort(words.begin(), words.end(),
                  [](uintptr_t a, uintptr_t b) { return (a % 32 != b % 32) ? a % 32 < b % 32 : a < b; });
        words.erase(std::unique(words.begin(), words.end()), words.end());
        size_t degree = 1, run = 0;
        for (size_t i = 0; i < words.size(); ++i) {
            run = (i > 0 && words[i] % 32 == words[i - 1] % 32) ? run + 1 : 1;
            degree = std::max(degree, run);
        }
        cost += static_cast<double>(degree);
        phases += 1;
        *worst = std::max(*worst, static_cast<double>(degree));
    }
    return phases > 0 ? cost / phases : 1.0;
}

// Bytes requested, and 32-byte sectors touched.
std::pair<uint64_t, uint64_t> global_traffic(std::vector<LaneAccess> const& lanes) {
    std::vector<std::pair<uintptr_t, uintptr_t>> r;
    for (auto const& a : lanes)
        if (a.size) r.emplace_back(a.addr, a.addr + a.size);
    std::sort(r.begin(), r.end());
    uint64_t useful = 0, sectors = 0;
    uintptr_t covered = 0, last_sector = ~uintptr_t{0};
    for (auto const& [b, e] : r) {
        uintptr_t const start = std::max(b, covered);
        if (e > start) useful += e - start;
        covered = std::max(covered, e);
        for (uintptr_t sct = b / 32; sct <= (e - 1) / 32; ++sct)
            if (last_sector == ~uintptr_t{0} || sct > last_sector) {
                ++sectors;
                last_sector = sct;
            }
    }
    return {useful, sectors * 32};
}

void add_request(SiteKey const& key, std::vector<LaneAccess> const& lanes) {
    if (std::get<1>(key) != kSharedBuffer && std::get<1>(key) >= g_session.buffers.size())
        fatal("trace: bad buffer %d pc %lx", std::get<1>(key), (unsigned long)std::get<0>(key));
    SiteStats& s = g_session.sites[key];
    s.analyzed += 1;
    if (std::get<1>(key) == kSharedBuffer) {
        double worst = 1;
        s.sum_ways += shared_ways(lanes, &worst);
        s.max_ways = std::max(s.max_ways, worst);
    } else {
        auto const [useful, sectors] = global_traffic(lanes);
        s.useful += useful;
        s.sector_bytes += sectors;
    }
}

int classify(uintptr_t addr, uint32_t size) {
    Launch const* L = t_state.launch;
    auto const base = reinterpret_cast<uintptr_t>(emu_dynamic_smem);
    if (L && addr >= base && addr + size <= base + L->smem) return kSharedBuffer;
    for (size_t i = 0; i < g_session.buffers.size(); ++i)
        if (addr >= g_session.buffers[i].begin && addr + size <= g_session.buffers[i].end) return static_cast<int>(i);
    return -1;
}

}  // namespace

bool tracing() { return trace_build() && g_session.active && t_state.in_kernel; }

void trace_launch_begin(Launch&) {}

void trace_block_begin() {
    t_state.log.clear();
    t_state.occurrences.clear();
}

void trace_thread_access(uintptr_t addr, uint32_t size, bool store, void const* site) {
    ThreadState& ts = t_state;
    if (!trace_build() || !g_session.active || !ts.in_kernel || ts.untraced) return;
    // The library's standard-library code may be the instrumented copy the linker kept from
    // the kernel's translation unit: its accesses must not re-enter the log they modify.
    Untraced const reentry;
    int const buffer = classify(addr, size);
    if (buffer < 0) return;  // the thread's stack, kernel parameters, constants
    uintptr_t const pc = reinterpret_cast<uintptr_t>(site);
    uintptr_t const key = pc | static_cast<uintptr_t>(buffer) << 48 | static_cast<uintptr_t>(store) << 56;
    uint32_t const occ = ts.occurrences[key]++;
    if (occ < kOccurrenceCap)
        ts.log.push_back(
            {pc, addr, occ, static_cast<uint16_t>(size), static_cast<uint8_t>(store), static_cast<uint8_t>(buffer)});
}

__attribute__((noinline)) void vector_copy(void* dst, void const* src, unsigned bytes) {
    void const* site = __builtin_return_address(0);
    trace_thread_access(reinterpret_cast<uintptr_t>(src), bytes, false, site);
    trace_thread_access(reinterpret_cast<uintptr_t>(dst), bytes, true, site);
    memcpy(dst, src, bytes);
}

void trace_warp_request(bool store, LaneAccess const* lanes, int n) {
    if (!tracing()) return;
    uintptr_t const pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
    std::vector<LaneAccess> v(lanes, lanes + n);
    int const buffer = classify(lanes[0].addr, lanes[0].size);
    if (buffer < 0) return;
    std::lock_guard<std::mutex> lock(g_session.m);
    SiteKey const key{pc, static_cast<uint8_t>(buffer), store, true};
    add_request(key, v);
    g_session.sites[key].executions += 1;
}

// Merge the block's per-thread logs into warp-level requests: lane accesses made by the same
// instruction (site) the same number of times before belong to one request, which is what SIMT
// execution issues together.
void trace_block_end(Launch& L) {
    if (!trace_build() || !g_session.active) return;
    std::lock_guard<std::mutex> lock(g_session.m);
    int const warps = (L.nthreads + 31) / 32;
    struct KeyHash {
        size_t operator()(std::tuple<uintptr_t, uint8_t, bool, uint32_t> const& k) const {
            return std::hash<uintptr_t>()(std::get<0>(k) * 1000003u ^ std::get<3>(k) * 131u ^ std::get<1>(k) * 7u ^
                                          std::get<2>(k));
        }
    };
    for (int w = 0; w < warps; ++w) {
        std::unordered_map<std::tuple<uintptr_t, uint8_t, bool, uint32_t>, std::vector<LaneAccess>, KeyHash> requests;
        std::map<SiteKey, uint64_t> executions;
        for (int lane = 0; lane < 32 && w * 32 + lane < L.nthreads; ++lane) {
            ThreadState const* ts = L.states[w * 32 + lane];
            for (TraceRecord const& r : ts->log) {
                if (r.buffer != kSharedBuffer && r.buffer >= g_session.buffers.size())
                    fatal("trace: bad record thread %d buffer %d pc %lx size %d occ %u", w * 32 + lane, r.buffer,
                          (unsigned long)r.pc, r.size, r.occurrence);
                auto& req = requests[{r.pc, r.buffer, r.store != 0, r.occurrence}];
                if (req.empty()) req.resize(32, LaneAccess{0, 0});
                req[lane] = LaneAccess{r.addr, r.size};
            }
            for (auto const& [key, count] : ts->occurrences) {
                SiteKey const sk{key & ((uintptr_t{1} << 48) - 1), static_cast<uint8_t>(key >> 48 & 0xff),
                                 (key >> 56) != 0, false};
                executions[sk] = std::max<uint64_t>(executions[sk], count);
            }
        }
        for (auto const& [k, lanes] : requests)
            add_request(SiteKey{std::get<0>(k), std::get<1>(k), std::get<2>(k), false}, lanes);
        for (auto const& [sk, n] : executions) g_session.sites[sk].executions += n;
    }
}

}  // namespace emu

extern "C" int asap_emu_is_trace_build(void) { return emu::trace_build() ? 1 : 0; }

extern "C" void asap_emu_trace_begin(void) {
    std::lock_guard<std::mutex> lock(emu::g_session.m);
    emu::g_session.active = true;
    emu::g_session.buffers.clear();
    emu::g_session.sites.clear();
}

extern "C" int asap_emu_trace_register(void const* p, size_t bytes, char const* name) {
    std::lock_guard<std::mutex> lock(emu::g_session.m);
    if (emu::g_session.buffers.size() >= 200) return -1;
    auto const b = reinterpret_cast<uintptr_t>(p);
    emu::g_session.buffers.push_back({b, b + bytes, name});
    return static_cast<int>(emu::g_session.buffers.size()) - 1;
}

// JSON of every site: {"sites": [{pc_offset, space, buffer, store, modeled, analyzed,
// executions, mean_ways, max_ways, useful_bytes, sector_bytes}]}. Returns the length needed;
// writes only when it fits `capacity`. Ends the session.
extern "C" long asap_emu_trace_end(char* out, size_t capacity) {
    std::lock_guard<std::mutex> lock(emu::g_session.m);
    Dl_info info{};
    dladdr(reinterpret_cast<void const*>(&asap_emu_trace_end), &info);
    auto const base = reinterpret_cast<uintptr_t>(info.dli_fbase);
    std::string json = "{\"sites\": [";
    bool first = true;
    for (auto const& [key, s] : emu::g_session.sites) {
        auto const [pc, buffer, store, modeled] = key;
        bool const shared = buffer == emu::kSharedBuffer;
        char row[512];
        std::snprintf(row, sizeof(row),
                      "%s{\"pc_offset\": %lu, \"space\": \"%s\", \"buffer\": \"%s\", \"store\": %s, \"modeled\": %s, "
                      "\"analyzed\": %lu, \"executions\": %lu, \"mean_ways\": %.6f, \"max_ways\": %.1f, "
                      "\"useful_bytes\": %lu, \"sector_bytes\": %lu}",
                      first ? "" : ", ", static_cast<unsigned long>(pc - base), shared ? "shared" : "global",
                      shared ? "shared" : emu::g_session.buffers[buffer].name.c_str(), store ? "true" : "false",
                      modeled ? "true" : "false", static_cast<unsigned long>(s.analyzed),
                      static_cast<unsigned long>(s.executions), s.analyzed ? s.sum_ways / s.analyzed : 0.0, s.max_ways,
                      static_cast<unsigned long>(s.useful), static_cast<unsigned long>(s.sector_bytes));
        json += row;
        first = false;
    }
    json += "]}";
    emu::g_session.active = false;
    if (json.size() + 1 <= capacity) memcpy(out, json.c_str(), json.size() + 1);
    return static_cast<long>(json.size() + 1);
}
