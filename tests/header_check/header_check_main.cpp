// Links all generated header-check objects (see CMakeLists.txt) into one
// program: compiling them proves each header is self-contained, linking them
// proves no header emits non-inline definitions.
#include <cstdio>

int main() {
  std::puts("ika header check ok");
  return 0;
}
