# naap_add_test(NAME <name> SOURCES <files...> LIBS <libs...> LABELS <labels...> [TIMEOUT s])
# One function registers every test executable; labels: fast (default), slow, stress, interop.
if(NAAP_BUILD_TESTS)
  enable_testing()
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()

function(naap_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS fast)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main naap_build_flags)
  # Where tests find the source tree (scripts, data) and the built naap-loadtest.
  target_compile_definitions(${T_NAME} PRIVATE NAAP_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                             NAAP_TEST_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  gtest_discover_tests(${T_NAME}
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    DISCOVERY_TIMEOUT 30)
endfunction()
