# Helpers for ika's *own* targets (tests, examples, benchmarks).
# Nothing here is applied to the `ika` library target, so consumers never
# inherit warnings, -march=native or sanitizer flags.

include_guard(GLOBAL)

# zlib is used by tests/examples to read the gzip'ed Fashion-MNIST files.
find_package(ZLIB QUIET)

# ika_target_defaults(<target>)
#   - warnings: -Wall -Wextra -Wpedantic
#   - -march=native when IKA_NATIVE is ON
#   - links ika::ika (and ZLIB::ZLIB when available, defining IKA_HAVE_ZLIB=1)
#   - defines IKA_FASHION_MNIST_DIR="<dir>" for locating the dataset
function(ika_target_defaults target)
  get_target_property(_type ${target} TYPE)
  if(_type STREQUAL "INTERFACE_LIBRARY")
    message(FATAL_ERROR "ika_target_defaults: ${target} is an INTERFACE library")
  endif()

  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    # GCC 12 reports its own AVX-512 intrinsics (reached through xsimd) as maybe-uninitialized;
    # 12.0-12.2 also as uninitialized (the `__Y = __Y` of _mm512_undefined_*, reached through
    # xsimd and Eigen: GCC bug 105593, fixed in 12.3), thousands of lines that would bury ours
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
      if(CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12 AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 12.3)
        target_compile_options(${target} PRIVATE -Wno-uninitialized)
      endif()
    endif()
    if(IKA_NATIVE)
      target_compile_options(${target} PRIVATE -march=native)
    endif()
  elseif(MSVC)
    target_compile_options(${target} PRIVATE /W4 /permissive-)
  endif()

  target_link_libraries(${target} PRIVATE ika::ika)
  if(TARGET ZLIB::ZLIB)
    target_link_libraries(${target} PRIVATE ZLIB::ZLIB)
    target_compile_definitions(${target} PRIVATE IKA_HAVE_ZLIB=1)
  endif()
  target_compile_definitions(${target} PRIVATE
    "IKA_FASHION_MNIST_DIR=\"${IKA_FASHION_MNIST_DIR}\"")
endfunction()

# ika_target_sanitize(<target>)
#   Adds ASan+UBSan to compile and link of <target> when IKA_SANITIZE is ON.
function(ika_target_sanitize target)
  if(NOT IKA_SANITIZE)
    return()
  endif()
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(WARNING "IKA_SANITIZE is only supported with GCC/Clang; ignored for ${target}")
    return()
  endif()
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_compile_options(${target} PRIVATE ${_san})
  # the product tests take a subset of the kernels under the sanitizers (tests/support.hpp)
  target_compile_definitions(${target} PRIVATE IKA_TEST_SANITIZED=1)
  get_target_property(_type ${target} TYPE)
  if(NOT _type STREQUAL "OBJECT_LIBRARY")
    target_link_options(${target} PRIVATE ${_san})
  endif()
endfunction()
