# oneDNN as a CPU GEMM of splitmask: the imported target splitmask::onednn (headers, libdnnl and
# SPLITMASK_HAS_ONEDNN=1). Found by path rather than by dnnl's package config, which requires
# OpenCL's development files for the GPU runtime we never use. Only a build whose CPU threads
# are OpenMP's is taken, so products and splitmask's loops share one pool.

# Sets SPLITMASK_ONEDNN_FOUND, or SPLITMASK_ONEDNN_REASON to why it was not taken.
function(splitmask_find_onednn)
  set(SPLITMASK_ONEDNN_FOUND FALSE PARENT_SCOPE)
  if(TARGET splitmask::onednn)
    set(SPLITMASK_ONEDNN_FOUND TRUE PARENT_SCOPE)
    return()
  endif()
  find_path(SPLITMASK_ONEDNN_INCLUDE_DIR oneapi/dnnl/dnnl.hpp)
  find_library(SPLITMASK_ONEDNN_LIBRARY dnnl)
  if(NOT SPLITMASK_ONEDNN_INCLUDE_DIR OR NOT SPLITMASK_ONEDNN_LIBRARY)
    set(SPLITMASK_ONEDNN_REASON "oneDNN not found (Debian: libdnnl-dev)" PARENT_SCOPE)
    return()
  endif()
  set(dir ${CMAKE_BINARY_DIR}/CMakeFiles/splitmask_onednn_probe)
  file(WRITE ${dir}/probe.cpp [=[
#include <oneapi/dnnl/dnnl.h>
#if DNNL_CPU_THREADING_RUNTIME != DNNL_RUNTIME_OMP
#error "oneDNN's CPU threads are not OpenMP's"
#endif
int main() { return dnnl_version()->major >= 2 ? 0 : 1; }
]=])
  try_run(ran compiled ${dir}/build ${dir}/probe.cpp
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${SPLITMASK_ONEDNN_INCLUDE_DIR}"
    LINK_LIBRARIES ${SPLITMASK_ONEDNN_LIBRARY})
  if(NOT compiled OR NOT ran EQUAL 0)
    set(SPLITMASK_ONEDNN_REASON
      "${SPLITMASK_ONEDNN_LIBRARY} is not oneDNN 2 or later with OpenMP threads" PARENT_SCOPE)
    return()
  endif()
  add_library(splitmask::onednn UNKNOWN IMPORTED GLOBAL)
  set_target_properties(splitmask::onednn PROPERTIES
    IMPORTED_LOCATION ${SPLITMASK_ONEDNN_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${SPLITMASK_ONEDNN_INCLUDE_DIR}
    INTERFACE_COMPILE_DEFINITIONS SPLITMASK_HAS_ONEDNN=1)
  set(SPLITMASK_ONEDNN_FOUND TRUE PARENT_SCOPE)
  set(SPLITMASK_ONEDNN_LIBRARIES ${SPLITMASK_ONEDNN_LIBRARY} PARENT_SCOPE)
endfunction()
