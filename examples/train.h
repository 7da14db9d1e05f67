/* examples/train.h - the training run behind `mhc train` and `mhc demo`. */
#ifndef MHC_TRAIN_H
#define MHC_TRAIN_H
#include "examples/plot.h"

typedef struct train_summary {
    double final_loss, final_val, seconds, max_gain_fwd, max_gain_bwd;
    size_t params;
    plot_series series;            /* the run's curves (free with plot_series_free) */
} train_summary;
#endif
