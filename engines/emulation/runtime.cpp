// Runtime of the CUDA-on-CPU emulation (see README.md): launches, barriers, shared memory,
// pipeline copies, WMMA rules, device and function attributes, the error state, and the
// bookkeeping of the access trace (trace.cpp analyses it).
#include "runtime_internal.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define EMU_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define EMU_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define EMU_POISON(p, n) ((void)(p), (void)(n))
#define EMU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

// The dynamic shared memory of the block being run. The kernel source's `extern __shared__`
// array is bound to this symbol at link time (-Wl,--defsym), behind a guard zone.
extern "C" {
alignas(emu::kSmemAlign) unsigned char emu_dynamic_smem[emu::kSmemCapacity + emu::kGuardBytes];
}

namespace emu {

thread_local ThreadState t_state;

namespace {

// -- configuration -------------------------------------------------------------------------------
int env_int(char const* name, int fallback) {
    char const* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    long const x = std::strtol(v, &end, 10);
    if (*end || x <= 0) fatal("%s=%s is not a positive integer", name, v);
    return static_cast<int>(x);
}

// Read at every query, so a test can run cases under several limits in one process.
int smem_optin_bytes() {
    int const b = env_int("ASAP_EMU_SMEM_OPTIN", 65536);
    if (b > static_cast<int>(kSmemCapacity))
        fatal("ASAP_EMU_SMEM_OPTIN=%d exceeds what the emulator models (%zu bytes)", b, kSmemCapacity);
    return b;
}

// -- error state -------------------------------------------------------------------------------
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local std::string t_error_detail;

std::string format(char const* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(char const* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return buf;
}

// -- kernel names and launch bounds --------------------------------------------------------------
std::mutex g_registry_mutex;

std::map<std::string, int>& launch_bounds() {
    static std::map<std::string, int> m;
    return m;
}

std::map<void const*, int>& smem_grants() {
    static std::map<void const*, int> m;
    return m;
}

// Kernels live in an anonymous namespace, so their names are only in the library's .symtab.
std::string symtab_name(char const* file, uintptr_t offset) {
    std::ifstream f(file, std::ios::binary);
    if (!f) return "";
    std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (data.size() < sizeof(Elf64_Ehdr)) return "";
    auto const* eh = reinterpret_cast<Elf64_Ehdr const*>(data.data());
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) return "";
    if (eh->e_shoff + eh->e_shnum * sizeof(Elf64_Shdr) > data.size()) return "";
    auto const* sh = reinterpret_cast<Elf64_Shdr const*>(data.data() + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; ++i) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
        Elf64_Shdr const& strtab = sh[sh[i].sh_link];
        if (sh[i].sh_offset + sh[i].sh_size > data.size() || strtab.sh_offset + strtab.sh_size > data.size()) return "";
        auto const* sym = reinterpret_cast<Elf64_Sym const*>(data.data() + sh[i].sh_offset);
        size_t const n = sh[i].sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < n; ++k)
            if (ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC && sym[k].st_value == offset &&
                sym[k].st_name < strtab.sh_size)
                return data.data() + strtab.sh_offset + sym[k].st_name;
    }
    return "";
}

std::string demangle(std::string const& mangled) {
    int status = 0;
    char* d = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
    std::string out = status == 0 && d ? d : mangled;
    std::free(d);
    return out;
}

// "ns::(anonymous namespace)::generic_kernel<float, 2, true>(Args)" -> "generic_kernel"
std::string base_name(std::string full) {
    int depth = 0;
    for (size_t i = 0; i < full.size(); ++i) {
        char const c = full[i];
        if (c == '<') ++depth;
        if (c == '>') --depth;
        if (c == '(' && depth == 0 && i > 0 && full.compare(i, 20, "(anonymous namespace") != 0) {
            full.resize(i);
            break;
        }
    }
    if (!full.empty() && full.back() == '>') {
        depth = 0;
        for (size_t i = full.size(); i-- > 0;) {
            if (full[i] == '>') ++depth;
            if (full[i] == '<' && --depth == 0) {
                full.resize(i);
                break;
            }
        }
    }
    size_t const colon = full.rfind("::");
    return colon == std::string::npos ? full : full.substr(colon + 2);
}

std::string kernel_name(void const* func) {
    static std::map<void const*, std::string> cache;
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    auto it = cache.find(func);
    if (it != cache.end()) return it->second;
    std::string name;
    Dl_info info{};
    if (dladdr(func, &info) && info.dli_fname) {
        if (info.dli_sname && info.dli_saddr == func)
            name = info.dli_sname;
        else
            name = symtab_name(info.dli_fname,
                               reinterpret_cast<uintptr_t>(func) - reinterpret_cast<uintptr_t>(info.dli_fbase));
    }
    name = name.empty() ? format("kernel@%p", func) : demangle(name);
    cache[func] = name;
    return name;
}

// -- barriers ------------------------------------------------------------------------------------
int barrier_timeout_s() {
    static int const s = env_int("ASAP_EMU_BARRIER_TIMEOUT", 300);
    return s;
}

}  // namespace

void Barrier::reset(int n) {
    std::lock_guard<std::mutex> lock(m);
    expected = n;
    arrived = 0;
}

void Barrier::arrive_and_wait(char const* what) {
    std::unique_lock<std::mutex> lock(m);
    uint64_t const gen = generation;
    if (++arrived >= expected) {
        arrived = 0;
        ++generation;
        cv.notify_all();
        return;
    }
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(barrier_timeout_s());
    while (gen == generation)
        if (cv.wait_until(lock, deadline) == std::cv_status::timeout && gen == generation)
            fatal(
                "deadlock: block (%u,%u,%u) thread %u waited %d s at %s with %d of %d threads arrived "
                "(a barrier some threads never reach, or __syncthreads and __syncwarp interleaved differently)",
                blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, barrier_timeout_s(), what, arrived, expected);
}

void Barrier::drop() {
    std::lock_guard<std::mutex> lock(m);
    --expected;
    if (arrived > 0 && arrived >= expected) {
        arrived = 0;
        ++generation;
        cv.notify_all();
    }
}

namespace {

std::mutex g_launch_mutex;  // one emulated launch at a time: blocks share emu_dynamic_smem

void prepare_block(Launch& L) {
    // NaN everywhere (0xFF bytes are a NaN in FP32 and FP16), so shared memory read before it
    // is written shows up in the output; the guard zone behind the window catches overruns.
    EMU_UNPOISON(emu_dynamic_smem, kSmemCapacity + kGuardBytes);
    memset(emu_dynamic_smem, 0xff, L.smem + kGuardBytes);
    EMU_POISON(emu_dynamic_smem + L.smem, kSmemCapacity + kGuardBytes - L.smem);
    L.block_barrier.reset(L.nthreads);
    for (size_t w = 0; w < L.warp_barriers.size(); ++w)
        L.warp_barriers[w]->reset(std::min(32, L.nthreads - static_cast<int>(w) * 32));
}

void check_block(Launch& L) {
    EMU_UNPOISON(emu_dynamic_smem, kSmemCapacity + kGuardBytes);
    for (size_t i = 0; i < kGuardBytes; ++i)
        if (emu_dynamic_smem[L.smem + i] != 0xff)
            fatal(
                "%s, block (%u,%u,%u): shared memory written %zu bytes past the %zu bytes the launch "
                "requested (the kernel needs more dynamic shared memory than its host code asks for)",
                L.name.c_str(), blockIdx.x, blockIdx.y, blockIdx.z, i, L.smem);
}

void thread_main(Launch& L, int tid) {
    ThreadState& ts = t_state;
    ts = ThreadState{};
    ts.launch = &L;
    ts.tid = tid;
    ts.warp = tid / 32;
    ts.lane = tid % 32;
    L.states[tid] = &ts;
    blockDim = L.block;
    gridDim = L.grid;
    threadIdx = uint3{static_cast<unsigned>(tid % L.block.x), static_cast<unsigned>(tid / L.block.x % L.block.y),
                      static_cast<unsigned>(tid / (L.block.x * L.block.y))};
    unsigned const blocks = std::min<unsigned>(L.grid.x * L.grid.y * L.grid.z, L.max_blocks);
    for (unsigned blk = 0; blk < blocks; ++blk) {
        blockIdx = uint3{blk % L.grid.x, blk / L.grid.x % L.grid.y, blk / (L.grid.x * L.grid.y)};
        L.team.arrive_and_wait("the emulator's block start");
        if (tid == 0) prepare_block(L);
        L.team.arrive_and_wait("the emulator's block start");
        ts.exited = false;
        ts.in_kernel = true;
        trace_block_begin();
        (*L.body)();
        ts.in_kernel = false;
        ts.pending.clear();  // copies never waited for: the block's shared memory is gone
        ts.current.clear();
        ts.exited = true;
        L.block_barrier.drop();
        L.warp_barriers[ts.warp]->drop();
        L.team.arrive_and_wait("the emulator's block end");
        if (tid == 0) {
            check_block(L);
            trace_block_end(L);  // reads every thread's log: nobody leaves before it is done
        }
        L.team.arrive_and_wait("the emulator's block end");
    }
}

}  // namespace

cudaError_t set_error(cudaError_t err, std::string detail) {
    t_last_error = err;
    t_error_detail = std::move(detail);
    return err;
}

[[noreturn]] void fatal(char const* fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "asap emulator: %s\n", buf);
    std::fflush(stderr);
    std::abort();
}

ThreadState& current_thread(char const* what) {
    if (!t_state.in_kernel) fatal("%s called outside an emulated kernel", what);
    return t_state;
}

int lane() { return current_thread("a warp-level operation").lane; }
int warp() { return current_thread("a warp-level operation").warp; }

bool in_shared(void const* p, size_t bytes) {
    Launch const* L = t_state.launch;
    auto const a = reinterpret_cast<uintptr_t>(p), base = reinterpret_cast<uintptr_t>(emu_dynamic_smem);
    return L && a >= base && a + bytes <= base + L->smem;
}

void register_launch_bounds(char const* kernel, int max_threads) {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    launch_bounds()[kernel] = max_threads;
}

cudaError_t func_set_attribute(void const* func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return set_error(cudaErrorInvalidValue, format("function attribute %d is not modelled", attr));
    if (value < 0 || value > smem_optin_bytes())
        return set_error(
            cudaErrorInvalidValue,
            format("cudaFuncSetAttribute(MaxDynamicSharedMemorySize, %d) exceeds the device's opt-in limit "
                   "of %d bytes (ASAP_EMU_SMEM_OPTIN)",
                   value, smem_optin_bytes()));
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    smem_grants()[func] = value;
    return cudaSuccess;
}

cudaError_t launch(cudaLaunchConfig_t const* cfg, void const* func, std::function<void()> const& body) {
    if (t_state.in_kernel) fatal("a kernel launched from inside a kernel (dynamic parallelism is not modelled)");
    if (!cfg) return set_error(cudaErrorInvalidValue, "cudaLaunchKernelEx: NULL config");
    std::string const name = kernel_name(func);
    if (cfg->stream != nullptr)
        return set_error(
            cudaErrorInvalidValue,
            "the emulation build runs kernels synchronously on the CPU with host pointers: pass a NULL stream");
    dim3 const g = cfg->gridDim, b = cfg->blockDim;
    long const threads = static_cast<long>(b.x) * b.y * b.z;
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535 || threads == 0 || threads > 1024 || b.z > 64)
        return set_error(cudaErrorInvalidConfiguration,
                         format("%s: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)", name.c_str(), g.x,
                                g.y, g.z, b.x, b.y, b.z));
    int bounds = 1024;
    {
        std::lock_guard<std::mutex> lock(g_registry_mutex);
        auto it = launch_bounds().find(base_name(name));
        if (it != launch_bounds().end()) bounds = it->second;
    }
    if (threads > bounds)
        return set_error(
            cudaErrorLaunchOutOfResources,
            format("%s: a block of %ld threads exceeds its __launch_bounds__(%d)", name.c_str(), threads, bounds));
    size_t const smem = cfg->dynamicSmemBytes;
    if (smem > static_cast<size_t>(smem_optin_bytes()))
        return set_error(cudaErrorInvalidValue,
                         format("%s: %zu bytes of dynamic shared memory exceed the device's opt-in limit of %d "
                                "(ASAP_EMU_SMEM_OPTIN)",
                                name.c_str(), smem, smem_optin_bytes()));
    if (smem > 48 * 1024) {
        std::lock_guard<std::mutex> lock(g_registry_mutex);
        auto it = smem_grants().find(func);
        int const granted = it == smem_grants().end() ? 48 * 1024 : it->second;
        if (static_cast<int>(smem) > granted)
            return set_error(cudaErrorInvalidValue,
                             format("%s: %zu bytes of dynamic shared memory but cudaFuncSetAttribute granted %d",
                                    name.c_str(), smem, granted));
    }

    std::lock_guard<std::mutex> launch_lock(g_launch_mutex);
    Launch L;
    L.name = name;
    L.grid = g;
    L.block = b;
    L.nthreads = static_cast<int>(threads);
    L.smem = smem;
    L.body = &body;
    // The access report traces one block of a launch with the real grid (so strides between
    // cells are the real ones): ASAP_EMU_BLOCKS=N runs only the first N blocks.
    L.max_blocks = static_cast<unsigned>(env_int("ASAP_EMU_BLOCKS", 1 << 30));
    L.team.reset(L.nthreads);
    L.states.assign(L.nthreads, nullptr);
    for (int w = 0; w < (L.nthreads + 31) / 32; ++w) L.warp_barriers.emplace_back(new Barrier);
    trace_launch_begin(L);
    std::vector<std::thread> team;
    team.reserve(L.nthreads);
    for (int tid = 0; tid < L.nthreads; ++tid) team.emplace_back(thread_main, std::ref(L), tid);
    for (auto& t : team) t.join();
    return cudaSuccess;
}

// -- shared memory rules ---------------------------------------------------------------------------
void check_wmma_pointer(void const* p, unsigned ldm_bytes, unsigned row_bytes, char const* what) {
    ThreadState const& ts = current_thread(what);
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
        fatal("%s in %s: pointer %p is not 256-bit aligned (WMMA requires 32-byte alignment)", what,
              ts.launch->name.c_str(), p);
    if (ldm_bytes % 16 != 0 || ldm_bytes < row_bytes)
        fatal("%s in %s: ldm of %u bytes must be a multiple of 16 bytes and at least the tile row's %u bytes", what,
              ts.launch->name.c_str(), ldm_bytes, row_bytes);
}

Untraced::Untraced() { ++t_state.untraced; }
Untraced::~Untraced() { --t_state.untraced; }

}  // namespace emu

// -- CUDA runtime API --------------------------------------------------------------------------------
cudaError_t cudaGetDevice(int* device) {
    if (device) *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (!value || device != 0) return emu::set_error(cudaErrorInvalidDevice, "the emulator has one device, 0");
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock:
            *value = 1024;
            break;
        case cudaDevAttrMaxSharedMemoryPerBlock:
            *value = 48 * 1024;
            break;
        case cudaDevAttrMultiProcessorCount:
            *value = 1;
            break;
        case cudaDevAttrComputeCapabilityMajor:
            *value = emu::smem_optin_bytes() > 65536 ? 8 : 7;
            break;
        case cudaDevAttrComputeCapabilityMinor:
            *value = emu::smem_optin_bytes() > 65536 ? 0 : 5;
            break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin:
            *value = emu::smem_optin_bytes();
            break;
        default:
            return emu::set_error(cudaErrorInvalidValue, "device attribute not modelled");
    }
    return cudaSuccess;
}

cudaError_t cudaGetLastError() {
    cudaError_t const e = emu::t_last_error;
    emu::t_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() { return emu::t_last_error; }

char const* cudaGetErrorString(cudaError_t error) {
    static thread_local std::string text;
    char const* base = "unknown error";
    switch (error) {
        case cudaSuccess:
            return "no error";
        case cudaErrorInvalidValue:
            base = "invalid argument";
            break;
        case cudaErrorInvalidConfiguration:
            base = "invalid configuration argument";
            break;
        case cudaErrorInvalidDevice:
            base = "invalid device ordinal";
            break;
        case cudaErrorLaunchOutOfResources:
            base = "too many resources requested for launch";
            break;
    }
    text = emu::t_error_detail.empty() ? base : std::string(base) + " (emulator: " + emu::t_error_detail + ")";
    return text.c_str();
}

// -- cp.async --------------------------------------------------------------------------------------------
void __pipeline_memcpy_async(void* dst, void const* src, size_t size, size_t zfill) {
    emu::ThreadState& ts = emu::current_thread("__pipeline_memcpy_async");
    if (size != 4 && size != 8 && size != 16)
        emu::fatal("__pipeline_memcpy_async in %s: size %zu (must be 4, 8 or 16)", ts.launch->name.c_str(), size);
    if (reinterpret_cast<uintptr_t>(dst) % size || reinterpret_cast<uintptr_t>(src) % size)
        emu::fatal("__pipeline_memcpy_async in %s: %p <- %p not aligned to the %zu-byte copy", ts.launch->name.c_str(),
                   dst, src, size);
    if (!emu::in_shared(dst, size))
        emu::fatal("__pipeline_memcpy_async in %s: destination %p is not in the block's %zu bytes of shared memory",
                   ts.launch->name.c_str(), dst, ts.launch->smem);
    if (zfill > size) emu::fatal("__pipeline_memcpy_async: zfill %zu > size %zu", zfill, size);
    void const* site = __builtin_return_address(0);
    emu::trace_thread_access(reinterpret_cast<uintptr_t>(src), static_cast<uint32_t>(size - zfill), false, site);
    emu::trace_thread_access(reinterpret_cast<uintptr_t>(dst), static_cast<uint32_t>(size), true, site);
    ts.current.push_back({dst, src, size, zfill});
}

void __pipeline_commit() {
    emu::ThreadState& ts = emu::current_thread("__pipeline_commit");
    ts.pending.push_back(std::move(ts.current));
    ts.current.clear();
}

void __pipeline_wait_prior(size_t prior) {
    emu::ThreadState& ts = emu::current_thread("__pipeline_wait_prior");
    while (ts.pending.size() > prior) {
        for (emu::AsyncCopy const& c : ts.pending.front()) {
            memcpy(c.dst, c.src, c.size - c.zfill);
            memset(static_cast<char*>(c.dst) + (c.size - c.zfill), 0, c.zfill);
        }
        ts.pending.pop_front();
    }
}

// -- barriers --------------------------------------------------------------------------------------------
void __syncthreads() {
    emu::ThreadState& ts = emu::current_thread("__syncthreads");
    ts.launch->block_barrier.arrive_and_wait("__syncthreads");
}

void __syncwarp(unsigned mask) {
    emu::ThreadState& ts = emu::current_thread("__syncwarp");
    int const lanes = std::min(32, ts.launch->nthreads - ts.warp * 32);
    unsigned const full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    if (mask != full)
        emu::fatal("__syncwarp(0x%08x) in %s: only the warp's full mask (0x%08x) is modelled", mask,
                   ts.launch->name.c_str(), full);
    ts.launch->warp_barriers[ts.warp]->arrive_and_wait("__syncwarp");
}

// -- emulator C API --------------------------------------------------------------------------------------
extern "C" void asap_emu_register_launch_bounds(char const* kernel, int max_threads) {
    emu::register_launch_bounds(kernel, max_threads);
}

extern "C" int asap_emu_smem_optin(void) { return emu::smem_optin_bytes(); }
