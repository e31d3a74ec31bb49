# Every build option of the project, prefixed NAAP_.
option(NAAP_BUILD_TESTS "Build the GoogleTest suites" ON)
# Benchmarks (tests/bench, media_bench) are run by hand on a release build; the sanitizer
# preset turns them off because nothing runs them there.
option(NAAP_BUILD_BENCHMARKS "Build the benchmark executables" ON)
option(NAAP_WERROR "Treat compiler warnings as errors" ON)
option(NAAP_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)

# -Wnull-dereference is left out: at -O2 GCC 12 reports it inside Boost.Asio's scheduler
# (inlined template code that system-header suppression does not cover).
add_library(naap_build_flags INTERFACE)
target_compile_options(naap_build_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wimplicit-fallthrough
  # Designated initializers that rely on default member initializers are house style.
  -Wno-missing-field-initializers
  $<$<BOOL:${NAAP_WERROR}>:-Werror>
  # GCC 12 at -O3 misreads "literal" + std::string&& as an overlapping memcpy inside libstdc++
  # (GCC bug 105329): kept as a warning, never an error.
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-error=restrict>)
if(NAAP_SANITIZE)
  target_compile_options(naap_build_flags INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(naap_build_flags INTERFACE -fsanitize=address,undefined)
endif()
