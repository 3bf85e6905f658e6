// SPDX-License-Identifier: MIT
// Every third float bit pattern in [-87.34, -0] (373 million values): simd::exp_nonpositive against
// exp in double, and xsimd::exp for comparison. Build: g++ -std=c++20 -O2 -march=native -I<repo>/include exp_sweep.cpp
#include "ika/simd/simd.hpp"
#include <cstdio>
#include <cstring>
#include <cmath>
int main(){
  using V=ika::simd::batch<float>; constexpr int W=V::size;
  alignas(64) float x[W], a[W], b[W];
  long n=0, nz=0; double maxrel=0, maxrel_x=0, xs_maxrel=0; int bad=0;
  for (uint32_t bits=0x80000000u; bits<=0xC2B20000u; bits+=W*3) {
    for(int i=0;i<W;++i){uint32_t u=bits+i*3; std::memcpy(&x[i],&u,4);}
    V v=V::load_aligned(x);
    ika::simd::exp_nonpositive(v).store_aligned(a); xsimd::exp(v).store_aligned(b);
    for(int i=0;i<W;++i){++n; double e=std::exp(double(x[i]));
      if (e>=1.1754943508222875e-38){ double r=std::fabs(a[i]-e)/e; if(r>maxrel){maxrel=r;maxrel_x=x[i];} double r2=std::fabs(b[i]-e)/e; if(r2>xs_maxrel) xs_maxrel=r2; }
      else { if (a[i]!=0.f && !(std::fabs(a[i]-e)<=1.5e-45*2)) { if(bad++<5) printf("tiny x=%a a=%a e=%a\n",x[i],a[i],e);} if(a[i]==0.f) ++nz; }
      if (!(a[i]>=0.f)) { if(bad++<10) printf("neg/nan x=%a a=%a\n",x[i],a[i]); }
    }
  }
  float sp[8]={-INFINITY, NAN, -87.336f, -87.34f, -88.5f, -1000.f, -0.f, 0.f};
  for(int i=0;i<W;++i) x[i]=sp[i%8];
  ika::simd::exp_nonpositive(V::load_aligned(x)).store_aligned(a);
  printf("W=%d n=%ld maxrel=%g at %a (xsimd %g) zeros-in-tiny-range=%ld bad=%d\n",W,n,maxrel,maxrel_x,xs_maxrel,nz,bad);
  for(int i=0;i<8;++i) printf("  exp(%g) = %a\n", sp[i], a[i]);
}
