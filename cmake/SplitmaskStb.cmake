# splitmask_find_stb([REQUIRED]): Debian's stb (libstb-dev) as the imported target splitmask::stb:
# headers under <stb/...> and the compiled implementation in libstb (so that no header of ours
# defines STB_IMAGE_IMPLEMENTATION).
function(splitmask_find_stb)
  if(TARGET splitmask::stb)
    return()
  endif()
  find_path(SPLITMASK_STB_INCLUDE_DIR stb/stb_image.h)
  find_library(SPLITMASK_STB_LIBRARY stb)
  if(SPLITMASK_STB_INCLUDE_DIR AND SPLITMASK_STB_LIBRARY)
    add_library(splitmask::stb UNKNOWN IMPORTED GLOBAL)
    set_target_properties(splitmask::stb PROPERTIES
      IMPORTED_LOCATION ${SPLITMASK_STB_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES ${SPLITMASK_STB_INCLUDE_DIR})
  elseif("REQUIRED" IN_LIST ARGN)
    message(FATAL_ERROR "splitmask: stb not found (stb/stb_image.h and libstb); on Debian: "
      "apt-get install libstb-dev")
  endif()
endfunction()
