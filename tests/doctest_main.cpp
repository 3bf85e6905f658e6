// Shared doctest main for every tests/test_*.cpp executable.
// Built once (object library `ika_doctest_main`) and linked into each test.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
