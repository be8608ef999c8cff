// CPU kernel variants chosen at run time. The fast kernels (fast_backend.cpp, cpu_attention.cpp) are plain C++ loops
// the compiler vectorises; they are compiled several times, once per ISA level, each copy in its own namespace:
//   generic  baseline x86-64 (SSE2), or whatever the build flags give (SFT_NATIVE)
//   avx2     AVX2 + FMA + F16C                              (Haswell / Zen and newer)
//   avx512   AVX-512 F/BW/DQ/VL + FMA                       (Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4)
// A variant TU defines SFT_CPU_VARIANT / SFT_CPU_TARGET and then includes the kernel sources; SFT_CPU_TARGET_BEGIN
// is placed AFTER all #includes, so only our kernel code (and the OpenMP bodies outlined from it) is compiled for the
// higher ISA, while library/template code instantiated from headers keeps the baseline target: no AVX-512 copy of
// a shared inline function can leak into code that runs on an AVX2-only CPU. cpu_dispatch.cpp checks the CPU with
// __builtin_cpu_supports and picks the best variant. oneDNN dispatches its own matmul kernels the same way.
#pragma once

#ifndef SFT_CPU_VARIANT
#define SFT_CPU_VARIANT generic
#define SFT_CPU_VARIANT_NAME "generic"
#endif

#define SFT_CPU_PRAGMA(x) _Pragma(#x)
#define SFT_CPU_PRAGMA_EXPANDED(x) SFT_CPU_PRAGMA(x)  // expands SFT_CPU_TARGET before stringizing
#ifdef SFT_CPU_TARGET
#define SFT_CPU_TARGET_BEGIN SFT_CPU_PRAGMA(GCC push_options) SFT_CPU_PRAGMA_EXPANDED(GCC target(SFT_CPU_TARGET))
#define SFT_CPU_TARGET_END SFT_CPU_PRAGMA(GCC pop_options)
#else
#define SFT_CPU_TARGET_BEGIN
#define SFT_CPU_TARGET_END
#endif
