# toy2d.mk — objectives and samplers on 2-D sets, as Make targets.
#
#   make -j2 -f scripts/experiments/toy2d.mk
#
# For every set (SETS) and objective (eps on the linear schedule, v on the
# cosine schedule, flow on rf) a default mlp is trained; each model is
# sampled with ddpm, ddim, euler, heun and dpm++2m at 1 to 32 steps and
# with the adaptive solver at three tolerances, and every sample set is
# compared with held-out data by the Sinkhorn divergence (dm-sinkhorn(1)).
# Outputs in OUT (default results/toy2d):
#   toy2d.tsv          set, objective, sampler, steps (or rtol), nfe,
#                      divergence: every run
#   SET-OBJ.png        divergence against NFE, one line per sampler
#   summary.tsv/.md    divergence at 8 steps per sampler and the adaptive
#                      solver at rtol 1e-3 (with its NFE), per set and
#                      objective
# About 9.5 minutes (562 s) with -j2 on two otherwise idle cores at the
# defaults: the runs are small, so two single-threaded jobs side by side
# use the cores better than one job with two threads (THREADS=2 without
# -j: 770 s).
#
# Settings (make VAR=value): OUT, BUILD, SETS, STEPS (training steps,
# default 2000), N (samples and held-out points, default 2000), THREADS
# (per job, default 1), SEED.

top     := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
BUILD   ?= build
BIN     := $(top)/$(BUILD)/bin
OUT     ?= results/toy2d
SETS    ?= moons 8gaussians checkerboard
OBJS    := eps v flow
STEPS   ?= 2000
N       ?= 2000
THREADS ?= 1
SEED    ?= 0
SAMPLERS := ddpm ddim euler heun dpm++2m
KS       := 1 2 4 8 16 32
RTOLS    := 1e-1 1e-2 1e-3

C := -q --threads $(THREADS) --seed $(SEED)
export PATH := $(BIN):$(PATH)
sched_eps  := linear
sched_v    := cosine
sched_flow := rf
MODELS := $(foreach s,$(SETS),$(foreach o,$(OBJS),$(s)-$(o)))

.PHONY: all clean
.DELETE_ON_ERROR:
.SECONDARY:
all: $(OUT)/toy2d.tsv $(OUT)/summary.md $(MODELS:%=$(OUT)/%.png)

$(OUT)/.dir:
	mkdir -p $(OUT) && touch $@

# training and held-out data, from different seeds
$(OUT)/%-train.st: | $(OUT)/.dir
	dm-data $* -n 20000 --seed 1 -o $@
$(OUT)/%-heldout.st: | $(OUT)/.dir
	dm-data $* -n $(N) --seed 2 -o $@

# SET-OBJ.st: the model, SET-OBJ.runs its runs (which need SET's held-out
# points)
model_set = $(firstword $(subst -, ,$(1)))
model_obj = $(lastword $(subst -, ,$(1)))
define model_rule
$(OUT)/$(1)-$(2).st: $(OUT)/$(1)-train.st
	dm-train $(C) --objective $(2) --schedule $(sched_$(2)) --steps $(STEPS) \
	    -o $$@ $$<
$(OUT)/$(1)-$(2).runs: $(OUT)/$(1)-heldout.st
endef
$(foreach s,$(SETS),$(foreach o,$(OBJS),$(eval $(call model_rule,$(s),$(o)))))

# One model's runs: "set obj sampler steps nfe divergence" rows.
# div SAMPLES: the divergence column of dm-sinkhorn's table, at a marginal
# tolerance of 1e-2 (within about 2 % of its converged value, two to three times
# faster than the default 1e-3)
div = dm-sinkhorn --divergence --tol 1e-2 $(1) $(OUT)/$(call model_set,$*)-heldout.st | \
    awk -F '\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($$i == "divergence") c = i } NR == 2 { print $$c }'
$(OUT)/%.runs: $(OUT)/%.st
	@set -e; s=$(call model_set,$*); o=$(call model_obj,$*); \
	: > $@.tmp; \
	for smp in $(SAMPLERS); do for k in $(KS); do \
	    [ $$smp = heun ] && [ $$k = 1 ] && continue; \
	    dm-sample $(C) -n $(N) --sampler $$smp --steps $$k -o $@.x.st $<; \
	    nfe=$$(dm-info $@.x.st | sed -n 's/.*nfe=\([0-9]*\).*/\1/p'); \
	    printf '%s\t%s\t%s\t%s\t%s\t%s\n' $$s $$o $$smp $$k $$nfe \
	        "$$($(call div,$@.x.st))" >> $@.tmp; \
	done; done; \
	for r in $(RTOLS); do \
	    dm-sample $(C) -n $(N) --sampler adaptive --rtol $$r --atol $$r -o $@.x.st $<; \
	    nfe=$$(dm-info $@.x.st | sed -n 's/.*nfe=\([0-9]*\).*/\1/p'); \
	    printf '%s\t%s\tadaptive\t%s\t%s\t%s\n' $$s $$o $$r $$nfe \
	        "$$($(call div,$@.x.st))" >> $@.tmp; \
	done; \
	rm -f $@.x.st; mv $@.tmp $@

$(OUT)/toy2d.tsv: $(MODELS:%=$(OUT)/%.runs)
	{ printf 'set\tobjective\tsampler\tsteps\tnfe\tdivergence\n'; cat $^; } > $@

# divergence against NFE: a wide table (one column per sampler, "-" where a
# sampler has no run at that NFE), then the plot
$(OUT)/%.curve.tsv: $(OUT)/%.runs
	awk -F '\t' -v OFS='\t' -v names="$(SAMPLERS) adaptive" '\
	    BEGIN { k = split(names, S, " ") } \
	    { v[$$5, $$3] = $$6; seen[$$5] = 1 } \
	    END { printf "nfe"; for (i = 1; i <= k; i++) printf "\t%s", S[i]; print ""; \
	    n = 0; for (x in seen) X[++n] = x + 0; \
	    for (i = 2; i <= n; i++) for (j = i; j > 1 && X[j - 1] > X[j]; j--) { t = X[j]; X[j] = X[j - 1]; X[j - 1] = t } \
	    for (i = 1; i <= n; i++) { printf "%d", X[i]; \
	    for (j = 1; j <= k; j++) printf "\t%s", ((X[i], S[j]) in v) ? v[X[i], S[j]] : "-"; print "" } }' \
	    $< > $@
$(OUT)/%.png: $(OUT)/%.curve.tsv
	dm-view --curve --logx --logy --points -o $@ $<

# the README's table: 8 steps per sampler, adaptive at rtol 1e-3
$(OUT)/summary.tsv: $(OUT)/toy2d.tsv
	awk -F '\t' -v OFS='\t' -v names="$(SAMPLERS)" '\
	    BEGIN { k = split(names, S, " "); printf "set\tobjective"; \
	    for (i = 1; i <= k; i++) printf "\t%s@8", S[i]; print "\tadaptive@1e-3\tadaptive_nfe" } \
	    NR > 1 { key = $$1 "\t" $$2; if (!(key in seen)) { seen[key] = 1; order[++n] = key } \
	    if ($$4 == "8") v[key, $$3] = $$6; \
	    if ($$3 == "adaptive" && $$4 == "1e-3") { a[key] = $$6; an[key] = $$5 } } \
	    END { for (r = 1; r <= n; r++) { printf "%s", order[r]; \
	    for (i = 1; i <= k; i++) printf "\t%s", v[order[r], S[i]]; \
	    print "\t" a[order[r]] "\t" an[order[r]] } }' $< > $@
$(OUT)/summary.md: $(OUT)/summary.tsv
	awk -F '\t' '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $$i; print ""; \
	    if (NR == 1) { printf "|"; for (i = 1; i <= NF; i++) printf "---|"; print "" } }' $< > $@
	@cat $@

clean:
	rm -rf $(OUT)
