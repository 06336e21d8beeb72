# TensorRT engine runner: library onevision_trt (src/trt_runner.cpp, include/onevision/trt_runner.h: TensorRT + CUDA
# runtime, no libtorch) and, with a CUDA libtorch, kinds "trt"/"trt-rtx" in onevision_runtime (src/trt_backend.cpp).
# Included by ../CMakeLists.txt. ONEVISION_WITH_TENSORRT:
#   AUTO  build it when NvInfer.h, libnvinfer and the CUDA toolkit are found; otherwise say so and build without it
#   ON    build it; stop with an error naming what is missing
#   OFF   do not build it
# Where TensorRT is not on the default paths: -DTENSORRT_ROOT=/path/to/TensorRT (or the TENSORRT_ROOT environment
# variable), the folder holding include/NvInfer.h and lib/libnvinfer.so.
string(TOUPPER "${ONEVISION_WITH_TENSORRT}" _onevision_trt_mode)
if(NOT _onevision_trt_mode STREQUAL "AUTO" AND NOT ONEVISION_WITH_TENSORRT)
  message(STATUS "TensorRT runner: off (ONEVISION_WITH_TENSORRT=${ONEVISION_WITH_TENSORRT}; use ON or AUTO)")
  return()
endif()

set(TENSORRT_ROOT "$ENV{TENSORRT_ROOT}" CACHE PATH "TensorRT install folder (include/NvInfer.h, lib/libnvinfer.so)")
find_path(TENSORRT_INCLUDE_DIR NvInfer.h HINTS "${TENSORRT_ROOT}" PATH_SUFFIXES include)
# libnvinfer (TensorRT 10/11: runs trt engines) or TensorRT-RTX's libtensorrt_rtx (runs trt-rtx engines): same API.
find_library(TENSORRT_NVINFER_LIBRARY NAMES nvinfer tensorrt_rtx HINTS "${TENSORRT_ROOT}" PATH_SUFFIXES lib lib64)
find_package(CUDAToolkit QUIET)

set(_onevision_trt_missing "")
if(NOT TENSORRT_INCLUDE_DIR)
  list(APPEND _onevision_trt_missing "NvInfer.h")
endif()
if(NOT TENSORRT_NVINFER_LIBRARY)
  list(APPEND _onevision_trt_missing "libnvinfer")
endif()
if(NOT CUDAToolkit_FOUND)
  list(APPEND _onevision_trt_missing "the CUDA toolkit (cuda_runtime_api.h, libcudart)")
endif()
if(_onevision_trt_missing)
  list(JOIN _onevision_trt_missing ", " _onevision_trt_missing)
  if(_onevision_trt_mode STREQUAL "AUTO")
    message(STATUS "TensorRT runner: off (not found: ${_onevision_trt_missing}; set TENSORRT_ROOT to build it)")
    return()
  endif()
  message(FATAL_ERROR "ONEVISION_WITH_TENSORRT=ON, but not found: ${_onevision_trt_missing} (set TENSORRT_ROOT)")
endif()

# The engine runner itself needs TensorRT and the CUDA runtime only (no libtorch): its own library.
add_library(onevision_trt STATIC ${CMAKE_CURRENT_LIST_DIR}/../src/trt_runner.cpp)
target_include_directories(onevision_trt PUBLIC ${CMAKE_CURRENT_LIST_DIR}/../include ${TENSORRT_INCLUDE_DIR})
target_link_libraries(onevision_trt PUBLIC ${TENSORRT_NVINFER_LIBRARY} CUDA::cudart)
set_target_properties(onevision_trt PROPERTIES POSITION_INDEPENDENT_CODE ON)
install(TARGETS onevision_trt)

# onevision::Runner's `kind: trt` / `trt-rtx` backend reads the caller's CUDA stream: it needs a CUDA libtorch.
# (The CPU torch wheel ships some c10/cuda headers but not all, and no libc10_cuda: the library is the test.)
find_library(ONEVISION_C10_CUDA_LIBRARY c10_cuda HINTS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
if(NOT ONEVISION_C10_CUDA_LIBRARY)
  message(STATUS "TensorRT runner: library onevision_trt only (this libtorch has no CUDA: onevision::Runner does "
                 "not take kind trt)")
  return()
endif()
target_sources(onevision_runtime PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../src/trt_backend.cpp)
target_link_libraries(onevision_runtime PUBLIC onevision_trt)
target_compile_definitions(onevision_runtime PUBLIC ONEVISION_WITH_TENSORRT)
message(STATUS "TensorRT runner: on (${TENSORRT_NVINFER_LIBRARY})")
