#!/bin/bash
# build.sh HEADERS_DIR OUTPUT.so: decode_capi.cpp against the headers in HEADERS_DIR/include
set -e
here=$(dirname "$0")
c++ -shared -fPIC -fvisibility=hidden -I"$1/include" -isystem /usr/include/eigen3 -O3 -DNDEBUG -march=native \
  -fopenmp -std=c++20 -Wno-uninitialized -o "$2" "$here/decode_capi.cpp"
