#!/usr/bin/env bash
# The standing training run of the v2 denoiser (issue 20), then its export into the run's folder (a shipped model is
# exported on its own, with its card: docs/TRAINING.md). Rerun it to resume: fit continues from
# $RUN/last.pt (runs/v2t, stage 20), or, on a machine without runs/, from the stage's committed weights-only snapshot.
#   Stage 1 ran the ControlNet phases, trunk (stem only), control (trunk frozen), then joint; stages 2 and 3 (below)
#   are long joint phases. The val set is scored every VAL_EVERY steps into the run's log.jsonl
#   (python -m stemclean.train.curves runs/v2t benchmarks/results/curves/*.jsonl plots them; runs/ is not kept).
# The data come from scripts/make_data.sh. See docs/TRAINING.md for what each flag does and why.
# THREADS=2: on a quiet machine two threads ran a step clearly faster than one (1.7x on the AMD EPYC machine of
# 2026-12-06), and bf16 autocast gained 3% at two threads and 12% at one (python -m stemclean.train.throughput ->
# benchmarks/results/throughput.json); rerun it on a new machine. Beside a data job on the other core, use THREADS=1.
# The v1 recipe that made the shipped stemclean-v1 is this script as of commit bf13c04.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
RUN=${RUN:-runs/v2t}
# Stage 1 (runs/v2, plan trunk:150,control:150,joint:30000, stopped at joint step 2375) left the de-bleed gate shut:
# its bias never moved from -5, where its gradient is under 1% of the signal. Stage 2 (runs/v2b, this script as of
# commit cc9b18c) started from stage 1's last weights with the gate's bias reset to -2; its bleed rows rose, but over
# its 1625 steps its Spleeter and real-recording rows stayed flat (docs/TRAINING.md, "Stage 3"). Real Spleeter pairs
# were under 2% of its examples, as it drew them from every real mix while few had pairs yet. Stage 3 starts from
# stage 2's last weights and draws half of its examples from the real recordings, half of those their Spleeter pairs.
# Its real rows stayed flat too (1975 steps, runs/v2c). The overfit check then showed the loss holding the network
# back: with the SI-SDR term weighted 1.0 instead of 0.1, three songs were fitted to nearly twice the share of the
# oracle's gain in the same 700 steps (benchmarks/results/overfit-steps700.json; overfit-sdr0.1.json at the old
# weight), and kept climbing to 1400 (overfit.json).
# Stage 4 (runs/v2d) starts from stage 3's last weights with that weight. Its plan was joint:30000, a length it would
# never reach, so its learning rate stayed near the top of the cosine; after 1470 steps with the real rows rising
# slowly, the plan is cut to joint:3500 so that the rest of the run anneals (the decay follows the plan's length) and
# the weights it ends with can be judged by the swap rule (docs/TRAINING.md).
# It ended at 3500 (stemclean/models/stemclean-v2-stage4.pt) with its real rows up a little, and scored on the real
# pairs of its own training mixes (validate --real-split train) no better than on val's: the network underfits the
# real pairs rather than failing to generalise from them, and they were a quarter of its examples, the rest rendered
# Spleeter pairs, ladder and bleed. Stage 5 (runs/v2e) starts from stage 4's last weights and draws 80% of its
# examples from the real recordings, three quarters of those their Spleeter pairs (60% of all examples; rendered
# Spleeter pairs 15%), everything else as in stage 4. Its plan was joint:6000; at step 1480, with the real rows flat
# at near-peak learning rate, it was cut to joint:3500, stage 4's length, so that it annealed within a session and
# ended comparable with stage 4 (stemclean/models/stemclean-v2-stage5.pt). Its real rows ended about where stage 4's
# did: the share of real pairs was not the limit either.
# Stage 6 (runs/v2f) asks whether size is: it starts from stage 5's last weights grown from 6 to 9 blocks per branch
# (fit --grow-blocks; the new blocks start as the identity, so it starts where stage 5 ended), with stage 5's data
# and schedule. If its real rows end clearly above stages 4 and 5, capacity was the limit.
# It ended at 3500 (stemclean/models/stemclean-v2-stage6.pt) with its real rows where stage 5's ended: capacity was
# not the limit either (docs/TRAINING.md, "Stage 6"). Stage 7 (runs/v2g) goes back to stage 5's 6-block weights and
# stage 5's recipe, on a real-recordings corpus that now has every training mix's Spleeter pair and is being grown
# from 10 to 16 hours of mixes (realcorpus --hours 14; the sampler picks up new mixes as they land). If its real rows
# end clearly above stage 5's, the number of real mixes was the limit.
# Stage 7 stopped at joint step 925 (stemclean/models/stemclean-v2-stage7.pt, resumable with RUN=runs/v2g and that
# snapshot) when the session's machine came up bare and the real corpus had to be made again. The overfit sweep on
# real mixes (scripts/overfit_sweep.sh; docs/TRAINING.md, "Overfit sweep on real mixes") then found the learning
# rate holding the fit back: on 8 real mixes, 600 steps from stage 5's weights fitted 1.1 dB at a peak of 1e-3
# against 0.7 dB at 3e-4. Stage 8 (runs/v2h) is stage 5's recipe from stage 5's weights at a peak of 1e-3, over 2500
# steps so that it anneals within one session. If its real rows end clearly above stage 5's, the rate was the limit.
# It ended below stage 5 on the real val mixes (docs/TRAINING.md, "Stage 7 paused, stage 8"): the faster rate fits
# more but carries no more to new mixes, so stage 7 (runs/v2g, 3e-4) is the standing run again, resumed from its
# snapshot while the regenerated corpus's pairs land. (Stage 8 is this script's plan joint:2500 --lr 1e-3,
# RUN=runs/v2h, from stage 5.)
# Stage 7 ended at 3500 (stemclean-v2-stage7.pt) level with stage 5 on the real rows: 14 hours of real mixes did no
# better than 10 (docs/TRAINING.md, "Stage 7's end"). Every lever tried has left the real rows flat, while the
# additive-bleed rows have followed their share of the examples (down in stage 5, up again through stage 7), and they
# are where issue 20's targets are nearest. Stage 9 (runs/v2i) starts from stage 7's last weights with additive bleed
# at 30% of the examples instead of about 8% (real pairs 30% instead of 60%, rendered Spleeter pairs 20%), over 2500
# steps. If its bleed rows end clearly above stage 7's and its real rows hold, the share was the bleed rows' limit.
# It ended at 2500 (stemclean-v2-stage9.pt) with its bleed rows about twice stage 7's and its real rows within a few
# hundredths of a dB of them (docs/TRAINING.md, "Stage 9"). The bleed rows levelled off as the rate annealed, so stage 10
# (runs/v2j) continues from stage 9's last weights with the same recipe over a longer plan, joint:6000: if they climb
# again at the higher rate, steps were their limit; if they stay level, the recipe is spent.
# Stage 11 (runs/v2k, from stage 10 at 1825) conditioned synthetic bleed on the engine's start-level estimate. It
# stopped at 1675 when the bleed evidence turned out broken: in float32 its coherence read up to 1e19 in a third to
# half of a real pair's bins, and the control branch saw little else. Stage 12 (runs/v2l) starts from stage 11's
# weights with the evidence fixed and the control branch's joins zeroed (--reset-control), so the branch that reads
# the mixture learns again from inputs it can use (docs/TRAINING.md, "Stage 12").
# Stage 12 ended at 6000 (stemclean-v2-stage12.pt) with its bleed rows above lsdebleed's on val and its real rows level
# near zero throughout. The levers that left the real rows flat in stages 4 to 8 were all tried on a network that
# could not see the mixture. Stage 13 (runs/v2m) retries the first of them, stage 5's share of real pairs (three
# quarters of all examples: recordings 80% of the time, their Spleeter pairs 75% of those, and rendered Spleeter
# pairs 75% of the rest), from stage 12's last weights, stage 12's recipe otherwise. If its real rows rise above
# stage 12's while the bleed rows hold, the share was their limit once the branch could see.
# Stage 13 was stopped at 2000 (stemclean-v2-stage13.pt): its real rows stayed level at stage 12's, at the peak of its
# rate as stage 12's had through its whole anneal. Stage 14 (runs/v2n) goes on from its last weights with its recipe
# and each real pair through a random equaliser of up to 6 dB (fit --real-eq-db 6), over joint:4500: stage 12 fits
# the vocals' fix on its training mixes and carries little of it to val's, and new timbres are the variety a real
# pair can take without losing its mask. If its real rows rise above stage 13's, that was their limit.
# Stage 14 ended at 4500 (stemclean-v2-stage14.pt) with the real rows' median up from below zero to about their mean,
# the first rise since the evidence fix, and the best rule-1 score of any v2 snapshot, still short of its margin.
# Stage 15 (runs/v2o) continued it: stage 14's recipe from its last weights, over joint:6000. It ended at 6000
# (stemclean-v2-stage15.pt) with the real rows' val records the highest of any stage (docs/TRAINING.md, "Stage 15").
# Stage 16 (runs/v2p) goes on from its last weights with its recipe on a real corpus grown by six more soundtracks,
# training only (the real corpus's train music had come from four), and keeps a moving average of its weights
# (fit --ema 0.999), which val scores and the snapshot holds; val_raw scores the optimizer's own weights beside it.
# Stage 16 ended at 6000 (stemclean-v2-stage16.pt) with its real rows' val records the highest of any stage (docs/TRAINING.md,
#   "Stage 16's end", for what the swap rule made of it).
# Stage 17 (runs/v2q) goes on from its last weights with its recipe at a lower peak rate (2e-4), with a fifth of the
# real Spleeter pairs drawn from stretches without voice (fit --break-fraction 0.2): about one training excerpt in
# twenty-five fell in one by chance, and there stages 15 and 16 took music out of Spleeter's accompaniment instead of
# giving it back (docs/TRAINING.md, "Stage 16's end"). Val every 200 steps: each pass costs about what 15 steps do.
# Its plan was joint:6000; at step 500 it was cut to joint:3500 so that it anneals within the session and can be judged.
# Stage 17 ended at 3500 (stemclean-v2-stage17.pt) with the real rows' val mean the highest yet, the accompaniment up and the
#   vocals down from stage 16's end, and the voice-free (break) mean up (docs/TRAINING.md, "Stage 17").
# Stage 18 (runs/v2r) goes on from its last weights with its recipe over joint:6000. At step 3450, with rule 1 on 64
#   mixes level with stage 17's end at step 2525 (docs/TRAINING.md), its plan was cut to joint:5000 so that it anneals
#   within the session. It ended there (stemclean-v2-stage18.pt; docs/TRAINING.md, "Stage 18's end"), with the
#   lineage past issue 20's 30 training hours.
# Rule 1 had been level from stage 16 to 18's end while the training mixes gained several times what val's did: the
#   network fits the few soundtracks and speakers it hears and carries little to new ones. Stage 19 (runs/v2s) starts
#   from stage 18's last weights with its recipe, over joint:6000 (below), and plays each real pair up to 8% faster or slower
#   (fit --real-speed 0.08, a turntable's pitch-fader range): new keys, tempi and formants, the variety that stage 14's
#   equaliser began to give. If rule 1 on its snapshots rises above stage 18's, variety of the real pairs was the limit.
#   At step 850 its plan was cut to joint:3500 so that it anneals within the session and can be judged by rule 1.
#   It ended there (stemclean-v2-stage19.pt; docs/TRAINING.md, "Stage 19"), its val records' real rows above stage 18's
#   end through the whole run, but on rule 1 over the remade val level with stage 18's end: speed changes were not the
#   limit. Stage 20 (runs/v2t) goes on from its last weights with its recipe over joint:6000 and AdamW's weight decay
#   raised from 1e-4 to 0.05 (fit --weight-decay), a first try at the gap between the training mixes' gain and val's;
#   its val records are on the remade val (docs/TRAINING.md, "Val's music"), stage 19's on the old one.
PARENT=stemclean/models/stemclean-v2-stage19.pt
SNAPSHOT=stemclean/models/stemclean-v2-stage20.pt

if [ -e "$RUN/last.pt" ]; then
    init=()
elif [ -e "$SNAPSHOT" ]; then
    init=(--resume-weights "$SNAPSHOT")
else
    init=(--init "$PARENT")
fi
python -m stemclean.train.fit --run "$RUN" "${init[@]}" --plan joint:6000 --lr 2e-4 \
    --segment-seconds 4 --batch-size 4 \
    --real-fraction 0.75 --bleed-fraction 0.6 --recordings-fraction 0.8 --real-eq-db 6 --consistency 0.2 \
    --bleed-weight 0.02 --sdr-weight 1.0 --ema 0.999 --break-fraction 0.2 --real-speed 0.08 --weight-decay 0.05 \
    --val-every "${VAL_EVERY:-200}" --save-every 25 --snapshot "$SNAPSHOT" --threads "$THREADS"
python -m stemclean.train.export "$RUN/last.pt" "$RUN/model.onnx" --weights "$SNAPSHOT"
