# Runs one command and checks its exit status and output: cmake -DCOMMAND=a|b|c
# -DEXPECT_CODE=<n> [-DEXPECT_OUTPUT=<regex>] [-DWORK_DIR=<dir to create first>] -P run_expect.cmake
# (arguments separated by '|'). Used for the pretrainer's bad-input checks.
string(REPLACE "|" ";" command "${COMMAND}")
if(WORK_DIR)
  file(MAKE_DIRECTORY ${WORK_DIR})
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT code STREQUAL "${EXPECT_CODE}")
  message(FATAL_ERROR "exit status ${code}, expected ${EXPECT_CODE}")
endif()
if(DEFINED EXPECT_OUTPUT AND NOT "${out}${err}" MATCHES "${EXPECT_OUTPUT}")
  message(FATAL_ERROR "the output does not match: ${EXPECT_OUTPUT}")
endif()
