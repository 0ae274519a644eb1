// Emulation build: stands in for CUDA's WMMA header (see engines/emulation/README.md).
#pragma once
#include "emu/wmma.h"
