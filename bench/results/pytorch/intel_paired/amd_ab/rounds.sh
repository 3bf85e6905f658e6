#!/usr/bin/env bash
# rounds of old/new alternating; each config: kind mode L threads iters
cd /tmp/ab
configs=("softmax plain 2048 1 6" "softmax plain 4096 1 3" "softmax plain 4096 2 5" "softmax causal 4096 1 5" "softmax causal 4096 2 8"
         "ika plain 1024 1 20" "ika plain 1024 2 30" "ika plain 4096 1 2" "ika plain 4096 2 4" "ika causal 1024 1 30" "softmax plain 1024 1 40")
for r in 1 2 3 4 5 6; do
  order="old new"; [ $((r % 2)) = 0 ] && order="new old"
  for c in "${configs[@]}"; do
    set -- $c
    for b in $order; do echo "r$r $b $(./$b/drv $1 $2 $5 $3 $4)"; done
  done
done
