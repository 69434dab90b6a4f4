# Flags for splitmask's own targets (tests, benchmarks, examples): warnings, the target CPU and
# sanitizers. Third-party headers (Eigen, doctest, benchmark) come in as system includes and stay
# quiet. Consumers choose their own flags: the interface target sets none.

function(splitmask_strict target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
    # Two nvcc warnings inside Eigen's own headers, which .cu files that compare with the CPU
    # path include: defaulted __host__ __device__ members (20012) and constexpr host calls
    # from its __host__ __device__ functions (20015). `#include <Eigen/Core>` alone raises them.
    $<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=20012,20015>)
  if(SPLITMASK_WERROR)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Werror>
      $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
  endif()
  # GCC before 13 writes _mm*_undefined_*() in its intrinsics headers as `__m512 __Y = __Y;`
  # (GCC bug 105593): inlined from Eigen's AVX-512 products, each use is reported as
  # "'__Y' is used uninitialized", hundreds of times. -Wno-init-self silences exactly that
  # idiom (a variable initialised with itself) and keeps every other uninitialised-use warning.
  target_compile_options(${target} PRIVATE
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-init-self>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wno-init-self>)  # nvcc's host compiler here is GCC
  # The target CPU: Eigen's products and the expression loops vectorise for its widest units.
  set(march ${SPLITMASK_MARCH})
  if(NOT march AND SPLITMASK_NATIVE)
    set(march native)
  endif()
  if(march)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-march=${march}>
      $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-march=${march}>)
  endif()
  if(SPLITMASK_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${SPLITMASK_SANITIZE} -fno-omit-frame-pointer
        -fno-sanitize-recover=all>)
    target_link_options(${target} PRIVATE -fsanitize=${SPLITMASK_SANITIZE})
  endif()
endfunction()
