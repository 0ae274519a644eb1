// Emulation build: stands in for CUDA's pipeline primitives (see engines/emulation/README.md).
#pragma once
#include "emu/pipeline.h"
