/* cuBLASLt probe: records, for every cublasLtMatmul call, the problem and the algorithm
 * configuration the caller (torch) passed, as one JSON line to $FP8SIM_LT_LOG.
 *
 * Build (on the GPU machine, against the headers of the cuBLASLt torch loads):
 *   gcc -O2 -shared -fPIC -I$NVIDIA/cu13/include -o libltprobe.so interpose.c -ldl
 * Run:
 *   LD_PRELOAD=$PWD/libltprobe.so FP8SIM_LT_LOG=calls.jsonl python3 record.py ...
 * FP8SIM_LT_SKIP=1: record only, skip the real matmul (returns CUBLAS_STATUS_SUCCESS; the
 * output is left unwritten) - for sweeping thousands of shapes in seconds.
 * fp8sim_probe_tag(const char *): a label (the caller's shape) written with each record;
 * fp8sim_probe_skip(int): record-only on/off at run time. Call both through ctypes.CDLL(None).
 *
 * The real cublasLtMatmul is found with dlsym(RTLD_NEXT) or, where libcublasLt was loaded
 * RTLD_LOCAL, by the loaded object's path (dl_iterate_phdr + dlopen RTLD_NOLOAD).
 * Attributes are read by number (query the size first, then read), so a header of another
 * 13.x version reads the same ids; ids the library does not know are left out.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cublasLt.h>

typedef cublasStatus_t (*matmul_fn)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *,
                                     const void *, cublasLtMatrixLayout_t, const void *,
                                     cublasLtMatrixLayout_t, const void *, const void *,
                                     cublasLtMatrixLayout_t, void *, cublasLtMatrixLayout_t,
                                     const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t);
typedef cublasStatus_t (*desc_get_fn)(cublasLtMatmulDesc_t, int, void *, size_t, size_t *);
typedef cublasStatus_t (*layout_get_fn)(cublasLtMatrixLayout_t, int, void *, size_t, size_t *);
typedef cublasStatus_t (*algo_get_fn)(const cublasLtMatmulAlgo_t *, int, void *, size_t,
                                      size_t *);
typedef size_t (*version_fn)(void);

static matmul_fn real_matmul;
static desc_get_fn desc_get;
static layout_get_fn layout_get;
static algo_get_fn algo_get;
static version_fn lt_version;
static FILE *log_file;
static int skip_real;
static int skip_override = -1;
static char tag[512] = "";
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char lt_path[1024] = "";

void fp8sim_probe_tag(const char *t) {
    pthread_mutex_lock(&lock);
    snprintf(tag, sizeof tag, "%s", t ? t : "");
    pthread_mutex_unlock(&lock);
}

/* Record-only on (1) or off (0) from here on, whatever FP8SIM_LT_SKIP said. */
void fp8sim_probe_skip(int on) {
    skip_override = on ? 1 : 0;
}

static int find_lt(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size; (void)data;
    if (info->dlpi_name && strstr(info->dlpi_name, "libcublasLt.so")) {
        snprintf(lt_path, sizeof lt_path, "%s", info->dlpi_name);
        return 1;
    }
    return 0;
}

static void *lt_sym(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (p) return p;
    if (!lt_path[0]) dl_iterate_phdr(find_lt, NULL);
    if (!lt_path[0]) return NULL;
    void *h = dlopen(lt_path, RTLD_LAZY | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}

static int init(void) {
    if (real_matmul) return 1;
    real_matmul = (matmul_fn)lt_sym("cublasLtMatmul");
    desc_get = (desc_get_fn)lt_sym("cublasLtMatmulDescGetAttribute");
    layout_get = (layout_get_fn)lt_sym("cublasLtMatrixLayoutGetAttribute");
    algo_get = (algo_get_fn)lt_sym("cublasLtMatmulAlgoConfigGetAttribute");
    lt_version = (version_fn)lt_sym("cublasLtGetVersion");
    const char *s = getenv("FP8SIM_LT_SKIP");
    skip_real = s && s[0] == '1';
    const char *path = getenv("FP8SIM_LT_LOG");
    if (path && path[0]) log_file = fopen(path, "a");
    if (!lt_path[0]) dl_iterate_phdr(find_lt, NULL);
    return real_matmul != NULL;
}

/* One attribute as a signed 64-bit int (sizes 1, 2, 4, 8); 0 on success. */
static int read_attr(int kind, const void *obj, int attr, long long *out) {
    size_t need = 0;
    cublasStatus_t st;
    unsigned char buf[16];
    memset(buf, 0, sizeof buf);
    if (kind == 0) st = desc_get((cublasLtMatmulDesc_t)obj, attr, NULL, 0, &need);
    else if (kind == 1) st = layout_get((cublasLtMatrixLayout_t)obj, attr, NULL, 0, &need);
    else st = algo_get((const cublasLtMatmulAlgo_t *)obj, attr, NULL, 0, &need);
    if (st != CUBLAS_STATUS_SUCCESS || need == 0 || need > 8) return 1;
    size_t got = 0;
    if (kind == 0) st = desc_get((cublasLtMatmulDesc_t)obj, attr, buf, need, &got);
    else if (kind == 1) st = layout_get((cublasLtMatrixLayout_t)obj, attr, buf, need, &got);
    else st = algo_get((const cublasLtMatmulAlgo_t *)obj, attr, buf, need, &got);
    if (st != CUBLAS_STATUS_SUCCESS) return 1;
    switch (need) {
        case 1: *out = *(int8_t *)buf; break;
        case 2: *out = *(int16_t *)buf; break;
        case 4: *out = *(int32_t *)buf; break;
        default: *out = *(int64_t *)buf; break;
    }
    return 0;
}

static const char *DESC_NAMES[] = {
    "compute_type", "scale_type", "pointer_mode", "transa", "transb", "transc", "fill_mode",
    "epilogue", NULL, NULL, NULL, NULL, NULL, NULL, NULL, "sm_count_target", NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, "fast_accum", "bias_data_type", NULL, NULL, NULL, NULL,
    "a_scale_mode", "b_scale_mode", "c_scale_mode", "d_scale_mode", NULL, NULL, NULL, NULL,
    NULL, NULL, "batch_invariance_flags"};
static const char *LAYOUT_NAMES[] = {"type", "order", "rows", "cols", "ld", "batch_count"};
static const char *ALGO_NAMES[] = {"algo_id", "tile_id", "splitk_num", "reduction_scheme",
                                   "cta_swizzling", "custom_option", "stages_id",
                                   "inner_shape_id", "cluster_shape_id"};

static void put_layout(FILE *f, const char *key, cublasLtMatrixLayout_t l) {
    fprintf(f, ",\"%s\":{", key);
    int first = 1;
    for (int i = 0; l && i < (int)(sizeof LAYOUT_NAMES / sizeof *LAYOUT_NAMES); i++) {
        long long v;
        if (read_attr(1, l, i, &v)) continue;
        fprintf(f, "%s\"%s\":%lld", first ? "" : ",", LAYOUT_NAMES[i], v);
        first = 0;
    }
    fputc('}', f);
}

static void record(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                   cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                   const cublasLtMatmulAlgo_t *algo, size_t ws, int status) {
    if (!log_file) return;
    pthread_mutex_lock(&lock);
    FILE *f = log_file;
    fprintf(f, "{\"tag\":\"%s\",\"lt_version\":%zu,\"lt_path\":\"%s\",\"skipped\":%d,"
            "\"status\":%d,\"workspace\":%zu", tag, lt_version ? lt_version() : 0, lt_path,
            skip_real, status, ws);
    fputs(",\"desc\":{", f);
    int first = 1;
    for (int i = 0; i < (int)(sizeof DESC_NAMES / sizeof *DESC_NAMES); i++) {
        long long v;
        if (!DESC_NAMES[i] || read_attr(0, desc, i, &v)) continue;
        fprintf(f, "%s\"%s\":%lld", first ? "" : ",", DESC_NAMES[i], v);
        first = 0;
    }
    fputc('}', f);
    put_layout(f, "a", a);
    put_layout(f, "b", b);
    put_layout(f, "c", c);
    put_layout(f, "d", d);
    if (algo) {
        fputs(",\"algo\":{", f);
        first = 1;
        for (int i = 0; i < (int)(sizeof ALGO_NAMES / sizeof *ALGO_NAMES); i++) {
            long long v;
            if (read_attr(2, algo, i, &v)) continue;
            fprintf(f, "%s\"%s\":%lld", first ? "" : ",", ALGO_NAMES[i], v);
            first = 0;
        }
        fputs(",\"raw\":\"", f);
        for (int i = 0; i < 8; i++) fprintf(f, "%016llx", (unsigned long long)algo->data[i]);
        fputs("\"}", f);
    } else {
        fputs(",\"algo\":null", f);
    }
    fputs("}\n", f);
    fflush(f);
    pthread_mutex_unlock(&lock);
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                              const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
                              const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream) {
    if (!init()) {
        fprintf(stderr, "ltprobe: the real cublasLtMatmul was not found\n");
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (skip_override >= 0) skip_real = skip_override;
    if (!skip_real)
        st = real_matmul(handle, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo,
                         workspace, workspaceSizeInBytes, stream);
    record(desc, Adesc, Bdesc, Cdesc, Ddesc, algo, workspaceSizeInBytes, (int)st);
    return st;
}
