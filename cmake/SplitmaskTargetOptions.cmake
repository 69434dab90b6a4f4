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
  if(SPLITMASK_NATIVE)
    # Eigen's products and the expression loops vectorise for the CPU's widest units (AVX-512).
    # GCC 12 reports false "may be used uninitialized" inside its own AVX-512 intrinsics when
    # they are inlined from Eigen's products; that warning stays on without -march=native.
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-march=native>
      $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>>:-Wno-maybe-uninitialized>
      $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-march=native>)
  endif()
  if(SPLITMASK_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${SPLITMASK_SANITIZE} -fno-omit-frame-pointer
        -fno-sanitize-recover=all>)
    target_link_options(${target} PRIVATE -fsanitize=${SPLITMASK_SANITIZE})
  endif()
endfunction()
