#include <ika/ika.hpp>

#include <cstdio>

int main() {
  std::puts("ika consumer ok");
  return 0;
}
