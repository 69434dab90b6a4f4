# OpenBLAS as splitmask's CPU GEMM. Only OpenBLAS's OpenMP build is accepted: its threads are
# OpenMP's, so products and splitmask's own loops share one pool (the pthreads build would start
# a second pool fighting the first over the same cores).

# Defines the imported target splitmask::openblas (with SPLITMASK_HAS_OPENBLAS=1) from find_package(OpenBLAS CONFIG)'s variables.
macro(splitmask_openblas_target)
  if(NOT TARGET splitmask::openblas)
    add_library(splitmask::openblas INTERFACE IMPORTED GLOBAL)
    set_target_properties(splitmask::openblas PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIRS}"
      INTERFACE_LINK_LIBRARIES "${OpenBLAS_LIBRARIES}"
      INTERFACE_COMPILE_DEFINITIONS SPLITMASK_HAS_OPENBLAS=1)
  endif()
endmacro()

# Sets SPLITMASK_OPENBLAS_FOUND, or SPLITMASK_OPENBLAS_REASON to why it was not taken.
function(splitmask_find_openblas)
  set(SPLITMASK_OPENBLAS_FOUND FALSE PARENT_SCOPE)
  find_package(OpenBLAS CONFIG QUIET)
  if(NOT OpenBLAS_FOUND)
    set(SPLITMASK_OPENBLAS_REASON "OpenBLAS not found (Debian: libopenblas-openmp-dev)" PARENT_SCOPE)
    return()
  endif()
  set(dir ${CMAKE_BINARY_DIR}/CMakeFiles/splitmask_openblas_probe)
  file(WRITE ${dir}/probe.cpp
    "#include <cblas.h>\nint main() { return openblas_get_parallel(); }  // 2: OpenMP\n")
  try_run(threading compiled ${dir}/build ${dir}/probe.cpp
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${OpenBLAS_INCLUDE_DIRS}"
    LINK_LIBRARIES ${OpenBLAS_LIBRARIES})
  if(NOT compiled OR NOT threading EQUAL 2)
    set(SPLITMASK_OPENBLAS_REASON
      "${OpenBLAS_LIBRARIES} is not OpenBLAS's OpenMP build (openblas_get_parallel() = ${threading}); install libopenblas-openmp-dev"
      PARENT_SCOPE)
    return()
  endif()
  splitmask_openblas_target()
  set(SPLITMASK_OPENBLAS_FOUND TRUE PARENT_SCOPE)
  set(SPLITMASK_OPENBLAS_LIBRARIES ${OpenBLAS_LIBRARIES} PARENT_SCOPE)
endfunction()
