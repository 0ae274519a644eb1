// Trace build only: the kernel source is compiled with GCC's kernel-address instrumentation in
// call mode (-fsanitize=kernel-address --param asan-instrumentation-with-call-threshold=0), which
// makes every load and store call one of these with its address; the call's return address
// identifies the instruction. Nothing is checked here: the trace only records.
#include "runtime_internal.h"

#define ASAP_EMU_HOOK(kind, bytes, is_store)                                          \
    extern "C" void __asan_##kind##bytes##_noabort(uintptr_t addr) {                  \
        emu::trace_thread_access(addr, bytes, is_store, __builtin_return_address(0)); \
    }

ASAP_EMU_HOOK(load, 1, false)
ASAP_EMU_HOOK(load, 2, false)
ASAP_EMU_HOOK(load, 4, false)
ASAP_EMU_HOOK(load, 8, false)
ASAP_EMU_HOOK(load, 16, false)
ASAP_EMU_HOOK(store, 1, true)
ASAP_EMU_HOOK(store, 2, true)
ASAP_EMU_HOOK(store, 4, true)
ASAP_EMU_HOOK(store, 8, true)
ASAP_EMU_HOOK(store, 16, true)

extern "C" void __asan_loadN_noabort(uintptr_t addr, size_t n) {
    emu::trace_thread_access(addr, static_cast<uint32_t>(n), false, __builtin_return_address(0));
}
extern "C" void __asan_storeN_noabort(uintptr_t addr, size_t n) {
    emu::trace_thread_access(addr, static_cast<uint32_t>(n), true, __builtin_return_address(0));
}
extern "C" void __asan_handle_no_return() {}
extern "C" void __asan_before_dynamic_init(char const*) {}
extern "C" void __asan_after_dynamic_init() {}
