# Driver for the consumer_* CTest tests:  cmake -DMODE=... -P IkaConsumerTest.cmake
#
#   MODE=find_package      cmake --install <IKA_BINARY_DIR> into <WORK_DIR>/prefix,
#                          then build tests/consumer with -DCMAKE_PREFIX_PATH=<prefix>
#   MODE=add_subdirectory  build tests/consumer with -DIKA_SOURCE_DIR=<IKA_SOURCE_DIR>
#
# Required: MODE IKA_SOURCE_DIR CONSUMER_SOURCE_DIR WORK_DIR
# Optional: IKA_BINARY_DIR (find_package), GENERATOR, MAKE_PROGRAM, CXX_COMPILER, CONFIG
cmake_minimum_required(VERSION 3.21)

foreach(_v MODE IKA_SOURCE_DIR CONSUMER_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "IkaConsumerTest: ${_v} is required")
  endif()
endforeach()
if(NOT CONFIG)
  set(CONFIG Release)
endif()

function(_ika_run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc COMMAND_ECHO STDOUT)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "IkaConsumerTest[${MODE}]: ${what} failed (${_rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_build "${WORK_DIR}/build")
set(_prefix "${WORK_DIR}/prefix")

set(_cfg_args -S "${CONSUMER_SOURCE_DIR}" -B "${_build}"
  "-DCMAKE_BUILD_TYPE=${CONFIG}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(GENERATOR)
  list(APPEND _cfg_args -G "${GENERATOR}")
endif()
if(MAKE_PROGRAM)
  list(APPEND _cfg_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CXX_COMPILER)
  list(APPEND _cfg_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()

if(MODE STREQUAL "find_package")
  if(NOT IKA_BINARY_DIR)
    message(FATAL_ERROR "IkaConsumerTest: IKA_BINARY_DIR is required for MODE=find_package")
  endif()
  _ika_run("install of ika"
    "${CMAKE_COMMAND}" --install "${IKA_BINARY_DIR}" --prefix "${_prefix}" --config "${CONFIG}")
  list(APPEND _cfg_args "-DCMAKE_PREFIX_PATH=${_prefix}")
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND _cfg_args "-DIKA_SOURCE_DIR=${IKA_SOURCE_DIR}")
else()
  message(FATAL_ERROR "IkaConsumerTest: unknown MODE '${MODE}'")
endif()

_ika_run("configure of consumer" "${CMAKE_COMMAND}" ${_cfg_args})

# Sanity checks on how ika was picked up.
file(STRINGS "${_build}/CMakeCache.txt" _cache)
if(MODE STREQUAL "find_package")
  set(_ika_dir "")
  foreach(_line IN LISTS _cache)
    if(_line MATCHES "^ika_DIR:[A-Z]+=(.*)$")
      set(_ika_dir "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  file(REAL_PATH "${_prefix}" _real_prefix)
  if(_ika_dir STREQUAL "")
    message(FATAL_ERROR "IkaConsumerTest: ika_DIR not set in consumer cache")
  endif()
  file(REAL_PATH "${_ika_dir}" _real_ika_dir)
  string(FIND "${_real_ika_dir}" "${_real_prefix}/" _pos)
  if(NOT _pos EQUAL 0)
    message(FATAL_ERROR "IkaConsumerTest: ika found at '${_ika_dir}', not in the test prefix '${_prefix}'")
  endif()
else()
  foreach(_opt IKA_BUILD_TESTS IKA_BUILD_EXAMPLES IKA_BUILD_BENCH)
    if(NOT "${_cache}" MATCHES "${_opt}:BOOL=OFF")
      message(FATAL_ERROR "IkaConsumerTest: ${_opt} should default to OFF when ika is a subproject")
    endif()
  endforeach()
endif()

_ika_run("build of consumer" "${CMAKE_COMMAND}" --build "${_build}" --config "${CONFIG}")

set(_exe "${_build}/ika_consumer")
if(NOT EXISTS "${_exe}")
  set(_exe "${_build}/${CONFIG}/ika_consumer") # multi-config generators
endif()
execute_process(COMMAND "${_exe}"
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
message(STATUS "consumer stdout: ${_out}")
if(_err)
  message(STATUS "consumer stderr: ${_err}")
endif()
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "IkaConsumerTest[${MODE}]: consumer exited with ${_rc}")
endif()
if(NOT _out MATCHES "ika consumer ok")
  message(FATAL_ERROR "IkaConsumerTest[${MODE}]: consumer output lacks 'ika consumer ok'")
endif()
message(STATUS "IkaConsumerTest[${MODE}]: PASSED")
