// The fast CPU kernels compiled for AVX-512 (F/BW/DQ/VL + FMA; chosen at run time by cpu_dispatch.cpp; see
// cpu_variant.h). 512-bit vectors are requested explicitly: GCC otherwise prefers 256-bit ones on these targets.
#if defined(__x86_64__)
#define SFT_CPU_VARIANT avx512
#define SFT_CPU_VARIANT_NAME "avx512"
#define SFT_CPU_TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt,prefer-vector-width=512"
#define SFT_CPU_VEC_FLOATS 16
#include "backend/cpu/cpu_attention.cpp"
#include "backend/cpu/cpu_frozen.cpp"
#include "backend/cpu/fast_backend.cpp"
#endif
