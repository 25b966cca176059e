/* dm.h — libdm, the library behind the dm toolkit (diffusion models and flow
 * matching on the CPU).  Include this one header; it pulls in the others.
 *
 * Conventions (DESIGN.md): functions return 0 / a pointer on success and
 * -1 / NULL on failure, keeping a reason that dm_errstr() returns.  The
 * library never prints and never exits. */
#ifndef DM_H
#define DM_H

#include "dm_base.h"
#include "dm_tensor.h"
#include "dm_io.h"
#include "dm_rng.h"
#include "dm_cli.h"
#include "dm_schedule.h"
#include "dm_predict.h"
#include "dm_gmm.h"
#include "dm_noise.h"
#include "dm_plot.h"
#include "dm_data.h"
#include "dm_nn.h"
#include "dm_sample.h"
#include "dm_model.h"
#include "dm_train.h"
#include "dm_lora.h"
#include "dm_reflow.h"
#include "dm_eval.h"

#endif
