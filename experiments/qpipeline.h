/* qpipeline.h — the quantization experiment, shared by the exp_* files that quantize:
 *
 *   1. FP32: train the model, or reuse <fp32_dir>/checkpoint.bin when it holds the finished run
 *      (same model, seed and epochs: it is the trainer's own --resume; --fp32_seed lets several
 *      fine-tune seeds share one FP32 model);
 *   2. build the same architecture with the quantized layer factory and copy the FP32
 *      parameters and BatchNorm statistics into it by name;
 *      (--q_alloc: an allocator picks each layer's weight bits on the FP32 network, alloc.csv);
 *   3. calibrate the activation quantizers on a few training batches (evaluation mode);
 *   4. fine-tune with the quantizers (QuantRun drives DDQ's gates, levels and λ per step; its
 *      state goes into the checkpoint);
 *   5. report: FP32 vs quantized accuracy, mean bits, weight KB; the per-layer table (printed,
 *      layers.csv), bits.svg (per-layer bits) and levels.svg (each layer's weight histogram with
 *      its levels drawn over it), ddq_trace.csv (λ and mean bits per step);
 *   6. the integer model: model.dqm (quant/intmodel.h), evaluated by the integer engine on the test
 *      set beside FP32 and fake-quant (accuracy, top-1 and code agreement, file size, images/s).
 * The experiment file supplies the model builder and its defaults.
 */
#ifndef DQ_QPIPELINE_H
#define DQ_QPIPELINE_H

#include "core/text.h"
#include "quant/alloc.h"
#include "quant/intmodel.h"
#include "quant/qconfig.h"
#include "quant/report.h"
#include "train/experiment.h"

typedef Model *(*QBuildFn)(void *ctx, const LayerFactory *factory, uint64_t seed, const Dataset *train);

typedef struct QPipelineConfig {
    int fp32_epochs;                 // FP32 training epochs (the fine-tune uses cfg->epochs)
    float fp32_lr;                   // FP32 peak learning rate (the fine-tune uses cfg->lr)
    float fp32_warmup;               // FP32 warm-up epochs (the fine-tune uses cfg->warmup)
    char fp32_dir[OPT_STRLEN];       // where the FP32 run lives ("" = derived from the model)
    int fp32_seed;                   // seed of the FP32 run (0 = the fine-tune's seed)
    bool export_onnx;                // write fp32.onnx and the QDQ model.onnx, each with its check data
    QuantConfig q_defaults;          // the quantization options before the command line (set by
                                     // qpipeline_options): what "left at its default" means (left
                                     // zero by code that builds its config itself: not checked)
} QPipelineConfig;

typedef struct QPipelineResult {
    QuantMethod method;
    bool finished;                   // the fine-tuning ran to its last epoch (else: stopped, no report)
    double fp32_acc, q_acc;          // final test accuracies
    double fp32_img_s, q_img_s;      // median training throughput of each phase
    double fp32_epoch_s, q_epoch_s;  // median training seconds per epoch
    QuantSummary summary;
    double moved_w, moved_a;         // mean bits moved by DDQ's final guarantee
    double alloc_s;                  // --q_alloc: the allocation's wall time (0: taken from the checkpoint)
    double bn_recal_acc;             // --q_bn_recal: top-1 after BatchNorm statistics were re-estimated (0: not run)
    char model[64];
    // 6. the integer model (model.dqm), when the engine can express the method
    bool int_ok;
    char int_why[256];               // !int_ok: the reason
    double int_acc;                  // top-1 of the integer engine
    double int_agree;                // share of test images whose top-1 equals the fake-quant top-1
    double int_codes_alone, int_codes_chain;  // activation codes agreeing, layer by layer / chained
    double int_img_s, fq_img_s, fp32_eval_img_s;  // evaluation speeds (forward passes alone)
    IntModelSize dqm;                // the file's bytes, of which weight codes and tables
} QPipelineResult;

/* Options of the pipeline (fp32_*) and of quantization (q_*, ddq_*), appended to out. */
int qpipeline_options(QPipelineConfig *p, QuantConfig *q, Option *out);
/* Everything that can be checked before the data loads and the FP32 run trains: the quantization
 * options, and that the fine-tuning's --out_dir can be written. Fatal "<prog>: error: …". */
void qpipeline_check(const Experiment *x, const TrainConfig *cfg, const QPipelineConfig *p, const QuantConfig *q);
void qpipeline_run(Experiment *x, TrainConfig *cfg, const QPipelineConfig *p, const QuantConfig *q,
                   QBuildFn build, void *build_ctx, QPipelineResult *out);
/* The FP32 phase's part of a run's identity: opts without any quantization option. */
void qpipeline_fp32_identity(const Option *opts, int n, Text *t);
/* RESULT exp=… method=… fp32_acc=… q_acc=… w_bits=… a_bits=… weight_kb=… … (method=none: the FP32
 * fields only) */
void qpipeline_result_line(const Experiment *x, const QuantConfig *q, const QPipelineResult *r);

#endif
