// Emulation build: stands in for CUDA's FP16 header (see engines/emulation/README.md).
#pragma once
#include "emu/half.h"
