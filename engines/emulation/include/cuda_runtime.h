// Emulation build: stands in for the CUDA runtime header (see engines/emulation/README.md).
#pragma once
#include "emu/runtime.h"
