# No dependency from a lower layer of splitmask to a higher one. The ctest `layering` runs it
# (tests/CMakeLists.txt); by hand, from the repository root:
#   cmake -DINCLUDE_DIR=include -DWORK_DIR=/tmp/layering -DCXX_COMPILER=c++ \
#     "-DINCLUDE_DIRS=/usr/include/eigen3" -P tests/layering/check_layers.cmake
#
# 1. Text: every `#include "splitmask/<folder>/..."` of every file under splitmask/ (.hpp and
#    .cuh, whatever #if surrounds it) names a layer at or below the includer's.
# 2. Compiler: for each layer, lowest first, a tree under WORK_DIR holds copies of that layer and
#    of the layers below it, nothing else; each .hpp of the layer is compiled alone against it, so
#    an include of a higher layer fails with "No such file", reported with the header, the layer
#    and the include. As in header_check, splitmask/cuda.hpp and the .cuh headers (nvcc only) are
#    left out of this step; step 1 reads them.
#
# Variables (-D):
#   INCLUDE_DIR   the folder that holds splitmask/ (required)
#   WORK_DIR      where the trees and translation units go (required; WORK_DIR/trees is rebuilt)
#   CXX_COMPILER  the host compiler (default: c++)
#   CHECK         preprocess (default): the preprocessor finds every file the header includes,
#                 under the header's #if's, exactly as a compilation would, about ten times faster
#                 than parsing the C++ (what does not concern files, header_check compiles);
#                 syntax: -fsyntax-only, the full front end
#   FLAGS_FILE    a CMake file that sets the next four (tests/CMakeLists.txt generates it from
#                 splitmask::data, the target header_check links)
#   INCLUDE_DIRS  third-party include directories (Eigen, oneDNN, OpenBLAS...); INCLUDE_DIR and
#                 the IMPLICIT_INCLUDE_DIRS are dropped from them
#   IMPLICIT_INCLUDE_DIRS  the compiler's own (CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES): CMake never
#                 passes them either (-isystem /usr/include breaks libstdc++'s #include_next)
#   DEFINITIONS   preprocessor definitions, e.g. SPLITMASK_HAS_ONEDNN=1
#   OPTIONS       other compiler options, e.g. -fopenmp
#   LAYERS        the order, lowest first; "a+b" puts folders a and b on one level (they may
#                 include each other). The top-level headers (splitmask.hpp, cuda.hpp) are the
#                 level above all.
cmake_minimum_required(VERSION 3.21)

if(NOT DEFINED LAYERS)
  set(LAYERS core tensor+backend comm ops model tokenizer data io train eval)
endif()
# nvcc only (#error otherwise), as in header_check; MPI's, whose mpi.h only splitmask::mpi has.
set(SKIP splitmask/cuda.hpp splitmask/comm/mpi_communicator.hpp)

foreach(var INCLUDE_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "layering: -D${var}=... is required")
  endif()
endforeach()
if(NOT CXX_COMPILER)
  set(CXX_COMPILER c++)
endif()
if(NOT CHECK)
  set(CHECK preprocess)
endif()
if(NOT CHECK MATCHES "^(preprocess|syntax)$")
  message(FATAL_ERROR "layering: CHECK=${CHECK}: preprocess or syntax")
endif()
if(FLAGS_FILE)
  include(${FLAGS_FILE})
endif()
get_filename_component(INCLUDE_DIR "${INCLUDE_DIR}" ABSOLUTE)
get_filename_component(WORK_DIR "${WORK_DIR}" ABSOLUTE)
string(TIMESTAMP start "%s%f")  # microseconds

# ---- Levels: level_<folder> is the index of the folder's level; the top-level headers are last --
set(level_names)
set(n_levels 0)
foreach(level IN LISTS LAYERS)
  string(REPLACE "+" ";" folders "${level}")
  foreach(folder IN LISTS folders)
    if(DEFINED level_${folder})
      message(FATAL_ERROR "layering: folder ${folder} is twice in LAYERS (${LAYERS})")
    endif()
    if(NOT IS_DIRECTORY ${INCLUDE_DIR}/splitmask/${folder})
      message(FATAL_ERROR "layering: LAYERS names ${folder}, but ${INCLUDE_DIR}/splitmask/${folder} is no folder")
    endif()
    set(level_${folder} ${n_levels})
  endforeach()
  string(REPLACE "+" " and " name "${level}")
  list(APPEND level_names "${name}")
  math(EXPR n_levels "${n_levels} + 1")
endforeach()
set(top ${n_levels})
list(APPEND level_names umbrella)  # splitmask.hpp, cuda.hpp

file(GLOB children LIST_DIRECTORIES true RELATIVE ${INCLUDE_DIR}/splitmask ${INCLUDE_DIR}/splitmask/*)
set(top_files)
foreach(child IN LISTS children)
  if(IS_DIRECTORY ${INCLUDE_DIR}/splitmask/${child})
    if(NOT DEFINED level_${child})
      message(FATAL_ERROR "layering: include/splitmask/${child}/ is in no layer: add it to LAYERS "
        "in ${CMAKE_CURRENT_LIST_FILE} (${LAYERS})")
    endif()
  else()
    list(APPEND top_files ${child})
  endif()
endforeach()

# Sets `out` to the level of `path` (splitmask/<folder>/... or splitmask/<file>), or to "" when
# <folder> is in no layer.
function(layering_level path out)
  if(path MATCHES "^splitmask/([^/]+)/")
    if(DEFINED level_${CMAKE_MATCH_1})
      set(${out} ${level_${CMAKE_MATCH_1}} PARENT_SCOPE)
    else()
      set(${out} "" PARENT_SCOPE)
    endif()
  else()
    set(${out} ${top} PARENT_SCOPE)
  endif()
endfunction()

# ---- 1. Text: every include of every file, whatever the configuration ---------------------------
set(upward_includes)
file(GLOB_RECURSE files RELATIVE ${INCLUDE_DIR} ${INCLUDE_DIR}/splitmask/*)
list(SORT files)
list(LENGTH files n_read)
foreach(file IN LISTS files)
  layering_level(${file} own)
  file(READ ${INCLUDE_DIR}/${file} text)
  set(text "\n${text}")  # each match starts with the newline before its line
  string(REGEX MATCHALL "\n[ \t]*#[ \t]*include[ \t]*[<\"]splitmask/[^\">\n]+[\">]" includes "${text}")
  foreach(include IN LISTS includes)
    string(REGEX REPLACE ".*[<\"](splitmask/[^\">]+)[\">]$" "\\1" target "${include}")
    layering_level(${target} level)
    if(level STREQUAL "" OR level GREATER own)
      string(FIND "${text}" "${include}" at)
      string(SUBSTRING "${text}" 0 ${at} before)
      string(REGEX MATCHALL "\n" newlines "${before}")
      list(LENGTH newlines line)
      math(EXPR line "${line} + 1")
      string(STRIP "${include}" include)
      list(GET level_names ${own} own_name)
      if(level STREQUAL "")
        string(REGEX REPLACE "^splitmask/([^/]+)/.*" "\\1" folder "${target}")
        set(why "${folder} is in no layer")
      else()
        list(GET level_names ${level} name)
        set(why "layer ${name} is above layer ${own_name}")
      endif()
      set(message "${INCLUDE_DIR}/${file}:${line}: ${include}: ${why}")
      message("layering: ${message}")
      list(APPEND upward_includes "${message}")
    endif()
  endforeach()
endforeach()
list(LENGTH upward_includes count)
message("layering: ${n_read} files read, ${count} include(s) of a higher layer")

# ---- 2. Compiler: each header alone, with only its layer and the layers below -------------------
set(flags -std=c++17)
foreach(definition IN LISTS DEFINITIONS)
  list(APPEND flags -D${definition})
endforeach()
set(dropped)
foreach(dir IN LISTS INCLUDE_DIR IMPLICIT_INCLUDE_DIRS)
  get_filename_component(real "${dir}" REALPATH)
  list(APPEND dropped "${real}")
endforeach()
set(system_dirs)
foreach(dir IN LISTS INCLUDE_DIRS)
  get_filename_component(real "${dir}" REALPATH)
  if(NOT real IN_LIST dropped AND NOT real IN_LIST system_dirs)
    list(APPEND system_dirs "${real}")
    list(APPEND flags -isystem ${real})
  endif()
endforeach()
list(APPEND flags ${OPTIONS})

set(trees ${WORK_DIR}/trees)
file(REMOVE_RECURSE ${trees})
file(MAKE_DIRECTORY ${trees})

# Another copy of splitmask on the include path (installed under /usr/local/include, say) would
# hide every missing layer: refuse to run then.
list(GET files 0 probe_file)
file(WRITE ${trees}/probe.cpp "#if __has_include(<${probe_file}>)\n"
  "#error another copy of splitmask is on the include path: its layers cannot be checked\n#endif\n")
execute_process(COMMAND ${CXX_COMPILER} ${flags} -fsyntax-only ${trees}/probe.cpp
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  list(JOIN flags " " shown)
  message(FATAL_ERROR "layering: cannot check (${CXX_COMPILER} ${shown}):\n${out}")
endif()

set(failed_headers)
set(n_compiled 0)
foreach(index RANGE ${top})
  list(GET level_names ${index} name)
  string(MAKE_C_IDENTIFIER "${index}_${name}" id)
  set(tree ${trees}/${id})
  set(units ${trees}/${id}-units)
  # The tree: this level and the levels below, copied (a symbolic link would let "../x" out).
  set(own_headers)
  foreach(folder IN LISTS children)
    if(NOT DEFINED level_${folder} OR level_${folder} GREATER index)
      continue()  # a top-level file, or a higher layer
    endif()
    file(COPY ${INCLUDE_DIR}/splitmask/${folder} DESTINATION ${tree}/splitmask)
    if(level_${folder} EQUAL index)
      file(GLOB_RECURSE found RELATIVE ${INCLUDE_DIR} ${INCLUDE_DIR}/splitmask/${folder}/*.hpp)
      list(APPEND own_headers ${found})
    endif()
  endforeach()
  if(index EQUAL top)
    foreach(file IN LISTS top_files)
      file(COPY ${INCLUDE_DIR}/splitmask/${file} DESTINATION ${tree}/splitmask)
      if(file MATCHES "\\.hpp$")
        list(APPEND own_headers splitmask/${file})
      endif()
    endforeach()
  endif()
  list(REMOVE_ITEM own_headers ${SKIP})
  list(SORT own_headers)
  list(SUBLIST LAYERS 0 ${index} on_path)
  list(APPEND on_path ${name})  # this level (umbrella: above every layer)
  list(JOIN on_path ", " on_path)
  string(REPLACE "+" " and " on_path "${on_path}")

  set(level_failed 0)
  foreach(header IN LISTS own_headers)
    string(MAKE_C_IDENTIFIER ${header} unit)
    file(WRITE ${units}/${unit}.cpp "#include \"${header}\"\n")
    if(CHECK STREQUAL "syntax")
      set(mode -fsyntax-only)
    else()
      set(mode -M -MF ${units}/${unit}.d)  # preprocesses, writes only the list of files
    endif()
    execute_process(COMMAND ${CXX_COMPILER} ${flags} ${mode} -I${tree} ${units}/${unit}.cpp
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    math(EXPR n_compiled "${n_compiled} + 1")
    if(rc EQUAL 0)
      continue()
    endif()
    set(level_failed 1)
    string(REPLACE "${tree}/" "${INCLUDE_DIR}/" out "${out}")
    # GCC: "<file>:<line>:<col>: fatal error: splitmask/x/y.hpp: No such file or directory";
    # Clang: "<file>:<line>:<col>: fatal error: 'splitmask/x/y.hpp' file not found".
    if(out MATCHES "([^\n]*):([0-9]+):[0-9]+: fatal error: '?(splitmask/[^:'\n]+)'?(: No such file or directory| file not found)")
      set(where "${CMAKE_MATCH_1}:${CMAKE_MATCH_2}")
      set(missing "${CMAKE_MATCH_3}")
      layering_level(${missing} level)
      if(level STREQUAL "")
        set(why "a folder in no layer")
      elseif(level GREATER index)
        list(GET level_names ${level} missing_name)
        set(why "layer ${missing_name}, above ${name}")
      else()
        set(why "a header that does not exist")
      endif()
      set(message "${header} needs ${why}: ${where}: #include \"${missing}\": No such file with only ${on_path} on the include path")
      message("layering: ${name}: ${message}")
    else()
      set(message "${header} does not compile with only ${on_path} on the include path")
      string(LENGTH "${out}" length)
      if(length GREATER 4000)
        string(SUBSTRING "${out}" 0 4000 out)
        string(APPEND out "\n[...]")
      endif()
      message("layering: ${name}: ${message}:\n${out}")
      string(APPEND message " (the compiler's errors are above)")
    endif()
    list(APPEND failed_headers "${message}")
  endforeach()
  list(LENGTH own_headers count)
  set(status ok)
  if(level_failed)
    set(status FAILED)
  endif()
  set(plural s)
  if(count EQUAL 1)
    set(plural "")
  endif()
  message("layering: ${name}: ${status} (${count} header${plural} compiled alone)")
endforeach()

string(TIMESTAMP stop "%s%f")
math(EXPR ms "(${stop} - ${start}) / 1000")
set(summary "${n_read} files read, ${n_compiled} headers compiled (CHECK=${CHECK}) in ${ms} ms")
if(upward_includes OR failed_headers)
  list(LENGTH upward_includes n_includes)
  list(LENGTH failed_headers n_headers)
  list(JOIN upward_includes "\n  " upward_includes)
  list(JOIN failed_headers "\n  " failed_headers)
  message(FATAL_ERROR "layering: a lower layer depends on a higher one (order, lowest first: "
    "${LAYERS}, then umbrella: the top-level headers).\n"
    "${n_includes} include(s) of a higher layer:\n  ${upward_includes}\n"
    "${n_headers} header(s) failing with only their layer and the layers below:\n  ${failed_headers}\n"
    "${summary}")
endif()
message("layering: ok: ${summary}")
