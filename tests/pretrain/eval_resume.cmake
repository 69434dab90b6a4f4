# A fine-tuning stopped twice and continued from its --state gives the results of the same run
# uninterrupted: accuracy, loss curve and every setting (same seed, same threads); the state file
# is gone once the results are written. A state is not continued with other settings or from
# another encoder; SIGTERM stops a fine-tuning with its state saved.
#   cmake -DEVAL=<program> -DCHECKPOINT=<file> -DDATA=<dir> -DWORK_DIR=<dir> -P eval_resume.cmake
# 402 steps: a curve point every 2 steps, so the stops at odd steps (151, 251) cut a point's
# window in two; saves only when stopped (--save-every 1000).
set(common --checkpoint ${CHECKPOINT} --data ${DATA} --train-limit 500 --validation 0.2
  --label-fraction 0.5 --steps 402 --batch 16 --mode finetune --seed 5 --threads 2)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGN}\n${out}${err}")
  endif()
  set(output "${out}${err}" PARENT_SCOPE)
endfunction()
file(REMOVE_RECURSE ${WORK_DIR})
set(state ${WORK_DIR}/states/sliced.state)  # in a folder that is not there yet
run(${EVAL} ${common} --json ${WORK_DIR}/whole.json)
run(${EVAL} ${common} --json ${WORK_DIR}/sliced.json --state ${state} --stop-after 151
  --save-every 1000)
if(EXISTS ${WORK_DIR}/sliced.json OR NOT EXISTS ${state})
  message(FATAL_ERROR "a stopped fine-tuning wrote results, or no state:\n${output}")
endif()
# Another setting, or another starting encoder (a random one of the same size), is refused,
# naming it; the state stays as it was.
file(SHA256 ${state} saved)
function(refused expected)
  execute_process(COMMAND ${EVAL} ${ARGN} --state ${state} RESULT_VARIABLE code
    OUTPUT_VARIABLE out ERROR_VARIABLE err)
  file(SHA256 ${state} after)
  if(code EQUAL 0 OR NOT err MATCHES "${expected}" OR NOT saved STREQUAL after)
    message(FATAL_ERROR "a state continued with ${ARGN} (status ${code}):\n${out}${err}")
  endif()
endfunction()
refused("the saved fine-tuning has --lr 0.002, this command 0.001" ${common} --lr 0.001)
string(REPLACE "--checkpoint;${CHECKPOINT}" "--preset;nano-28" random "${common}")
refused("has the starting encoder [(]--checkpoint, --preset[)] \"[0-9a-f]+\", this command"
  ${random})
run(${EVAL} ${common} --json ${WORK_DIR}/sliced.json --state ${state} --stop-after 100
  --save-every 1000)
if(NOT output MATCHES "resuming from [^\n]*sliced.state at step 151 of 402.*stopped [^\n]* after step 251")
  message(FATAL_ERROR "the second sitting did not run from step 151 to 251:\n${output}")
endif()
run(${EVAL} ${common} --json ${WORK_DIR}/sliced.json --state ${state})
if(EXISTS ${state})
  message(FATAL_ERROR "the state of a finished fine-tuning is still there")
endif()

file(READ ${WORK_DIR}/whole.json whole)
file(READ ${WORK_DIR}/sliced.json sliced)
string(JSON whole GET "${whole}" finetune)
string(JSON sliced GET "${sliced}" finetune)
string(JSON sittings GET "${sliced}" sittings)
string(JSON points LENGTH "${whole}" curve)
if(NOT sittings EQUAL 3 OR NOT points EQUAL 201)
  message(FATAL_ERROR "expected 3 sittings and 201 curve points, got ${sittings} and ${points}")
endif()
foreach(timing train_seconds seconds sittings earlier_sittings_seconds threads_by_sitting)
  string(JSON whole REMOVE "${whole}" ${timing})
  string(JSON sliced REMOVE "${sliced}" ${timing})
endforeach()
if(NOT whole STREQUAL sliced)
  message(FATAL_ERROR "uninterrupted:\n${whole}\nresumed:\n${sliced}")
endif()
string(JSON accuracy GET "${whole}" accuracy)

# SIGTERM (as protocol.py's stop sends it): status 130, the state saved, no results.
string(REPLACE "--steps;402" "--steps;100000" long "${common}")
execute_process(COMMAND sh -c "'${EVAL}' \"$@\" & pid=$!; sleep 2; kill -TERM $pid; wait $pid"
  sh ${long} --state ${WORK_DIR}/stopped.state --json ${WORK_DIR}/stopped.json
  RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT code EQUAL 130 OR NOT err MATCHES "interrupted after step [0-9]+ of 100000"
   OR NOT EXISTS ${WORK_DIR}/stopped.state OR EXISTS ${WORK_DIR}/stopped.json)
  message(FATAL_ERROR "SIGTERM: status ${code}, expected 130 with a saved state:\n${out}${err}")
endif()
message(STATUS "the fine-tuning resumed twice equals the uninterrupted one: accuracy ${accuracy}, "
  "the same loss at all 201 curve points; SIGTERM saves the state")
