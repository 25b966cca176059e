# fashion.mk — class-conditional Fashion-MNIST, end to end, as Make targets.
#
#   make -f scripts/experiments/fashion.mk [QUICK=1] [-j2]
#
# Imports the data (Debian package dataset-fashion-mnist), trains a
# time-free classifier for the evaluation and a class-conditional unet with
# classifier-free dropout, samples every class with several guidance
# scales and samplers, and writes PNG grids (one column per class) and
# OUT/results.tsv: per sampler, steps and guidance scale the class
# fidelity (the classifier's accuracy on the intended labels) and the
# FD-classifier (Frechet distance in the classifier's features, against
# the test set; not Inception FID), with each stage's wall time.
#
# Every step is a target with real dependencies: an interrupted run
# resumes where it stopped (training resumes from its checkpoint), and
# -j2 runs independent steps side by side.  QUICK=1 is a smoke run of a few
# minutes in OUT=results/fashion-quick.
#
# The unet's training, the long stage, runs alone (the classifier waits
# for it even with -j) and with OpenMP threads that spin briefly before
# they sleep at a barrier (GOMP_SPINCOUNT=30000 unless OMP_WAIT_POLICY or
# GOMP_SPINCOUNT is set; dm(7)): on two idle cores 64-65 training images
# per second against 48-52 with the tools' default passive wait: the
# default 3000 steps trained in 3451 s (57.5 min) on two idle cores, against
# about 64 min with passive waiting.  Beside another job it would be the
# slower of the two.
#
# Settings (make VAR=value): OUT, BUILD (default build), THREADS
# (default 2), STEPS (unet training steps), BATCH, N (samples per
# setting, a multiple of 10), CLS_STEPS, SEED.

top     := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
BUILD   ?= build
BIN     := $(top)/$(BUILD)/bin
DATA    ?= /usr/share/datasets/fashion-mnist
THREADS ?= 2
SEED    ?= 0
ifeq ($(QUICK),1)
OUT       ?= results/fashion-quick
STEPS     ?= 150
CLS_STEPS ?= 150
BATCH     ?= 32
N         ?= 100
UNET      ?= ch=16,mult=1,2,2
CKPT_EVERY ?= 50
else
OUT       ?= results/fashion
STEPS     ?= 3000
CLS_STEPS ?= 1500
BATCH     ?= 64
N         ?= 500
UNET      ?= ch=32,mult=1,2,4,attn=1
CKPT_EVERY ?= 500
endif

# sampler-steps-gGUIDANCE: the guidance scales with dpm++2m, and the
# samplers side by side at guidance 2
SETTINGS ?= dpm++2m-20-g1 dpm++2m-20-g2 dpm++2m-20-g4 euler-20-g2 heun-10-g2 \
    ddpm-50-g2

C := -q --threads $(THREADS) --seed $(SEED)
E := -q --threads $(THREADS)
export PATH := $(BIN):$(PATH)
# run with the wall time in $@.time
timed = @t0=$$(date +%s); $(1) && echo $$(( $$(date +%s) - t0 )) > $@.time

.PHONY: all tools clean
.DELETE_ON_ERROR:
# samples are kept (intermediate files of the pattern chains otherwise)
.SECONDARY:
all: $(OUT)/results.tsv $(OUT)/classifier.tsv $(OUT)/loss.png $(OUT)/data.png

tools:
	$(MAKE) -C $(top) BUILD=$(BUILD) all

$(OUT)/.dir:
	mkdir -p $(OUT) && touch $@

$(OUT)/train.st: | $(OUT)/.dir
	$(call timed,dm-data import $(C) --labels $(DATA)/train-labels-idx1-ubyte.gz -o $@ $(DATA)/train-images-idx3-ubyte.gz)
$(OUT)/test.st: | $(OUT)/.dir
	$(call timed,dm-data import $(C) --labels $(DATA)/t10k-labels-idx1-ubyte.gz -o $@ $(DATA)/t10k-images-idx3-ubyte.gz)
$(OUT)/data.png: $(OUT)/test.st
	dm-view --grid --nrow 10 -n 100 -o $@ $<

# The evaluation classifier: the unet's encoder with a classifier head,
# trained on clean images (t = 0), its test accuracy in classifier.tsv.
$(OUT)/classifier.st: $(OUT)/train.st | $(OUT)/unet.st
	$(call timed,dm-train $(C) --arch unet --arch-opts $(UNET) --objective classifier \
	    --t-sampling fixed:0 --steps $(CLS_STEPS) --batch 128 --lr 1e-3 \
	    --ckpt $@.ckpt --ckpt-every $(CKPT_EVERY) $$([ -e $@.ckpt ] && echo --resume $@.ckpt) \
	    -o $@ $<)
$(OUT)/classifier.tsv: $(OUT)/classifier.st $(OUT)/test.st
	dm-eval -v $(E) -c $< $(OUT)/test.st > $@

# The class-conditional unet: flow matching on the rf schedule, labels
# dropped with probability 0.1 for classifier-free guidance.
spin = $$([ -z "$$OMP_WAIT_POLICY$$GOMP_SPINCOUNT" ] && echo GOMP_SPINCOUNT=30000)
$(OUT)/unet.st: $(OUT)/train.st
	$(call timed,env $(spin) dm-train $(C) --arch unet --arch-opts $(UNET) --objective flow \
	    --classes auto --cfg-drop 0.1 --steps $(STEPS) --batch $(BATCH) --lr 1e-3 \
	    --warmup 200 --log $(OUT)/train-log.tsv --val-every 100 \
	    --ckpt $@.ckpt --ckpt-every $(CKPT_EVERY) $$([ -e $@.ckpt ] && echo --resume $@.ckpt) \
	    -o $@ $<)
$(OUT)/loss.png: $(OUT)/unet.st
	dm-view --curve --x step --y loss --logy -o $@ $(OUT)/train-log.tsv

# One setting: N samples, class i mod 10 for sample i, its grid (10 per
# class), and its evaluation row.
$(OUT)/s-%.st: $(OUT)/unet.st
	$(call timed,dm-sample $(C) -n $(N) --label all \
	    --sampler $(word 1,$(subst -, ,$*)) \
	    --steps $(word 2,$(subst -, ,$*)) \
	    --guidance $(patsubst g%,%,$(word 3,$(subst -, ,$*))) \
	    -o $@ $<)
$(OUT)/s-%.png: $(OUT)/s-%.st
	dm-view --grid --nrow 10 -n 100 -o $@ $<
$(OUT)/e-%.tsv: $(OUT)/s-%.st $(OUT)/classifier.st $(OUT)/test.st
	dm-eval $(E) -c $(OUT)/classifier.st --ref $(OUT)/test.st $< > $@

$(OUT)/results.tsv: $(SETTINGS:%=$(OUT)/e-%.tsv) $(SETTINGS:%=$(OUT)/s-%.png)
	@{ printf 'sampler\tsteps\tguidance\tn\taccuracy\tn_ref\tfd\tseconds\n'; \
	for s in $(SETTINGS); do \
	    set -- $$(echo $$s | sed 's/-g/ /; s/-\([0-9]*\) / \1 /'); \
	    printf '%s\t%s\t%s\t' $$1 $$2 $$3; \
	    sed -n 2p $(OUT)/e-$$s.tsv | tr -d '\n'; \
	    printf '\t%s\n' $$(cat $(OUT)/s-$$s.st.time); \
	done; } > $@.tmp && mv $@.tmp $@
	@echo "fashion: $@"; column -t -s '	' $@ 2>/dev/null || cat $@
	@printf 'stage\tseconds\n' > $(OUT)/times.tsv; \
	for f in train test classifier unet; do \
	    printf '%s\t%s\n' $$f "$$(cat $(OUT)/$$f.st.time 2>/dev/null)" >> $(OUT)/times.tsv; done

clean:
	rm -rf $(OUT)
