#!/bin/sh
# test-schedule.sh — dm-schedule against closed forms computed here with awk.
. "$(dirname "$0")/lib.sh"

# rf: alpha = 1 - t, sigma = t, lambda = log((1-t)/t)
run dm-schedule -n 4 rf
check "rf row t=0.25" "awk -F'\t' 'NR==3 && \$1==0.25 && \$2==0.75 && \$3==0.25 {ok=1} END {exit !ok}' '$T/out'"
check "rf header" "head -n 1 '$T/out' | grep -q '^t	alpha	sigma	lambda	snr	alpha_bar	beta	dalpha	dsigma$'"
check "rf lambda" "awk -F'\t' 'NR==3 {d=\$4-log(3); exit !(d<1e-9 && d>-1e-9)}' '$T/out'"

# linear: alpha_bar_i = prod (1 - beta_i), beta_i = 1e-4 + (i-1)/999*(0.02-1e-4)
run dm-schedule linear
check "linear has T+1 rows" "[ \$(wc -l <'$T/out') -eq 1002 ]"
check "linear alpha_bar matches the product" "awk -F'\t' 'NR>1 {i=NR-2; if (i>0) p*=1-(1e-4+(i-1)/999*(0.02-1e-4)); else p=1;
	r=\$6/p-1; if (r>1e-9||r<-1e-9) bad=1} END {exit bad}' '$T/out'"

# vp: alpha(1) = exp(-(20-0.1)/4 - 0.1/2), Song et al. 2021
run dm-schedule -q -n 10 vp
check "vp alpha(1)" "awk -F'\t' 'END {d=\$2-exp(-19.9/4-0.05); exit !(d<1e-12&&d>-1e-12)}' '$T/out'"
check "vp beta(t) = 0.1 + 19.9 t" "awk -F'\t' '{d=\$7-(0.1+19.9*\$1); if (d>1e-9||d<-1e-9) bad=1} END {exit bad}' '$T/out'"

# grids
t_out "leading grid starts at 0.901" '^0	0\.901	' dm-schedule --grid --steps 10 --spacing leading
run dm-schedule -q --grid --steps 4 --spacing karras edm
check "karras sigmas" "awk -F'\t' 'NR<5 {a=80^(1/7); b=0.002^(1/7); s=(a+(b-a)*\$1/3)^7; r=\$4/s-1; if (r>1e-9||r<-1e-9) bad=1}
	NR==5 && \$2!=0 {bad=1} END {exit bad}' '$T/out'"
run dm-schedule -q --grid --steps 2 --spacing shift --shift 3 rf
check "shift grid" "awk -F'\t' 'NR==2 {exit !(\$2==0.75)}' '$T/out'"

# tensor output
t_exit "tensor output" 0 dm-schedule -o "$T/s.st" cosine:T=50
t_out "tensor file has 51 rows and the canonical text" 'cosine:T=50,s=0.008' dm-info "$T/s.st"
t_out "its alpha column" '\[51\]' dm-info -t alpha "$T/s.st"

# errors
t_err "unknown schedule" 2 'unknown schedule' dm-schedule sqrt
t_err "bad parameter" 2 "beta range" dm-schedule linear:beta_max=2
t_exit "bad steps" 2 dm-schedule --grid --steps 0
t_exit "bad -n" 2 dm-schedule -n x
t_exit "two operands" 2 dm-schedule rf vp
t_err "too many leading steps" 1 'exceed' dm-schedule --grid --steps 2000 --spacing leading
t_err "lambda grid of rf needs finite ends" 1 'infinite' dm-schedule --grid --spacing lambda rf:t_max=1
t_err "full disk" 1 'dm-schedule: /dev/full: ' dm-schedule -o /dev/full rf
t_out "version" '^dm-schedule \(dm toolkit\) ' dm-schedule --version
finish
