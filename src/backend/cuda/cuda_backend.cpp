// CudaBackend: memory, streams, cuBLASLt GEMMs (cached plans), and the Backend methods that launch the kernels of
// this folder. Every CUDA / cuBLASLt call is checked and named in the error (cuda_check.h).
#include "backend/cuda/cuda_backend.h"
#include "backend/device.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace sft::backend::cuda {

// ---------------------------------------------------------------------------------------------------------------
// errors

void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  throw Error(std::string("CUDA error in ") + call + " (" + (base ? base + 1 : file) + ":" + std::to_string(line) +
              "): " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
}

void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  throw Error(std::string("cuBLASLt error in ") + call + " (" + (base ? base + 1 : file) + ":" + std::to_string(line) +
              "): " + cublasLtGetStatusString(s) + " (" + cublasLtGetStatusName(s) + ")");
}

// ---------------------------------------------------------------------------------------------------------------
// device description (sft info)

std::string device_description() {
  std::ostringstream os;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    os << "CUDA: no usable device (" << cudaGetErrorString(e) << ")";
    cudaGetLastError();  // clear
    return os.str();
  }
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  os << "CUDA runtime " << runtime / 1000 << "." << (runtime % 1000) / 10 << ", driver " << driver / 1000 << "."
     << (driver % 1000) / 10 << ", " << count << " device" << (count == 1 ? "" : "s");
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    char mem[32];
    std::snprintf(mem, sizeof mem, "%.1f GiB", double(p.totalGlobalMem) / double(1ull << 30));
    os << "\n  cuda:" << i << " " << p.name << ", sm_" << p.major << p.minor << ", " << mem << ", "
       << p.multiProcessorCount << " SMs";
  }
  return os.str();
}

// ---------------------------------------------------------------------------------------------------------------
// construction, memory

CudaBackend::CudaBackend(int device_index) : device_(device_index) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw Error(std::string("cuda backend: no usable CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(e) +
                ")");
  }
  SFT_CHECK(device_index >= 0 && device_index < count, "cuda backend: device ", device_index,
            " requested but ", count, " CUDA device(s) are visible");
  SFT_CUDA_CHECK(cudaSetDevice(device_));
  SFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  SFT_CUBLAS_CHECK(cublasLtCreate(&lt_));
  SFT_CUBLAS_CHECK(cublasCreate(&blas_));
  SFT_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  workspace_bytes_ = size_t(32) << 20;
  workspace_ = raw_alloc(workspace_bytes_);
  const char* fp32 = std::getenv("SFT_CUDA_ATTN_FP32");
  attn_tf32_ = !(fp32 && std::string(fp32) == "1");
}

struct CudaBackend::GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool fallback = false;  // cuBLASLt found no algorithm: use cublasGemmStridedBatchedEx
  ~GemmPlan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

CudaBackend::~CudaBackend() {
  // Never throws: errors here are sticky ones already reported by an earlier checked call.
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  plans_.clear();
  for (auto& [p, n] : sizes_) cudaFree(p);  // workspace, scratch and anything the user did not free
  sizes_.clear();
  if (lt_) cublasLtDestroy(lt_);
  if (blas_) cublasDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
  cudaGetLastError();
}

std::string CudaBackend::name() const { return "cuda:" + std::to_string(device_); }

void* CudaBackend::raw_alloc(size_t bytes) {
  const size_t rounded = std::max<size_t>(256, (bytes + 255) / 256 * 256);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, rounded);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error("cuda backend: out of device memory allocating " + std::to_string(bytes) + " bytes (cudaMalloc: " +
                cudaGetErrorString(e) + "; backend holds " + std::to_string(current_bytes_ >> 20) + " MiB, device free " +
                std::to_string(free_b >> 20) + " of " + std::to_string(total_b >> 20) + " MiB)");
  }
  sizes_[p] = rounded;
  current_bytes_ += int64_t(rounded);
  peak_bytes_ = std::max(peak_bytes_, current_bytes_);
  return p;
}

void CudaBackend::raw_free(void* p) {
  auto it = sizes_.find(p);
  if (it != sizes_.end()) {
    current_bytes_ -= int64_t(it->second);
    sizes_.erase(it);
  }
  cudaFree(p);  // unchecked on purpose: free() is called from destructors (a sticky error resurfaces elsewhere)
}

void* CudaBackend::alloc(size_t bytes) {
  void* p = raw_alloc(bytes);
  SFT_CUDA_CHECK(cudaMemsetAsync(p, 0, std::max<size_t>(bytes, 1), stream_));
  return p;
}

void CudaBackend::free(void* p) {
  if (!p) return;
  raw_free(p);
}

void CudaBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (!bytes) return;
  SFT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  SFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (!bytes) return;
  SFT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  SFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  SFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::zero(void* p, size_t bytes) {
  if (!bytes) return;
  SFT_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
}

void CudaBackend::synchronize() { SFT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaBackend::scratch(int slot, size_t bytes) {
  if (scratch_bytes_[slot] < bytes) {
    if (scratch_[slot]) {
      SFT_CUDA_CHECK(cudaStreamSynchronize(stream_));  // earlier kernels may still use the old buffer
      raw_free(scratch_[slot]);
      scratch_[slot] = nullptr;
      scratch_bytes_[slot] = 0;
    }
    scratch_[slot] = raw_alloc(bytes);
    scratch_bytes_[slot] = bytes;
  }
  return scratch_[slot];
}

// ---------------------------------------------------------------------------------------------------------------
// optimizer, elementwise

void CudaBackend::adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& a) {
  const double bc1 = 1.0 - std::pow(double(a.beta1), double(a.step));
  const double bc2 = 1.0 - std::pow(double(a.beta2), double(a.step));
  k::adamw(stream_, param, grad, m, v, n, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, float(bc1), float(bc2));
}

double CudaBackend::sum_squares(const float* x, int64_t n) {
  auto* acc = static_cast<double*>(scratch(11, sizeof(double)));
  k::sum_squares(stream_, x, n, acc);
  double out = 0;
  download(&out, acc, sizeof out);
  return out;
}

void CudaBackend::scale(float* x, float s, int64_t n) { k::scale(stream_, x, s, n); }
void CudaBackend::add(float* y, const float* x, int64_t n) { k::add(stream_, y, x, n); }
void CudaBackend::f32_to_bf16(uint16_t* dst, const float* src, int64_t n) { k::f32_to_bf16(stream_, dst, src, n); }
void CudaBackend::bf16_to_f32(float* dst, const uint16_t* src, int64_t n) { k::bf16_to_f32(stream_, dst, src, n); }
void CudaBackend::add_bias(float* y, const float* bias, int64_t rows, int64_t cols) {
  k::add_bias(stream_, y, bias, rows, cols);
}
void CudaBackend::bias_grad(float* dbias, const float* dy, int64_t rows, int64_t cols) {
  k::column_sums_add(stream_, dbias, dy, rows, cols);
}
void CudaBackend::embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) {
  k::embedding_forward(stream_, out, table, ids, n, H);
}
void CudaBackend::embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) {
  k::embedding_backward(stream_, dtable, dout, ids, n, H);
}
void CudaBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H,
                                  float eps, float w_offset) {
  k::rmsnorm_forward(stream_, y, rstd, x, w, n, H, eps, w_offset);
}
void CudaBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                   const float* rstd, int64_t n, int64_t H, float w_offset) {
  k::rmsnorm_backward_dx(stream_, dx, dy, x, w, rstd, n, H, w_offset);
  k::rmsnorm_backward_dw(stream_, dw, dy, x, rstd, n, H);
}
void CudaBackend::rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads,
                       int64_t head_dim, bool inverse) {
  k::rope(stream_, x, pos, inv_freq, n, heads, head_dim, inverse);
}
void CudaBackend::swiglu_forward(float* h, const float* gate, const float* up, int64_t n) {
  k::swiglu_forward(stream_, h, gate, up, n);
}
void CudaBackend::swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                                  int64_t n) {
  k::swiglu_backward(stream_, dgate, dup, dh, gate, up, n);
}
void CudaBackend::geglu_forward(float* h, const float* gate, const float* up, int64_t n) {
  k::geglu_forward(stream_, h, gate, up, n);
}
void CudaBackend::geglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                                 int64_t n) {
  k::geglu_backward(stream_, dgate, dup, dh, gate, up, n);
}
void CudaBackend::softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets,
                                        int64_t rows, int64_t V, float grad_scale, float softcap) {
  k::softmax_cross_entropy(stream_, logits, loss, greedy, targets, rows, V, grad_scale, softcap);
}
void CudaBackend::logit_softcap(float* x, int64_t n, float softcap) { k::logit_softcap(stream_, x, n, softcap); }

// ---------------------------------------------------------------------------------------------------------------
// GEMM (cuBLASLt). Row-major C[M,N] = op(A)[M,K] op(B)[K,N] is computed as the column-major product
// C^T[N,M] = op(B)^T op(A)^T: cuBLASLt's "A" is our B and its "B" is our A, transposes carried over unchanged.

namespace {

int64_t alignment_of(const void* p, int64_t stride_bytes, int64_t batch) {
  auto addr = reinterpret_cast<uintptr_t>(p);
  int64_t align = 256;
  while (align > 1 && (addr % uintptr_t(align)) != 0) align /= 2;
  if (batch > 1)
    while (align > 1 && (stride_bytes % align) != 0) align /= 2;
  return align;
}

}  // namespace

void CudaBackend::gemm_batched(const GemmArgs& g) {
  SFT_CHECK(g.M >= 0 && g.N >= 0 && g.K >= 0 && g.batch >= 1, "cuda gemm: bad shape M=", g.M, " N=", g.N, " K=", g.K,
            " batch=", g.batch);
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0) {  // C = beta * C
    SFT_CHECK(g.batch == 1, "cuda gemm: K = 0 with batch > 1 is not supported");
    if (g.beta == 0.f)
      SFT_CUDA_CHECK(cudaMemset2DAsync(g.C, size_t(g.ldc) * 4, 0, size_t(g.N) * 4, size_t(g.M), stream_));
    return;
  }
  SFT_CHECK(g.beta == 0.f || g.beta == 1.f, "cuda gemm: beta must be 0 or 1, got ", g.beta);
  SFT_CHECK(g.lda >= (g.trans_a ? g.M : g.K) && g.ldb >= (g.trans_b ? g.K : g.N) && g.ldc >= g.N,
            "cuda gemm: leading dimension too small (lda=", g.lda, " ldb=", g.ldb, " ldc=", g.ldc, ")");
  const int64_t ab_size = g.compute == GemmCompute::BF16 ? 2 : 4;
  const int64_t al_a = alignment_of(g.A, g.stride_a * ab_size, g.batch);
  const int64_t al_b = alignment_of(g.B, g.stride_b * ab_size, g.batch);
  const int64_t al_c = alignment_of(g.C, g.stride_c * 4, g.batch);
  const std::array<int64_t, 20> key = {g.trans_a, g.trans_b, g.M,   g.N,        g.K,        g.lda,
                                       g.ldb,     g.ldc,     g.batch, g.stride_a, g.stride_b, g.stride_c,
                                       int64_t(g.compute), g.beta != 0.f, al_a, al_b, al_c, 0, 0, 0};
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    if (plans_.size() >= 4096) plans_.clear();  // KV decoding makes a new shape per length: keep the cache bounded
    auto plan = std::make_unique<GemmPlan>();
    cublasComputeType_t ct = g.compute == GemmCompute::TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const cudaDataType_t abt = g.compute == GemmCompute::BF16 ? CUDA_R_16BF : CUDA_R_32F;
    SFT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, ct, CUDA_R_32F));
    const ColMajorGemm cm = to_col_major(g);  // tested on the CPU (tests/gpu/attention_plan_test.cpp)
    const cublasOperation_t op_lt_a = cm.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // Lt "A" = our B
    const cublasOperation_t op_lt_b = cm.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // Lt "B" = our A
    SFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_lt_a, sizeof op_lt_a));
    SFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_lt_b, sizeof op_lt_b));
    SFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, abt, uint64_t(cm.a_rows), uint64_t(cm.a_cols), cm.lda));
    SFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, abt, uint64_t(cm.b_rows), uint64_t(cm.b_cols), cm.ldb));
    SFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, CUDA_R_32F, uint64_t(cm.c_rows), uint64_t(cm.c_cols), cm.ldc));
    if (g.batch > 1) {
      const int32_t bc = static_cast<int32_t>(g.batch);
      const int64_t sa = cm.stride_a, sb = cm.stride_b, sc = cm.stride_c;
      SFT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(plan->a, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
      SFT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(plan->b, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
      SFT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(plan->c, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
      SFT_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(plan->a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa));
      SFT_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(plan->b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb));
      SFT_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(plan->c, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof sc));
    }
    cublasLtMatmulPreference_t pref = nullptr;
    SFT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = workspace_bytes_;
    const uint32_t pa = uint32_t(al_b), pb = uint32_t(al_a), pc = uint32_t(al_c);  // Lt A = our B
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                             sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &pa, sizeof pa);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &pb, sizeof pb);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &pc, sizeof pc);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &pc, sizeof pc);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(lt_, plan->desc, plan->a, plan->b, plan->c, plan->c, pref, 1, &result,
                                          &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED)
      throw_cublas_error(st, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) plan->algo = result.algo;
    else plan->fallback = true;
    it = plans_.emplace(key, std::move(plan)).first;
  }
  const GemmPlan& p = *it->second;
  if (!p.fallback) {
    SFT_CUBLAS_CHECK(cublasLtMatmul(lt_, p.desc, &g.alpha, g.B, p.a, g.A, p.b, &g.beta, g.C, p.c, g.C, p.c, &p.algo,
                                    workspace_, workspace_bytes_, stream_));
    return;
  }
  // Same column-major mapping through the classic cuBLAS API (handles any leading dimension / alignment).
  const cudaDataType_t abt = g.compute == GemmCompute::BF16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t ct = g.compute == GemmCompute::TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const ColMajorGemm cm = to_col_major(g);
  SFT_CHECK(cm.m <= INT32_MAX && cm.n <= INT32_MAX && cm.k <= INT32_MAX && cm.lda <= INT32_MAX &&
                cm.ldb <= INT32_MAX && cm.ldc <= INT32_MAX && g.batch <= INT32_MAX,
            "cuda gemm: shape too large for the cuBLAS fallback (M=", g.M, " N=", g.N, " K=", g.K, ")");
  SFT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      blas_, cm.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, cm.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, int(cm.m), int(cm.n),
      int(cm.k), &g.alpha, g.B, abt, int(cm.lda), cm.stride_a, g.A, abt, int(cm.ldb), cm.stride_b, &g.beta, g.C,
      CUDA_R_32F, int(cm.ldc), cm.stride_c, int(g.batch), ct, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                       int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) {
  GemmArgs g;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.M = M;
  g.N = N;
  g.K = K;
  g.A = A;
  g.lda = lda;
  g.B = B;
  g.ldb = ldb;
  g.C = C;
  g.ldc = ldc;
  g.alpha = alpha;
  g.beta = beta;
  g.compute = ab == DType::BF16 ? GemmCompute::BF16 : GemmCompute::F32;
  gemm_batched(g);
}

// ---------------------------------------------------------------------------------------------------------------
// attention: the algorithm lives in attention_plan.cpp (tested on the CPU); these are its CUDA operations.

namespace {
class CudaAttnOps final : public AttnOps {
 public:
  CudaAttnOps(CudaBackend& be, cudaStream_t st, std::function<void*(int, size_t)> scratch)
      : be_(be), st_(st), scratch_(std::move(scratch)) {}
  float* scratch(int slot, size_t bytes) override { return static_cast<float*>(scratch_(slot, bytes)); }
  void gemm(const GemmArgs& g) override { be_.gemm_batched(g); }
  void pack_heads(float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) override {
    k::pack_heads(st_, dst, src, rows, T, heads, d);
  }
  void unpack_heads(float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) override {
    k::unpack_heads(st_, dst, src, rows, T, heads, d);
  }
  void softmax_forward(float* S, float* lse, const int32_t* doc, int64_t rows, int64_t heads, int64_t Tq, int64_t T,
                       const AttnShape& s) override {
    k::attn_softmax_forward(st_, S, lse, doc, rows, heads, Tq, T, s.scale, s.softcap, s.window);
  }
  void probs_from_lse(float* S, float* th, const float* lse, const int32_t* doc, int64_t rows, int64_t heads,
                      int64_t T, const AttnShape& s) override {
    k::attn_probs_from_lse(st_, S, th, lse, doc, rows, heads, T, s.scale, s.softcap, s.window);
  }
  void row_dot(float* Dd, const float* dout, const float* out, int64_t n, int64_t heads, int64_t d) override {
    k::attn_row_dot(st_, Dd, dout, out, n, heads, d);
  }
  void dscores(float* dP, const float* P, const float* th, const float* Dd, int64_t rows, int64_t heads, int64_t T,
               float scale) override {
    k::attn_dscores(st_, dP, P, th, Dd, rows, heads, T, scale);
  }

 private:
  CudaBackend& be_;
  cudaStream_t st_;
  std::function<void*(int, size_t)> scratch_;
};
}  // namespace

void CudaBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                    const int32_t* doc, const AttnShape& s) {
  SFT_CHECK(s.shared_keys == 0, "cuda attention_forward: shared_keys is not supported (attention_shares_keys)");
  CudaAttnOps ops(*this, stream_, [this](int slot, size_t bytes) { return scratch(slot, bytes); });
  attention_forward_impl(ops, out, lse, q, k, v, doc, s, attention_chunk_rows(s, 1, attn_scratch_limit_),
                         attn_tf32_ ? GemmCompute::TF32 : GemmCompute::F32);
}

void CudaBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                     const float* k, const float* v, const float* out, const float* lse,
                                     const int32_t* doc, const AttnShape& s) {
  CudaAttnOps ops(*this, stream_, [this](int slot, size_t bytes) { return scratch(slot, bytes); });
  attention_backward_impl(ops, dq, dk, dv, dout, q, k, v, out, lse, doc, s,
                          attention_chunk_rows(s, s.softcap > 0 ? 3 : 2, attn_scratch_limit_),
                          attn_tf32_ ? GemmCompute::TF32 : GemmCompute::F32);
}

}  // namespace sft::backend::cuda

namespace sft::backend {
std::string cuda_device_description() { return cuda::device_description(); }  // backend/device.h
std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  return std::make_unique<cuda::CudaBackend>(device_index);
}
}  // namespace sft::backend
