// The fast CPU kernels compiled for AVX2 + FMA (chosen at run time by cpu_dispatch.cpp; see cpu_variant.h).
#if defined(__x86_64__)
#define SFT_CPU_VARIANT avx2
#define SFT_CPU_VARIANT_NAME "avx2"
#define SFT_CPU_TARGET "avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt"
#define SFT_CPU_VEC_FLOATS 8
#include "backend/cpu/cpu_attention.cpp"
#include "backend/cpu/cpu_frozen.cpp"
#include "backend/cpu/fast_backend.cpp"
#endif
