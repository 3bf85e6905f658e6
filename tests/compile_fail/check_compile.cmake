# Runs one compile-fail case: cmake -DCXX=<compiler> -DFLAGS=<flag|flag|...> -DSOURCE=<case.cpp> -P check_compile.cmake
#
# The case names what it expects on one line:
#   // expect-error: <text>   compiling it must fail with a diagnostic line that has "error" and <text>
#                             (the static_assert message, matched literally), and compiling it with
#                             -DIKA_COMPILE_FAIL_FIXED (the misuse corrected) must succeed;
#   // expect-success         compiling it must succeed.
cmake_minimum_required(VERSION 3.21)

foreach(_var IN ITEMS CXX FLAGS SOURCE)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "check_compile.cmake: -D${_var}=... is required")
  endif()
endforeach()
string(REPLACE "|" ";" _flags "${FLAGS}")
set(ENV{LC_ALL} C) # plain ASCII quotes in the diagnostics

file(STRINGS "${SOURCE}" _expect REGEX "^// expect-(error: .+|success)$")
list(LENGTH _expect _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "${SOURCE}: needs exactly one '// expect-error: <text>' or '// expect-success' line, found ${_n}")
endif()

function(ika_compile result log)
  execute_process(
    COMMAND "${CXX}" ${_flags} ${ARGN} "${SOURCE}"
    RESULT_VARIABLE _rc
    OUTPUT_VARIABLE _log
    ERROR_VARIABLE _log)
  set(${result} "${_rc}" PARENT_SCOPE)
  set(${log} "${_log}" PARENT_SCOPE)
endfunction()

if(_expect STREQUAL "// expect-success")
  ika_compile(_rc _log)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} should compile but did not (exit ${_rc}):\n${_log}")
  endif()
  message(STATUS "compiles, as expected")
  return()
endif()

string(REGEX REPLACE "^// expect-error: " "" _text "${_expect}")

ika_compile(_rc _log)
if(_rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but the misuse should have been rejected with:\n  ${_text}")
endif()

# Look for the text on a diagnostic line that says "error" (not, say, an echoed source line).
set(_rest "${_log}")
set(_found FALSE)
while(TRUE)
  string(FIND "${_rest}" "${_text}" _at)
  if(_at EQUAL -1)
    break()
  endif()
  string(SUBSTRING "${_rest}" 0 ${_at} _before)
  string(FIND "${_before}" "\n" _line_start REVERSE)
  math(EXPR _line_start "${_line_start} + 1")
  string(SUBSTRING "${_before}" ${_line_start} -1 _line)
  if(_line MATCHES "error")
    set(_found TRUE)
    break()
  endif()
  string(LENGTH "${_text}" _len)
  math(EXPR _next "${_at} + ${_len}")
  string(SUBSTRING "${_rest}" ${_next} -1 _rest)
endwhile()
if(NOT _found)
  message(FATAL_ERROR "${SOURCE} failed to compile (exit ${_rc}), but without the expected error:\n  ${_text}\n"
                      "compiler output:\n${_log}")
endif()

# The same file with the misuse corrected must compile: the failure above is the misuse's.
ika_compile(_rc _log -DIKA_COMPILE_FAIL_FIXED)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} with -DIKA_COMPILE_FAIL_FIXED (the misuse corrected) should compile but did not "
                      "(exit ${_rc}); the case may fail for a reason other than its misuse:\n${_log}")
endif()
message(STATUS "rejected with \"${_text}\"; the corrected version compiles")
