# Apache Arrow C++ (libarrow + libparquet) for Parquet / Arrow IPC datasets. Debian 12 has no libarrow-dev: the
# libraries and headers come from the pinned pyarrow wheel, which scripts/setup-arrow.sh extracts into
# ~/.cache/sft/arrow-<version>/{include,lib} (scripts/setup.sh runs it).
#   SFT_PARQUET=AUTO  use Arrow when found (default); otherwise build without it (a .parquet/.arrow dataset is then a
#                     one-line error saying so)
#   SFT_PARQUET=ON    Arrow is required; OFF: never used
# Defines the imported target sft::arrow (both libraries, headers as SYSTEM) and SFT_HAVE_ARROW (TRUE/FALSE).
set(SFT_PARQUET AUTO CACHE STRING "Read Parquet / Arrow datasets through Apache Arrow C++: AUTO, ON or OFF")
set_property(CACHE SFT_PARQUET PROPERTY STRINGS AUTO ON OFF)
set(SFT_ARROW_VERSION 26.0.1)
if(DEFINED ENV{SFT_CACHE})
  set(sft_cache_dir "$ENV{SFT_CACHE}")
else()
  set(sft_cache_dir "$ENV{HOME}/.cache/sft")
endif()
set(SFT_ARROW_ROOT "${sft_cache_dir}/arrow-${SFT_ARROW_VERSION}" CACHE PATH
    "Folder with include/ and lib/ of Apache Arrow C++ (scripts/setup-arrow.sh installs it there)")

set(SFT_HAVE_ARROW FALSE)
if(NOT SFT_PARQUET STREQUAL "OFF")
  find_path(SFT_ARROW_INCLUDE_DIR parquet/arrow/reader.h PATHS ${SFT_ARROW_ROOT}/include NO_DEFAULT_PATH)
  find_library(SFT_ARROW_LIB NAMES arrow PATHS ${SFT_ARROW_ROOT}/lib NO_DEFAULT_PATH)
  find_library(SFT_PARQUET_LIB NAMES parquet PATHS ${SFT_ARROW_ROOT}/lib NO_DEFAULT_PATH)
  if(SFT_ARROW_INCLUDE_DIR AND SFT_ARROW_LIB AND SFT_PARQUET_LIB)
    file(STRINGS ${SFT_ARROW_INCLUDE_DIR}/arrow/util/config.h sft_arrow_version_line
         REGEX "^#define ARROW_VERSION_STRING")
    # The wheel's headers are compiled by us with GCC and the new libstdc++ ABI, as the wheel itself was
    # (manylinux_2_28): check that a program using both links and runs before relying on it.
    set(sft_arrow_probe ${CMAKE_BINARY_DIR}/arrow_abi_probe.cpp)
    file(WRITE ${sft_arrow_probe}
         "#include <arrow/api.h>\n#include <arrow/io/memory.h>\n#include <parquet/arrow/reader.h>\n"
         "int main() {\n  std::string s = arrow::utf8()->ToString();\n"
         "  auto buf = std::make_shared<arrow::io::BufferReader>(std::make_shared<arrow::Buffer>(nullptr, 0));\n"
         "  auto r = parquet::arrow::OpenFile(buf, arrow::system_memory_pool());\n"
         "  return s == \"string\" && !r.ok() && !r.status().ToString().empty() ? 0 : 1;\n}\n")
    try_run(sft_arrow_run sft_arrow_compiles ${CMAKE_BINARY_DIR}/arrow_abi_probe SOURCES ${sft_arrow_probe}
            CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${SFT_ARROW_INCLUDE_DIR}" "-DCMAKE_CXX_STANDARD=20"
            LINK_LIBRARIES ${SFT_PARQUET_LIB} ${SFT_ARROW_LIB}
            COMPILE_OUTPUT_VARIABLE sft_arrow_compile_out RUN_OUTPUT_VARIABLE sft_arrow_run_out)
    if(sft_arrow_compiles AND sft_arrow_run EQUAL 0)
      set(SFT_HAVE_ARROW TRUE)
      add_library(sft_arrow INTERFACE)
      target_include_directories(sft_arrow SYSTEM INTERFACE ${SFT_ARROW_INCLUDE_DIR})
      target_link_libraries(sft_arrow INTERFACE ${SFT_PARQUET_LIB} ${SFT_ARROW_LIB})
      add_library(sft::arrow ALIAS sft_arrow)
      # The libraries live outside the system paths: every executable finds them through its rpath (CMake keeps the
      # link-time rpath of a full library path in the build tree; installs are not done).
      string(REGEX REPLACE ".*\"(.*)\".*" "\\1" sft_arrow_version "${sft_arrow_version_line}")
      message(STATUS "Apache Arrow ${sft_arrow_version} for Parquet datasets: ${SFT_ARROW_ROOT}")
    else()
      message(STATUS "Apache Arrow in ${SFT_ARROW_ROOT} does not compile/run with this compiler:\n"
                     "${sft_arrow_compile_out}${sft_arrow_run_out}")
    endif()
  endif()
  if(NOT SFT_HAVE_ARROW)
    if(SFT_PARQUET STREQUAL "ON")
      message(FATAL_ERROR
              "SFT_PARQUET=ON but no usable Apache Arrow C++ in ${SFT_ARROW_ROOT}: run scripts/setup-arrow.sh")
    endif()
    message(STATUS "Apache Arrow not found in ${SFT_ARROW_ROOT}: building without Parquet/Arrow datasets "
                   "(scripts/setup-arrow.sh)")
  endif()
endif()
