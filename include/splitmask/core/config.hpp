// Compiler and platform switches shared by every header: host/device annotations, pragmas,
// versions. The CPU path never needs CUDA: without nvcc the annotations expand to nothing.
#pragma once

#define SPLITMASK_VERSION_MAJOR 0
#define SPLITMASK_VERSION_MINOR 1
#define SPLITMASK_VERSION_PATCH 0

// SPLITMASK_HD marks functions that run on both the host and a CUDA device (expression nodes,
// functors, the counter-based RNG).
#if defined(__CUDACC__)
#define SPLITMASK_HD __host__ __device__
#else
#define SPLITMASK_HD
#endif

// Inside device code (the device pass of nvcc), __CUDA_ARCH__ is defined.
#if defined(__CUDA_ARCH__)
#define SPLITMASK_ON_DEVICE 1
#endif

// SPLITMASK_KERNEL marks a host kernel that takes its sizes at run time so that every shape
// shares one copy: kept out of line, or the compiler inlines a copy into each shape's caller
// again (compile time grows with the shapes a program uses).
#if defined(__GNUC__)
#define SPLITMASK_KERNEL __attribute__((noinline))
#else
#define SPLITMASK_KERNEL
#endif

#define SPLITMASK_STRINGIFY_(x) #x
#define SPLITMASK_PRAGMA(x) _Pragma(SPLITMASK_STRINGIFY_(x))

// OpenMP pragmas that vanish when OpenMP is off, so consumers without -fopenmp see no
// "unknown pragma" warnings.
#if defined(_OPENMP)
#define SPLITMASK_OMP(x) SPLITMASK_PRAGMA(omp x)
#else
#define SPLITMASK_OMP(x)
#endif
