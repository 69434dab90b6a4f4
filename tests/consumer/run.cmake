# Builds and runs tests/consumer twice: against an install of splitmask into a temporary prefix
# (find_package), and with splitmask as a subdirectory. Run by CTest with cmake -P.
foreach(var SPLITMASK_SOURCE_DIR SPLITMASK_BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake needs -D${var}=...")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${code}): ${command}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(consumer ${SPLITMASK_SOURCE_DIR}/tests/consumer)
set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)

# 1. Install, then find_package.
run(${CMAKE_COMMAND} --install ${SPLITMASK_BINARY_DIR} --prefix ${WORK_DIR}/prefix)
if(NOT EXISTS ${WORK_DIR}/prefix/include/splitmask/splitmask.hpp)
  message(FATAL_ERROR "the install did not place the headers")
endif()
run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/package ${common}
    -DSPLITMASK_CONSUME=package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/package)
run(${WORK_DIR}/package/consumer)

# 2. add_subdirectory: the consumer builds none of splitmask's tests, benchmarks or examples.
run(${CMAKE_COMMAND} -S ${consumer} -B ${WORK_DIR}/subdirectory ${common}
    -DSPLITMASK_CONSUME=subdirectory -DSPLITMASK_SOURCE_DIR=${SPLITMASK_SOURCE_DIR})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/subdirectory)
run(${WORK_DIR}/subdirectory/consumer)
foreach(dir tests benchmarks examples)
  if(EXISTS ${WORK_DIR}/subdirectory/splitmask/${dir})
    message(FATAL_ERROR "add_subdirectory configured splitmask's ${dir}; they must be off by default")
  endif()
endforeach()
message(STATUS "consumer project: find_package and add_subdirectory both work")
