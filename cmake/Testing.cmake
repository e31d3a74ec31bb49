# naap_add_test(NAME <name> SOURCES <files...> LIBS <libs...> [LABEL l] [TIMEOUT s]
#               [FIXTURE f] [ENVIRONMENT VAR=value])
# One function registers every test executable, with one label: fast (default), stress, kafka;
# the interop suite is labelled interop. (gtest_discover_tests cannot carry a list of labels.)
# Each gtest case runs as its own ctest test (process); FIXTURE names a ctest fixture they all
# require (FIXTURES_REQUIRED: ctest runs its setup test before them and its cleanup after).
if(NAAP_BUILD_TESTS)
  enable_testing()
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

function(naap_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;LABEL;FIXTURE;ENVIRONMENT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_LABEL)
    set(T_LABEL fast)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main naap_build_flags)
  # Where tests find the source tree (scripts, data) and the built naap-loadtest.
  target_compile_definitions(${T_NAME} PRIVATE NAAP_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                             NAAP_TEST_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  set(T_PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT})
  if(T_FIXTURE)
    list(APPEND T_PROPERTIES FIXTURES_REQUIRED ${T_FIXTURE})
  endif()
  if(T_ENVIRONMENT)
    list(APPEND T_PROPERTIES ENVIRONMENT ${T_ENVIRONMENT})
  endif()
  gtest_discover_tests(${T_NAME}
    PROPERTIES ${T_PROPERTIES}
    DISCOVERY_TIMEOUT 30)
endfunction()
