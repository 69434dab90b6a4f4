# A run stopped twice and resumed gives the losses of the same run uninterrupted, step for step,
# and the same final checkpoint (same seed, same threads):
#   cmake -DPRETRAIN=<program> -DDATA=<dir> -DWORK_DIR=<dir> [-DOBJECTIVE=<name>] -P resume.cmake
if(NOT OBJECTIVE)
  set(OBJECTIVE splitmask)
endif()
set(common --preset nano-28 --objective ${OBJECTIVE} --data ${DATA} --steps 6 --batch 16
  --vocabulary-images 300 --kmeans-iterations 2 --seed 11 --threads 2)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGN}\n${out}${err}")
  endif()
endfunction()
file(REMOVE_RECURSE ${WORK_DIR})
run(${PRETRAIN} ${common} --out ${WORK_DIR}/whole)
run(${PRETRAIN} ${common} --out ${WORK_DIR}/sliced --stop-after 2)
run(${PRETRAIN} --resume ${WORK_DIR}/sliced/checkpoint.safetensors --stop-after 3 --threads 2)
run(${PRETRAIN} --resume ${WORK_DIR}/sliced/checkpoint.safetensors --threads 2)

file(STRINGS ${WORK_DIR}/whole/metrics.jsonl whole)
file(STRINGS ${WORK_DIR}/sliced/metrics.jsonl sliced)
list(LENGTH whole n)
list(LENGTH sliced m)
if(NOT n EQUAL 6 OR NOT m EQUAL 6)
  message(FATAL_ERROR "expected 6 metrics lines in each run, got ${n} and ${m}")
endif()
foreach(i RANGE 5)
  list(GET whole ${i} a)
  list(GET sliced ${i} b)
  # Every field but the timings: the step, each loss term, the total, gradient norm and lr.
  foreach(timing images_per_s elapsed_s)
    string(JSON a REMOVE "${a}" ${timing})
    string(JSON b REMOVE "${b}" ${timing})
  endforeach()
  string(JSON terms LENGTH "${a}")
  if(NOT a STREQUAL b OR terms LESS 6)
    message(FATAL_ERROR "line ${i}: uninterrupted ${a}, resumed ${b}")
  endif()
endforeach()
# The final state too: parameters, AdamW's moments, vocabulary and metadata, byte for byte.
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK_DIR}/whole/checkpoint.safetensors
  ${WORK_DIR}/sliced/checkpoint.safetensors RESULT_VARIABLE differ)
if(differ)
  message(FATAL_ERROR "the final checkpoints of the two runs differ")
endif()
message(STATUS "${OBJECTIVE}: the resumed run's losses equal the uninterrupted run's at all 6 steps, and the "
  "final checkpoints are identical")
