#!/usr/bin/env bash
# fashion_mnist (default settings: ikan-direct, 2 threads), one epoch of 6400 training images, old and new headers alternating
cd /tmp/al
for r in 1 2 3 4 5 6; do
  order="old new"; [ $((r % 2)) = 0 ] && order="new old"
  for b in $order; do
    s=$(date +%s.%N)
    line=$(./$b/fashion_mnist --epochs 1 --train-limit 6400 --test-limit 500 --out /tmp/al/out_$b 2>&1 | grep "^epoch 1:")
    e=$(date +%s.%N)
    echo "r$r $b wall $(echo "$e - $s" | bc) s | $line"
  done
done
